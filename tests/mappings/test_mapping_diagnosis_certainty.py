"""Working and uncoded diagnoses (issue 12): they claim the indication, so the request is
documentation-needed (confirm / code the diagnosis), never off-label review and never met."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from cds_service.policy.engine import evaluate, load_policy
from cds_service.policy.model import Decision, Outcome, Status
from tests.mappings.mapping_builders import (
    ICD,
    PATIENT_RES,
    SCT,
    cc,
    condition,
    context,
    med_request,
)
from tests.routed import build_facts

Res = dict[str, Any]
RA_ICD = cc(ICD, "M05.79", "Rheumatoid arthritis with rheumatoid factor of multiple sites")


def decide(*resources: Res, order: Res | None = None) -> Decision:
    result = build_facts(context(order or med_request()), [PATIENT_RES, *resources])
    return evaluate(load_policy(), result.orders[0], date(2026, 3, 1))


def status(decision: Decision, criterion: str) -> Status:
    return next(r.status for r in decision.criteria if r.id == criterion)


def reason(decision: Decision, criterion: str) -> str:
    return next(r.reason for r in decision.criteria if r.id == criterion)


def documentation(decision: Decision, criterion: str) -> str | None:
    return next(r.documentation for r in decision.criteria if r.id == criterion)


@pytest.mark.parametrize("verification", ["provisional", "differential", "unconfirmed"])
def test_a_working_ra_diagnosis_asks_to_confirm_it(verification: str):
    decision = decide(condition("ra", RA_ICD, verification=verification))
    assert decision.section == "I.A"
    assert decision.outcome is Outcome.DOCUMENTATION_NEEDED
    assert status(decision, "I.A.1") is Status.UNKNOWN
    assert "confirm the diagnosis" in reason(decision, "I.A.1")
    assert "confirmed" in (documentation(decision, "I.A.1") or "")


@pytest.mark.parametrize(
    "code",
    [
        cc(text="Rheumatoid arthritis"),  # text only
        cc("urn:oid:1.2.840.114350.1.13.0.1.7.2.696871", "1234", "Rheumatoid arthritis (local)"),
        cc(SCT, "1073851000119999", "Seropositive rheumatoid arthritis of left hand"),  # unlisted
    ],
)
def test_ra_named_but_not_coded_asks_to_code_it(code: Res):
    decision = decide(condition("ra", code))
    assert decision.section == "I.A"
    assert decision.outcome is Outcome.DOCUMENTATION_NEEDED
    assert status(decision, "I.A.1") is Status.UNKNOWN
    assert "code the diagnosis" in reason(decision, "I.A.1")
    assert "ICD-10-CM or SNOMED CT" in (documentation(decision, "I.A.1") or "")


@pytest.mark.parametrize(
    "text",
    [
        "Juvenile rheumatoid arthritis",
        "Family history of rheumatoid arthritis",
        "History of rheumatoid arthritis",
    ],
)
def test_words_that_are_not_the_patients_ra_do_not_claim_it(text: str):
    decision = decide(condition("c", cc(text=text)))
    assert decision.outcome is Outcome.OFF_LABEL_REVIEW


def test_a_refuted_diagnosis_is_ignored():
    # RA was looked at and ruled out: the order treats something else (off-label review).
    decision = decide(condition("ra", RA_ICD, verification="refuted"))
    assert decision.outcome is Outcome.OFF_LABEL_REVIEW


def test_an_entered_in_error_diagnosis_is_ignored_and_the_diagnosis_is_asked_for():
    # The record is void: the chart holds no condition at all, so the diagnosis is asked
    # for (documentation needed), never met and never read as RA.
    decision = decide(condition("ra", RA_ICD, verification="entered-in-error"))
    assert decision.outcome is Outcome.DOCUMENTATION_NEEDED
    assert decision.section == "I.E"
    assert any("No diagnosis is recorded" in r.reason for r in decision.criteria)


def test_a_chart_with_only_unrelated_conditions_is_off_label_review():
    hypertension = cc("http://hl7.org/fhir/sid/icd-10-cm", "I10", "Essential hypertension")
    decision = decide(condition("htn", hypertension))
    assert decision.outcome is Outcome.OFF_LABEL_REVIEW


def test_a_confirmed_diagnosis_wins_over_a_provisional_one():
    decision = decide(condition("p", RA_ICD, verification="provisional"), condition("c", RA_ICD))
    assert status(decision, "I.A.1") is Status.MET
    assert "Condition/c" in next(r.evidence for r in decision.criteria if r.id == "I.A.1")


def test_a_provisional_condition_named_as_the_orders_reason_is_not_met():
    order = med_request(reasonReference=[{"reference": "Condition/ra"}])
    decision = decide(condition("ra", RA_ICD, verification="provisional"), order=order)
    assert decision.section == "I.A"
    assert status(decision, "I.A.1") is Status.UNKNOWN


def test_a_text_reason_naming_ra_claims_ra_and_the_coded_condition_establishes_it():
    order = med_request(reasonCode=[cc(text="Rheumatoid arthritis")])
    decision = decide(condition("ra", RA_ICD), order=order)
    assert decision.section == "I.A"
    assert status(decision, "I.A.1") is Status.MET


def test_a_provisional_nomid_asks_to_confirm_it():
    decision = decide(
        condition("n", cc(SCT, "239826001", "CINCA syndrome"), verification="provisional")
    )
    assert decision.section == "I.B"
    assert status(decision, "I.B.1") is Status.UNKNOWN
    assert "confirm the diagnosis" in reason(decision, "I.B.1")


def test_a_provisional_covid_19_is_never_met_even_inpatient():
    covid = condition("cv", cc(ICD, "U07.1", "COVID-19"), verification="provisional")
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p1"},
    }
    ctx = context(med_request(), encounter="e1")
    facts = build_facts(ctx, [PATIENT_RES, covid, encounter]).orders[0]
    decision = evaluate(load_policy(), facts, date(2026, 3, 1))
    assert decision.section == "I.D"
    assert decision.outcome is Outcome.DOCUMENTATION_NEEDED
    assert status(decision, "Diagnosis") is Status.UNKNOWN
    assert "confirm the diagnosis" in reason(decision, "Diagnosis")


def test_continued_therapy_on_a_provisional_diagnosis_is_never_met():
    from tests.mappings.mapping_builders import statement

    current = statement(
        "k",
        cc("http://www.nlm.nih.gov/research/umls/rxnorm", "349325", "anakinra"),
        status="active",
        start="2025-06-01",
    )
    decision = decide(condition("ra", RA_ICD, verification="provisional"), current)
    assert decision.section == "II.A"
    assert decision.outcome is not Outcome.CRITERIA_MET
    assert status(decision, "Diagnosis") is Status.UNKNOWN


def test_nomid_recorded_as_text_only_asks_to_code_it():
    decision = decide(
        condition("n", cc(text="NOMID (neonatal-onset multisystem inflammatory disease)"))
    )
    assert decision.section == "I.B"
    assert status(decision, "I.B.1") is Status.UNKNOWN
    assert "code the diagnosis" in reason(decision, "I.B.1")


def test_a_coded_nomid_whose_text_also_names_it_is_established():
    code = cc(
        SCT,
        "239826001",
        "CINCA syndrome",
        text="Neonatal-onset multisystem inflammatory disease (NOMID)",
    )
    decision = decide(condition("n", code))
    assert status(decision, "I.B.1") is Status.MET
