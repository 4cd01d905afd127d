"""Answered documentation templates read as chart records (fhir_mappings/questionnaire_answers.py):
by record shape and field alone, with every unusable answer reported and skipped."""

from __future__ import annotations

from datetime import date
from typing import Any

from fhir_mappings.questionnaire_answers import documented

TODAY = date(2026, 11, 20)
PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1980-05-02"}


def group(link: str, **fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "linkId": link,
        "item": [{"linkId": f"{link}/{k}", "answer": [v]} for k, v in fields.items()],
    }


def response(
    *groups: dict[str, Any], status: str = "completed", subject: str = "Patient/p1"
) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": "qr1",
        "questionnaire": "https://cds.example.org/fhir/Questionnaire/X.Y|1",
        "status": status,
        "subject": {"reference": subject},
        "authored": "2026-11-19",
        "item": [{"linkId": "A.1", "item": list(groups)}],
    }


DRUG = {"valueCoding": {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6851"}}


def read(*resources: dict[str, Any]) -> Any:
    return documented([PATIENT, *resources], patient_ref="Patient/p1", as_of=TODAY)


def test_a_trial_becomes_a_statement_with_its_period_and_dose() -> None:
    found = read(
        response(
            group(
                "A.1/trial",
                drug=DRUG,
                start={"valueDate": "2025-01-10"},
                end={"valueDate": "2025-06-01"},
                dose={"valueQuantity": {"value": 15, "code": "mg"}},
            )
        )
    )
    (statement,) = found.resources
    assert statement["resourceType"] == "MedicationStatement"
    assert statement["effectivePeriod"] == {"start": "2025-01-10", "end": "2025-06-01"}
    assert statement["dosage"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 15
    assert statement["meta"]["source"] == "QuestionnaireResponse/qr1#A.1/trial"
    assert found.provenance == {"MedicationStatement/qr1.1": "QuestionnaireResponse/qr1#A.1/trial"}
    assert found.issues == ()


def test_a_trial_still_going_runs_to_the_day_the_response_was_written() -> None:
    found = read(response(group("A.1/trial", drug=DRUG, start={"valueDate": "2025-01-10"})))
    (statement,) = found.resources
    assert statement["status"] == "active"
    assert statement["effectivePeriod"]["end"] == "2026-11-19"


def test_future_dates_and_unknown_units_are_skipped_with_an_issue() -> None:
    found = read(
        response(
            group("A.1/trial", drug=DRUG, start={"valueDate": "2027-01-01"}),
            group(
                "A.1/measurement",
                test={"valueCoding": {"system": "http://loinc.org", "code": "1988-5"}},
                value={"valueQuantity": {"value": 12, "code": "mmol/L"}},
                date={"valueDate": "2026-10-01"},
            ),
            group(
                "A.1/body-weight",
                value={"valueQuantity": {"value": 70, "code": "kg"}},
                date={"valueDate": "2026-11-01"},
            ),
        )
    )
    assert [r["resourceType"] for r in found.resources] == ["Observation"]  # the weight only
    problems = {i.link_id: i.message for i in found.issues}
    assert "in the future" in problems["A.1/trial/start"]
    assert "unit 'mmol/L'" in problems["A.1/measurement/value"]


def test_a_birth_date_fills_a_partial_one_and_never_replaces_a_full_one() -> None:
    answer = group("A.1/birth-date", value={"valueDate": "1980-05-02"})
    partial = {**PATIENT, "birthDate": "1980"}
    found = documented([partial, response(answer)], patient_ref="Patient/p1", as_of=TODAY)
    assert [r["birthDate"] for r in found.resources] == ["1980-05-02"]

    other = group("A.1/birth-date", value={"valueDate": "1970-01-01"})
    conflict = read(response(other))
    assert conflict.resources == ()
    assert "contradicts the chart's" in conflict.issues[0].message


def test_only_completed_responses_about_the_patient_are_read() -> None:
    answer = group("A.1/intolerance", drug=DRUG, kind={"valueString": "Allergy"})
    assert read(response(answer, status="in-progress")).resources == ()
    assert read(response(answer, subject="Patient/other")).resources == ()
    (allergy,) = read(response(answer)).resources
    assert allergy["resourceType"] == "AllergyIntolerance"
    assert allergy["type"] == "allergy"


def test_statements_for_the_reviewer_make_no_record() -> None:
    found = read(
        response(
            group("A.1/dose", amount={"valueQuantity": {"value": 100, "code": "mg"}}),
            group("A.1/evidence", rationale={"valueString": "see the attached letter"}),
        )
    )
    assert found.resources == ()
    assert found.responses == ("QuestionnaireResponse/qr1",)
