"""Charts shaped as EHRs write them, found by an outside review (issue 12): each test takes the
documented criteria-met request (`hooks/examples/order-sign-prefetch.json`), changes one
thing the way an EHR writes it, and checks what the prescriber would see.

Every case here answered wrongly before its fix; the decisions are the pharmacist's reading
recorded in the module docstrings and the policy notes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import load_example

Json = dict[str, Any]
EVALUATION_KEY = "com.anakinra-cds.evaluation"
NUCC = "http://nucc.org/provider-taxonomy"
SCT = "http://snomed.info/sct"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def chart() -> Json:
    return load_example("order-sign-prefetch.json")


def draft(body: Json) -> Json:
    order: Json = body["context"]["draftOrders"]["entry"][0]["resource"]
    return order


def searchset(*resources: Json) -> Json:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }


def sign(client: FlaskClient, body: Json) -> tuple[Json, list[Json]]:
    """The evaluation of the Kineret order and the cards shown."""
    response = client.post("/cds-services/anakinra-order-sign", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    data = response.get_json()
    evaluations = data["extension"][EVALUATION_KEY]
    assert len(evaluations) == 1
    # Never silence: cards, or (criteria met) the coverage-information system action that no
    # card repeats (CRD resp-12).
    informed = evaluations[0].get("coverageInformation", {}).get("status") == "sent"
    assert data["cards"] or (evaluations[0]["outcome"] == "criteria-met" and informed), (
        "an order must never get an empty answer"
    )
    return evaluations[0], data["cards"]


def criterion(evaluation: Json, cid: str) -> Json:
    found: Json = next(c for c in evaluation["criteria"] if c["id"] == cid)
    return found


def test_the_base_chart_meets_the_criteria(client: FlaskClient) -> None:
    evaluation, _ = sign(client, chart())
    assert evaluation["outcome"] == "criteria-met"


# --- people and roles -------------------------------------------------------------------------


def _internist(body: Json) -> None:
    body["prefetch"]["userRole"]["specialty"] = [
        {"coding": [{"system": NUCC, "code": "207Q00000X", "display": "Family Medicine"}]}
    ]


def _care_team_rheumatologist(participant_period: Json | None) -> Callable[[Json], None]:
    def change(body: Json) -> None:
        _internist(body)
        participant: Json = {
            "role": [
                {"coding": [{"system": SCT, "code": "45440000", "display": "Rheumatologist"}]}
            ],
            "member": {"reference": "Practitioner/pr-rheum-9", "display": "Dr. R"},
        }
        if participant_period is not None:
            participant["period"] = participant_period
        body["prefetch"]["careTeams"] = searchset(
            {
                "resourceType": "CareTeam",
                "id": "ct-1",
                "status": "active",
                "subject": {"reference": "Patient/pt-ra-1001"},
                "participant": [participant],
            }
        )

    return change


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (
            lambda b: b["prefetch"]["userRole"].update(active=False),
            "the prescriber's rheumatology role is marked inactive",
        ),
        (
            lambda b: b["prefetch"]["userRole"].update(
                period={"start": "2012-01-01", "end": "2019-06-30"}
            ),
            "the prescriber's rheumatology role ended in 2019",
        ),
        (
            _care_team_rheumatologist({"start": "2010-02-01", "end": "2012-03-31"}),
            "the rheumatologist left the care team in 2012",
        ),
    ],
    ids=["role-inactive", "role-ended", "care-team-member-left"],
)
def test_a_role_or_care_team_membership_that_ended_is_no_rheumatologist(
    client: FlaskClient, change: Callable[[Json], None], why: str
) -> None:
    body = chart()
    change(body)
    evaluation, cards = sign(client, body)
    assert criterion(evaluation, "I.A.2")["status"] == "unknown", why
    assert evaluation["outcome"] == "documentation-needed", why
    # The card names what is missing in words ("the prescriber's specialty (rheumatology)",
    # or "confirm the prescriber is a rheumatologist" when no current role is left), never
    # by its clause (I.A.2).
    assert any("rheumatolog" in card["summary"] for card in cards)
    assert not any("I.A.2" in card["summary"] + card.get("detail", "") for card in cards)


def test_a_current_care_team_rheumatologist_still_counts(client: FlaskClient) -> None:
    body = chart()
    _care_team_rheumatologist({"start": "2024-02-01"})(body)
    evaluation, _ = sign(client, body)
    assert criterion(evaluation, "I.A.2")["status"] == "met"


def _referral(intent: str) -> Callable[[Json], None]:
    def change(body: Json) -> None:
        _internist(body)
        body["prefetch"]["referrals"] = searchset(
            {
                "resourceType": "ServiceRequest",
                "id": "sr-rheum-1",
                "status": "active",
                "intent": intent,
                "code": {"text": "Ambulatory referral to Rheumatology"},
                "subject": {"reference": "Patient/pt-ra-1001"},
                "authoredOn": "2026-06-01",
            }
        )

    return change


@pytest.mark.parametrize(
    ("intent", "status"), [("order", "met"), ("proposal", "unknown"), ("plan", "unknown")]
)
def test_only_a_referral_actually_ordered_is_a_rheumatology_consultation(
    client: FlaskClient, intent: str, status: str
) -> None:
    body = chart()
    _referral(intent)(body)
    evaluation, _ = sign(client, body)
    assert criterion(evaluation, "I.A.2")["status"] == status


# --- setting ----------------------------------------------------------------------------------


def _covid_inpatient(body: Json, **encounter: Any) -> None:
    draft(body)["reasonCode"] = [
        {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "U07.1"}]}
    ]
    body["prefetch"]["encounter"].update(
        {"class": {"system": ACT, "code": "IMP", "display": "inpatient encounter"}, **encounter}
    )


def test_an_inpatient_covid_order_in_a_current_stay_meets_the_eua(client: FlaskClient) -> None:
    body = chart()
    _covid_inpatient(body)
    evaluation, _ = sign(client, body)
    assert criterion(evaluation, "I.D.1")["status"] == "met"


@pytest.mark.parametrize(
    ("encounter", "words"),
    [
        ({"subject": {"reference": "Patient/pt-other-7"}}, "not this patient's"),
        ({"status": "cancelled"}, "cancelled"),
        ({"status": "entered-in-error"}, "entered in error"),
        (
            {"status": "finished", "period": {"start": "2025-01-02", "end": "2025-01-09"}},
            "ended before the order date",
        ),
    ],
    ids=["another-patient", "cancelled", "entered-in-error", "finished-2025"],
)
def test_an_inpatient_encounter_that_is_not_this_stay_leaves_the_setting_unknown(
    client: FlaskClient, encounter: Json, words: str
) -> None:
    body = chart()
    _covid_inpatient(body, **encounter)
    evaluation, cards = sign(client, body)
    result = criterion(evaluation, "I.D.1")
    assert result["status"] == "unknown"
    assert words in result["reason"]
    assert evaluation["outcome"] == "documentation-needed"
    assert any("confirm the patient is admitted" in card["summary"] for card in cards)


# --- measurements -----------------------------------------------------------------------------


def _score(body: Json, code: Json, value: float) -> None:
    observations = body["prefetch"]["observations"]["entry"]
    cdai = next(e["resource"] for e in observations if e["resource"]["id"] == "obs-cdai-1")
    cdai["code"] = code
    cdai["valueQuantity"] = {"value": value, "unit": "{score}"}


CDAI: Json = {"coding": [{"system": "http://loinc.org", "code": "88982-4"}], "text": "CDAI"}
RAPID3: Json = {  # an Epic flowsheet row: a local code and its name
    "coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.707679", "code": "3120"}],
    "text": "RAPID3 score",
}


@pytest.mark.parametrize(
    ("code", "value", "scale"),
    [(CDAI, 290, "0-76"), (CDAI, -3, "0-76"), (RAPID3, 45, "0-30")],
    ids=["cdai-290", "cdai-negative", "rapid3-45"],
)
def test_a_score_outside_its_scale_is_not_a_baseline_score(
    client: FlaskClient, code: Json, value: float, scale: str
) -> None:
    body = chart()
    _score(body, code, value)
    evaluation, _ = sign(client, body)
    result = criterion(evaluation, "I.A.6")
    assert result["status"] == "unknown"
    assert f"outside the score's {scale} scale" in result["reason"]
    assert evaluation["outcome"] == "documentation-needed"


@pytest.mark.parametrize(("code", "value"), [(CDAI, 76), (RAPID3, 30), (RAPID3, 0)])
def test_a_score_at_the_ends_of_its_scale_is_read(
    client: FlaskClient, code: Json, value: float
) -> None:
    body = chart()
    _score(body, code, value)
    evaluation, _ = sign(client, body)
    assert criterion(evaluation, "I.A.6")["status"] == "met"


# --- diagnoses --------------------------------------------------------------------------------

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _short_mtx_then_sulfasalazine(body: Json, pregnancy: Json) -> None:
    """A month of methotrexate, seven months of sulfasalazine, and a pregnancy on the
    problem list written without clinicalStatus (as older feeds do): I.A.4 (b) rests on
    whether the pregnancy still contraindicates methotrexate."""
    prefetch = body["prefetch"]
    prefetch["medicationRequests"] = searchset(
        *(
            e["resource"]
            for e in prefetch["medicationRequests"]["entry"]
            if e["resource"]["id"] != "rx-mtx-1"
        )
    )
    statements = [
        e["resource"]
        for e in prefetch["medicationStatements"]["entry"]
        if e["resource"]["id"] != "ms-mtx-1"
    ]
    for rid, code, name, start, end in (
        ("ms-mtx-2", "6851", "methotrexate", "2021-04-01", "2021-05-01"),
        ("ms-ssz-1", "9524", "sulfasalazine", "2021-06-01", "2022-01-15"),
    ):
        statements.append(
            {
                "resourceType": "MedicationStatement",
                "id": rid,
                "status": "completed",
                "medicationCodeableConcept": {
                    "coding": [{"system": RXNORM, "code": code, "display": name}]
                },
                "subject": {"reference": "Patient/pt-ra-1001"},
                "effectivePeriod": {"start": start, "end": end},
            }
        )
    prefetch["medicationStatements"] = searchset(*statements)
    prefetch["conditions"] = searchset(
        *(e["resource"] for e in prefetch["conditions"]["entry"]), pregnancy
    )


def _pregnancy(**abatement: Any) -> Json:
    return {
        "resourceType": "Condition",
        "id": "cond-preg-1",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": SCT, "code": "77386006", "display": "Pregnancy"}]},
        "subject": {"reference": "Patient/pt-ra-1001"},
        "onsetDateTime": "2023-03-01",
        **abatement,
    }


@pytest.mark.parametrize(
    "abatement",
    [{"abatementDateTime": "2023-11-20"}, {"abatementString": "delivered"}],
    ids=["abatement-date", "abatement-text"],
)
def test_an_abated_condition_without_status_no_longer_contraindicates_methotrexate(
    client: FlaskClient, abatement: Json
) -> None:
    body = chart()
    _short_mtx_then_sulfasalazine(body, _pregnancy(**abatement))
    evaluation, _ = sign(client, body)
    result = criterion(evaluation, "I.A.4")
    assert result["status"] == "not-met", result["reason"]
    assert evaluation["outcome"] != "criteria-met"


def test_a_current_condition_without_status_still_contraindicates_methotrexate(
    client: FlaskClient,
) -> None:
    body = chart()
    _short_mtx_then_sulfasalazine(body, _pregnancy())
    evaluation, _ = sign(client, body)
    assert criterion(evaluation, "I.A.4")["status"] == "met"


# --- people: age ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "status"),
    [
        ("2008", "unknown"),  # 17 or 18 on 2026-11-29
        ("2008-11", "unknown"),  # 18 if born by 29 November
        ("2008-12", "not-met"),  # 17 whatever the day
        ("1990", "met"),
        ("2008-11-29", "met"),  # the 18th birthday itself
    ],
)
def test_a_birth_date_without_its_day_decides_age_only_when_every_day_agrees(
    client: FlaskClient, birth: str, status: str
) -> None:
    body = chart()
    body["prefetch"]["patient"]["birthDate"] = birth
    evaluation, _ = sign(client, body)
    result = criterion(evaluation, "I.A.3")
    assert result["status"] == status, result["reason"]
    if status == "unknown":
        assert "without its day" in result["reason"]
        assert evaluation["outcome"] == "documentation-needed"


# --- request shapes ---------------------------------------------------------------------------


def _outcome_entry(severity: str, text: str) -> Json:
    return {
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": "processing", "details": {"text": text}}],
        },
        "search": {"mode": "outcome"},
    }


def test_an_epic_warning_outcome_beside_the_results_leaves_the_answer_whole(
    client: FlaskClient,
) -> None:
    body = chart()
    body["prefetch"]["medicationRequests"]["entry"].append(
        _outcome_entry("warning", "Some information may be restricted.")
    )
    evaluation, _ = sign(client, body)
    assert evaluation["outcome"] == "criteria-met"


def test_an_error_outcome_in_a_searchset_means_the_list_is_not_whole(
    client: FlaskClient,
) -> None:
    # Concurrent biologics (III.B) cannot be cleared from a search that failed part way.
    body = chart()
    body["prefetch"]["medicationRequests"]["entry"].append(
        _outcome_entry("error", "An error occurred while retrieving some results.")
    )
    evaluation, cards = sign(client, body)
    assert evaluation["outcome"] == "not-evaluated"
    assert "sent incomplete with the call" in cards[0]["detail"]
    assert cards[0]["indicator"] == "warning"


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b["context"].update(patientId="Patient/pt-ra-1001"),
        lambda b: b["context"].update(draftOrders=b["context"]["draftOrders"]["entry"]),
        lambda b: b["context"].update(
            draftOrders=[e["resource"] for e in b["context"]["draftOrders"]["entry"]]
        ),
    ],
    ids=["patient-id-as-reference", "draft-orders-as-entry-list", "draft-orders-as-resource-list"],
)
def test_context_shapes_ehrs_send_still_get_the_decision(
    client: FlaskClient, change: Callable[[Json], None]
) -> None:
    body = chart()
    change(body)
    evaluation, cards = sign(client, body)
    assert evaluation["outcome"] == "criteria-met"
    # The coverage-information system action says so; no card repeats it (CRD resp-12).
    assert evaluation["coverageInformation"]["status"] == "sent"
    assert cards == []


def test_a_patient_reference_with_a_path_is_still_refused(client: FlaskClient) -> None:
    body = chart()
    body["context"]["patientId"] = "Patient/../Practitioner/x"
    response = client.post("/cds-services/anakinra-order-sign", json=body)
    assert response.status_code == 400
