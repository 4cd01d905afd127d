"""build_facts end to end: orders, prescriber, care team, encounter, coverage, problems."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from tests.mappings.mapping_builders import (
    NUCC,
    PATIENT_RES,
    SCT,
    cc,
    context,
    dosage,
    med_request,
    timing_code,
)
from tests.routed import build_facts

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def role(rid: str, practitioner: str, specialty: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": rid,
        "practitioner": {"reference": practitioner},
    }
    if specialty is not None:
        out["specialty"] = [specialty]
    return out


RHEUM = cc(NUCC, "207RR0500X", "Internal Medicine, Rheumatology")
FAMILY = cc(NUCC, "207Q00000X", "Family Medicine")


def test_full_order_facts():
    order = med_request(
        requester={"reference": "PractitionerRole/role1"},
        dosageInstruction=[dosage(100, timing=timing_code("QD"))],
    )
    result = build_facts(
        context(order, encounter="e1"),
        [
            PATIENT_RES,
            role("role1", "Practitioner/9", RHEUM),
            {
                "resourceType": "Encounter",
                "id": "e1",
                "status": "in-progress",
                "class": {"system": ACT, "code": "IMP"},
            },
            {
                "resourceType": "Coverage",
                "id": "cov",
                "status": "active",
                "beneficiary": {"reference": "Patient/p1"},
                "payor": [{"reference": "Organization/o"}],
            },
            {
                "resourceType": "Coverage",
                "id": "old",
                "status": "cancelled",
                "beneficiary": {"reference": "Patient/p1"},
                "payor": [{"reference": "Organization/o"}],
            },
        ],
    )
    assert result.failed_orders == ()
    facts = result.orders[0]
    assert facts.patient_ref == "Patient/p1"
    assert facts.birth_date == date(1970, 5, 2)
    assert facts.order.ref == "MedicationRequest/mr1"
    assert facts.order.authored_on == date(2026, 3, 1)
    assert facts.order.dose.mg_per_day == 100
    assert facts.order.resource is order
    assert facts.prescriber.specialty_valuesets == {"rheumatology"}
    assert facts.prescriber.specialty_codes == ("207RR0500X",)
    assert facts.prescriber.has_role_data is True
    assert facts.encounter is not None
    assert facts.encounter.setting == "inpatient"
    assert facts.coverage_refs == ("Coverage/cov",)


def test_practitioner_requester_resolves_to_roles_and_no_roles_is_no_data():
    order = med_request(requester={"reference": "Practitioner/9"})
    facts = build_facts(
        context(order, user="Practitioner/9"),
        [
            role("r1", "Practitioner/9", FAMILY),
            role("r2", "Practitioner/9", cc(text="Pediatric rheumatology")),
        ],
    ).orders[0]
    assert facts.prescriber.specialty_valuesets == {"rheumatology"}
    assert facts.prescriber.has_role_data is True

    facts = build_facts(context(order, user="Practitioner/9"), []).orders[0]
    assert facts.prescriber.has_role_data is False
    assert facts.prescriber.specialty_valuesets == frozenset()
    assert facts.prescriber.requester_ref == "Practitioner/9"


def test_care_team_and_referral_to_rheumatology():
    team = {
        "resourceType": "CareTeam",
        "id": "ct",
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "participant": [
            {"member": {"reference": "PractitionerRole/rr"}},
            {
                "role": [cc(SCT, "394810000", "Rheumatology")],
                "member": {"reference": "Practitioner/x"},
            },
        ],
    }
    referral = {
        "resourceType": "ServiceRequest",
        "id": "sr",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2025-09-01",
        "code": cc(text="Referral to rheumatology"),
    }
    unrelated = {
        "resourceType": "ServiceRequest",
        "id": "sr2",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "code": cc(text="Referral to ophthalmology"),
    }
    facts = build_facts(
        context(med_request()), [team, referral, unrelated, role("rr", "Practitioner/5", RHEUM)]
    ).orders[0]
    assert facts.prescriber.care_team == (
        (frozenset({"rheumatology"}), "PractitionerRole/rr"),
        (frozenset({"rheumatology"}), "CareTeam/ct"),
    )
    assert [(r.valuesets, r.authored, r.refs) for r in facts.prescriber.referrals] == [
        (frozenset({"rheumatology"}), date(2025, 9, 1), ("ServiceRequest/sr",))
    ]


@pytest.mark.parametrize(
    ("code", "setting"),
    [
        ("IMP", "inpatient"),
        ("ACUTE", "inpatient"),
        ("AMB", "ambulatory"),
        ("VR", "ambulatory"),
        ("HH", "ambulatory"),
        ("EMER", "emergency"),
        ("OBSENC", "unknown"),
    ],
)
def test_encounter_settings(code, setting):
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "in-progress",
        "class": {"system": ACT, "code": code},
    }
    facts = build_facts(context(med_request(), encounter="e1"), [encounter]).orders[0]
    assert facts.encounter is not None
    assert facts.encounter.setting == setting


def test_no_encounter_id_means_no_encounter_and_missing_one_is_unknown():
    assert build_facts(context(med_request()), []).orders[0].encounter is None
    facts = build_facts(context(med_request(), encounter="gone"), []).orders[0]
    assert facts.encounter is not None
    assert (facts.encounter.ref, facts.encounter.setting) == ("Encounter/gone", "unknown")


def test_unreadable_anakinra_order_is_a_failed_order_not_an_exception():
    bad = med_request(authoredOn="yesterday-ish")
    result = build_facts(context(bad), [PATIENT_RES])
    assert result.orders == ()
    assert result.failed_orders == (
        (
            "MedicationRequest/mr1",
            "the order could not be read: authoredOn: not a valid date/time (resource left out)",
        ),
    )


def test_order_with_no_medication_and_other_resources_are_other_draft_orders():
    no_med = med_request("empty")
    del no_med["medicationCodeableConcept"]
    diet = {"resourceType": "NutritionOrder", "id": "n", "status": "draft", "intent": "order"}
    result = build_facts(context(no_med, diet), [])
    assert result.orders == ()
    assert result.failed_orders == ()
    assert result.other_draft_orders == 2


def test_problems_never_carry_values_or_names():
    bad_patient = dict(PATIENT_RES, birthDate="02/05/1970")
    result = build_facts(context(med_request()), [bad_patient])
    assert result.problems == ("Patient/p1: birthDate: not a valid date/time (resource left out)",)
    joined = " ".join(result.problems)
    assert "Testperson" not in joined
    assert "1970" not in joined
    assert result.orders[0].birth_date is None


def test_garbage_context_does_not_raise():
    result = build_facts({"draftOrders": None}, [None, 5, "x"])  # type: ignore[list-item]
    assert result.orders == ()
    assert len(result.problems) == 3
