"""Roles and contraindications in other code systems (issue 12): SNOMED CT occupations on a
CareTeam or PractitionerRole, PractitionerRoles linked through the prescriber's NPI as
Synthea v3 writes them, SNOMED CT conditions that contraindicate methotrexate."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cds_service.policy.engine import evaluate, load_policy
from cds_service.policy.model import Status
from fhir_mappings.facts import PolicyFacts
from tests.mappings.mapping_builders import (
    ICD,
    NUCC,
    PATIENT,
    PATIENT_RES,
    SCT,
    cc,
    condition,
    context,
    med_request,
)
from tests.routed import build_facts

Res = dict[str, Any]
NPI = "http://hl7.org/fhir/sid/us-npi"
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "fhir-samples"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/fhir-samples")


def practitioner(rid: str, npi: str) -> Res:
    return {
        "resourceType": "Practitioner",
        "id": rid,
        "identifier": [{"system": NPI, "value": npi}],
        "name": [{"family": "Example", "given": ["Pat"], "prefix": ["Dr."]}],
    }


def synthea_role(rid: str, npi: str, taxonomy: str, display: str) -> Res:
    """PractitionerRole as Synthea v3 writes it: the practitioner by NPI identifier only."""
    concept = {"coding": [{"system": NUCC, "code": taxonomy, "display": display}], "text": display}
    return {
        "resourceType": "PractitionerRole",
        "id": rid,
        "practitioner": {"identifier": {"system": NPI, "value": npi}, "display": "Dr. Pat"},
        "code": [concept],
        "specialty": [concept],
    }


RHEUM_ROLE = synthea_role("r1", "9999924092", "207RR0500X", "Rheumatology")
GP_ROLE = synthea_role("r2", "9999999698", "208D00000X", "General Practice Physician")


def facts_for(order: Res, *resources: Res, user: str = "Practitioner/unknown") -> PolicyFacts:
    ra = condition("ra", cc(ICD, "M06.9", "Rheumatoid arthritis, unspecified"))
    result = build_facts(context(order, user=user), [PATIENT_RES, ra, *resources])
    return result.orders[0]


def i_a_2(facts: PolicyFacts) -> Status:
    decision = evaluate(load_policy(), facts, date(2026, 3, 1))
    return next(r.status for r in decision.criteria if r.id == "I.A.2")


@pytest.mark.parametrize(
    "requester",
    [
        # Synthea v3: a conditional reference by NPI
        {"reference": f"Practitioner?identifier={NPI}|9999924092", "display": "Dr. Pat"},
        {
            "reference": "Practitioner?identifier="
            "http%3A%2F%2Fhl7.org%2Ffhir%2Fsid%2Fus-npi%7C9999924092"
        },
        # a logical reference by identifier
        {"identifier": {"system": NPI, "value": "9999924092"}},
        # a literal reference to a Practitioner that carries the NPI
        {"reference": "Practitioner/p-rheum"},
    ],
)
def test_the_prescribers_role_is_found_through_the_npi(requester: Res):
    order = med_request(requester=requester)
    facts = facts_for(order, practitioner("p-rheum", "9999924092"), RHEUM_ROLE, GP_ROLE)
    assert facts.prescriber.has_role_data
    assert facts.prescriber.specialty_valuesets == {"rheumatology"}
    assert "PractitionerRole/r1" in facts.prescriber.refs
    assert i_a_2(facts) is Status.MET


def test_another_npi_does_not_link():
    order = med_request(requester={"reference": f"Practitioner?identifier={NPI}|1234567893"})
    facts = facts_for(order, practitioner("p-rheum", "9999924092"), RHEUM_ROLE)
    assert not facts.prescriber.has_role_data
    assert i_a_2(facts) is Status.UNKNOWN


def test_a_local_identifier_never_links_people():
    role = synthea_role("r1", "9999924092", "207RR0500X", "Rheumatology")
    role["practitioner"] = {"identifier": {"system": "urn:oid:1.2.3.4", "value": "42"}}
    person = practitioner("p", "9999924092")
    person["identifier"] = [{"system": "urn:oid:1.2.3.4", "value": "42"}]
    facts = facts_for(med_request(requester={"reference": "Practitioner/p"}), person, role)
    assert not facts.prescriber.has_role_data


def test_a_rheumatologist_on_the_care_team_by_snomed_occupation_code_only():
    team = {
        "resourceType": "CareTeam",
        "id": "ct",
        "status": "active",
        "subject": {"reference": PATIENT},
        "participant": [
            {
                "role": [{"coding": [{"system": SCT, "code": "45440000"}]}],
                "member": {"reference": "Practitioner/someone"},
            },
        ],
    }
    facts = facts_for(med_request(requester={"reference": "Practitioner/x"}), team)
    assert facts.prescriber.care_team == ((frozenset({"rheumatology"}), "CareTeam/ct"),)
    assert i_a_2(facts) is Status.MET


def test_a_pediatric_rheumatologist_role_in_snomed():
    role = {
        "resourceType": "PractitionerRole",
        "id": "peds",
        "practitioner": {"reference": "Practitioner/x"},
        "code": [{"coding": [{"system": SCT, "code": "309335001"}]}],
    }
    facts = facts_for(med_request(requester={"reference": "Practitioner/x"}), role)
    assert facts.prescriber.specialty_valuesets == {"rheumatology"}


def test_a_synthea_v3_chart_links_its_own_orders_to_their_roles():
    bundle = SAMPLES / "synthea-v3" / "6a4160eb-a793-2f86-2302-378626f46cce.bundle.json"
    if not bundle.is_file():
        pytest.skip("public samples not available")
    resources = [e["resource"] for e in json.loads(bundle.read_text())["entry"]]
    requester = next(r["requester"] for r in resources if r["resourceType"] == "MedicationRequest")
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    order = med_request(requester=requester, subject={"reference": f"Patient/{patient['id']}"})
    ctx = context(order)
    ctx["patientId"] = patient["id"]
    facts = build_facts(ctx, resources).orders[0]
    assert facts.prescriber.has_role_data  # Synthea's role carries the prescriber's NPI
    assert facts.prescriber.specialty_codes  # the NUCC code is read from it


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("77386006", "Pregnant"),
        ("72892002", "Normal pregnancy"),
        ("19943007", "Cirrhosis of liver"),
        ("7200002", "Alcoholism"),
        ("234532001", "Immunodeficiency disorder"),
        ("302215000", "Thrombocytopenic disorder"),
        ("46177005", "End-stage renal disease"),
    ],
)
def test_snomed_conditions_contraindicate_methotrexate(code: str, display: str):
    facts = facts_for(med_request(), condition("c", cc(SCT, code, display)))
    assert [(i.kind, i.substance) for i in facts.intolerances] == [
        ("contraindication", "methotrexate")
    ]


@pytest.mark.parametrize(
    ("code", "verification"), [("77386006", "provisional"), ("60001007", "confirmed")]
)
def test_a_possible_or_absent_pregnancy_is_no_contraindication(code: str, verification: str):
    facts = facts_for(med_request(), condition("c", cc(SCT, code), verification=verification))
    assert facts.intolerances == ()


def test_a_conditional_medication_reference_is_an_unidentified_order_not_no_drug():
    order = med_request(
        medicationReference={
            "reference": "Medication?code=http://www.nlm.nih.gov/research/umls/rxnorm|1114195"
        }
    )
    del order["medicationCodeableConcept"]
    result = build_facts(context(order), [PATIENT_RES])
    assert [ref for ref, _ in result.failed_orders] == ["MedicationRequest/mr1"]
