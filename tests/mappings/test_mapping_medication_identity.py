"""Medication identity from codes alone, and medications whose drug cannot be told.

Shapes: Synthea writes RxNorm SCDs ("Methotrexate 10 MG Oral Tablet", 105586); pharmacy
feeds and claims write NDCs in every hyphenated 10-digit form or 11 bare digits; Epic
sends `medicationReference` to a Medication it does not always include; claims lines carry
HCPCS J-codes under the CMS or Blue Button system.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from fhir_mappings import medications, valuesets
from fhir_mappings.facts import PolicyFacts
from tests.mappings.mapping_builders import (
    NDC,
    PATIENT,
    PATIENT_RES,
    RXNORM,
    UCUM,
    cc,
    context,
    dispense,
    med_request,
    statement,
)
from tests.routed import build_facts

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "fhir-samples"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/fhir-samples")


def facts_for(*resources: dict[str, Any]) -> PolicyFacts:
    result = build_facts(context(med_request()), [PATIENT_RES, *resources])
    assert len(result.orders) == 1, result
    return result.orders[0]


def drugs_of(medication: dict[str, Any]) -> list[tuple[str, str]]:
    """(drug, how) of an active order for `medication` in the chart."""
    facts = facts_for(med_request("other", medication=medication, status="active"))
    return [(r.drug, r.matched_by) for r in facts.medications if not r.unidentified]


# --- product codes without any display ------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "drug"),
    [
        ("105586", "methotrexate"),  # SCD methotrexate 10 MG Oral Tablet (Synthea)
        ("284593", "methotrexate"),  # SBD ... [Trexall]
        ("1921240", "adalimumab"),  # 0.8 ML adalimumab 100 MG/ML Auto-Injector [Humira]
        ("1441527", "tocilizumab"),  # SCD 0.9 ML tocilizumab 180 MG/ML Prefilled Syringe
        ("1357547", "tofacitinib"),  # SBD tofacitinib 5 MG Oral Tablet [Xeljanz]
        ("802652", "etanercept"),  # SBD 1 ML etanercept 50 MG/ML Prefilled Syringe [Enbrel]
        ("1872984", "adalimumab"),  # BPCK Humira Pen starter pack
        ("197388", "azathioprine"),  # SCD azathioprine 50 MG Oral Tablet
    ],
)
def test_rxnorm_product_code_alone_names_the_ingredient(code, drug):
    assert drugs_of(cc(RXNORM, code)) == [(drug, "product-code")]


def test_product_code_reaches_every_value_set_of_its_drug():
    facts = facts_for(med_request("other", medication=cc(RXNORM, "1921240"), status="active"))
    (record,) = facts.medications
    assert {"tnf-blocker", "preferred-ra-product", "biologic-dmard-or-jak-inhibitor"} <= (
        record.valuesets
    )


@pytest.mark.parametrize(
    ("code", "drug"),
    [
        ("00054455025", "methotrexate"),  # 11 digits, no hyphens
        ("00054-4550-25", "methotrexate"),  # 5-4-2
        ("0054-4550-25", "methotrexate"),  # 4-4-2 (10 digits)
        ("50242-138-01", "tocilizumab"),  # 5-3-2 (10 digits)
        ("58406-0010-1", "etanercept"),  # 5-4-1 (10 digits)
        ("0069-1001-01", "tofacitinib"),  # 4-4-2
    ],
)
def test_ndc_in_any_form_names_the_ingredient(code, drug):
    assert drugs_of(cc(NDC, code)) == [(drug, "ndc")]


def test_ten_bare_digits_are_not_an_ndc():
    # 0054455025 could be 0054-4550-25 or 00544-550-25: ambiguous, never matched.
    facts = facts_for(med_request("other", medication=cc(NDC, "0054455025"), status="active"))
    assert [r.drug for r in facts.medications if not r.unidentified] == []


@pytest.mark.parametrize("code", ["66658-0234-99", "66658-234-99", "66658023499"])
def test_an_unlisted_package_of_a_listed_ndc_product_is_that_drug(code):
    # Labeler 66658, product 0234 is Kineret 100 mg/0.67 mL; package 99 is in no list.
    assert drugs_of(cc(NDC, code)) == [("anakinra", "ndc")]


def test_an_ndc_of_an_unlisted_product_names_no_drug():
    # Same labeler, another product code: not Kineret (and no other listed drug).
    assert drugs_of(cc(NDC, "66658-0999-07")) == []


@pytest.mark.parametrize(
    "system",
    [
        "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "https://bluebutton.cms.gov/resources/codesystem/hcpcs",
    ],
)
def test_hcpcs_j_codes_of_infused_biologics_are_recognised(system):
    hits = valuesets.match_code(system, "j1745")
    assert {(h.drug, h.valueset, h.matched_by) for h in hits} >= {
        ("infliximab", "tnf-blocker", "hcpcs"),
        ("infliximab", "biologic-dmard-or-jak-inhibitor", "hcpcs"),
    }
    assert valuesets.match_code(system, "J3590") == ()  # "unclassified biologics": no drug


def test_ophthalmic_cyclosporine_products_are_not_in_the_product_data():
    # cyclosporine 0.5 MG/ML Ophthalmic Suspension [Restasis] (S3): eye drops, not a DMARD.
    assert valuesets.match_code(RXNORM, "402092") == ()
    assert [h.drug for h in valuesets.match_code(RXNORM, "835900")] == ["cyclosporine"]


def synthea_methotrexate_orders() -> list[dict[str, Any]]:
    path = next((SAMPLES / "synthea-v2").glob("Asa_*.json"))
    bundle = json.loads(path.read_text("utf-8"))
    found = []
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "MedicationRequest" and "105586" in json.dumps(res):
            res = copy.deepcopy(res)
            res["subject"] = {"reference": PATIENT}
            concept = res["medicationCodeableConcept"]
            concept.pop("text", None)
            for coding in concept["coding"]:
                coding.pop("display", None)  # code alone
            found.append(res)
    return found


def test_synthea_methotrexate_scd_is_methotrexate_by_code_alone():
    orders = synthea_methotrexate_orders()
    assert orders, "the Synthea sample holds methotrexate orders"
    facts = facts_for(*orders)
    mtx = [r for r in facts.medications if r.drug == "methotrexate"]
    assert len(mtx) == len(orders)
    assert {r.matched_by for r in mtx} == {"product-code"}
    assert {r.status for r in mtx} == {"active"}


# --- unidentified medications ---------------------------------------------------------------


def epic_order(rid: str, reference: dict[str, Any], status: str = "active") -> dict[str, Any]:
    """An Epic-style chart order: medicationReference to a Medication (Epic ids)."""
    order = med_request(rid, status=status, authored="2026-01-10", medicationReference=reference)
    del order["medicationCodeableConcept"]
    return order


EPIC_MED = "Medication/eQmPTq3W0x0dZMDt.jFn0fA3"


def unidentified_refs(facts: PolicyFacts) -> list[str]:
    return [r.ref for r in facts.medications if r.unidentified]


def test_active_epic_order_whose_medication_was_not_sent_is_unidentified():
    facts = facts_for(epic_order("eRx1", {"reference": EPIC_MED}))
    (record,) = facts.medications
    assert record.unidentified
    assert record.ref == "MedicationRequest/eRx1"
    assert record.drug == medications.UNIDENTIFIED_DRUG
    assert record.valuesets == frozenset()
    assert record.status == "active"
    assert facts.therapy_runs == ()


def test_reference_display_naming_a_drug_identifies_it():
    named = epic_order("eRx1", {"reference": EPIC_MED, "display": "HUMIRA PEN 40 MG/0.4 ML"})
    other = epic_order("eRx2", {"reference": EPIC_MED, "display": "lisinopril 10 MG Oral Tablet"})
    facts = facts_for(named, other)
    assert [(r.drug, r.unidentified) for r in facts.medications] == [("adalimumab", False)]


def test_medication_fetched_with_the_chart_identifies_the_order():
    medication: dict[str, Any] = {"resourceType": "Medication", "id": EPIC_MED.split("/")[1]}
    medication["code"] = cc(RXNORM, "1921240")  # Humira auto-injector, code only
    facts = facts_for(epic_order("eRx1", {"reference": EPIC_MED}), medication)
    assert [(r.drug, r.matched_by) for r in facts.medications] == [("adalimumab", "product-code")]


@pytest.mark.parametrize(
    "medication",
    [
        cc(RXNORM, "314076", "lisinopril 10 MG Oral Tablet"),
        cc(text="lisinopril 10 MG Oral Tablet"),
        cc("urn:oid:1.2.840.114350.1.13.0.1.7.2.698288", "12345", "LISINOPRIL 10 MG TAB"),
    ],
    ids=["rxnorm-with-display", "text-only", "epic-local-code-with-display"],
)
def test_a_named_other_drug_is_not_unidentified(medication):
    facts = facts_for(med_request("other", medication=medication, status="active"))
    assert facts.medications == ()


@pytest.mark.parametrize(
    "medication",
    [
        cc(text="Biologic injection per outside records"),
        cc(text="TNF inhibitor (name unknown) q2 weeks"),
        cc(
            "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288",
            "77001",
            "JAK INHIBITOR - PATIENT SUPPLIED",
        ),
    ],
    ids=["biologic-text", "tnf-inhibitor-text", "jak-inhibitor-local-display"],
)
def test_a_name_that_is_only_a_drug_class_of_the_lists_is_unidentified(medication):
    """A medication-list entry that names the class ("biologic", "TNF inhibitor") but no drug
    may be one of the listed drugs: it is an unidentified record (concurrent therapy is
    then unknown), not another drug."""
    facts = facts_for(med_request("other", medication=medication, status="active"))
    assert unidentified_refs(facts) == ["MedicationRequest/other"]


def test_a_named_drug_beside_its_class_is_that_drug_not_unidentified():
    facts = facts_for(
        med_request("other", medication=cc(text="Humira (TNF inhibitor) pen"), status="active")
    )
    assert [(r.drug, r.unidentified) for r in facts.medications] == [("adalimumab", False)]


@pytest.mark.parametrize(
    "medication",
    [cc(RXNORM, "9999999"), cc(NDC, "99999-9999-99")],
    ids=["unknown-rxnorm", "unknown-ndc"],
)
def test_only_unknown_codes_and_no_name_is_unidentified(medication):
    facts = facts_for(med_request("other", medication=medication, status="active"))
    assert unidentified_refs(facts) == ["MedicationRequest/other"]


@pytest.mark.parametrize("status", ["stopped", "completed", "cancelled", "entered-in-error"])
def test_ended_orders_of_an_unknown_drug_are_not_records(status):
    facts = facts_for(epic_order("eRx1", {"reference": EPIC_MED}, status=status))
    assert facts.medications == ()


def test_unidentified_statement_and_dispense_are_records_with_their_dates():
    stmt = statement("ms1", cc(), status="active", start="2026-01-01")
    del stmt["medicationCodeableConcept"]
    stmt["medicationReference"] = {"reference": "Medication/gone"}
    disp = dispense("md1", cc(), "2026-02-20", 28)
    del disp["medicationCodeableConcept"]
    disp["medicationReference"] = {"reference": "Medication/gone"}
    facts = facts_for(stmt, disp)
    by_ref = {r.ref: r for r in facts.medications}
    assert set(by_ref) == {"MedicationStatement/ms1", "MedicationDispense/md1"}
    assert all(r.unidentified for r in by_ref.values())
    assert str(by_ref["MedicationDispense/md1"].start) == "2026-02-20"
    assert by_ref["MedicationDispense/md1"].days_supply == 28
    assert facts.therapy_runs == ()


def test_identified_dispense_keeps_its_stated_days_supply():
    with_days = dispense("md1", cc(RXNORM, "1921240"), "2026-02-20", 28)
    without = dispense("md2", cc(RXNORM, "1921240"), "2026-02-20", 28)
    del without["daysSupply"]
    facts = facts_for(with_days, without)
    supply = {r.ref: r.days_supply for r in facts.medications}
    assert supply == {"MedicationDispense/md1": 28, "MedicationDispense/md2": None}


def test_draft_order_coded_only_by_an_unknown_code_is_reported_not_ignored():
    # It may be Kineret under an NDC this service does not hold.
    order = med_request(medication=cc(NDC, "99999-0234-07"))
    result = build_facts(context(order), [PATIENT_RES])
    assert result.orders == ()
    ((ref, reason),) = result.failed_orders
    assert ref == "MedicationRequest/mr1"
    assert "only by codes" in reason


def test_draft_methotrexate_order_coded_by_product_code_is_another_drug():
    order = med_request(medication=cc(RXNORM, "105586"))
    result = build_facts(context(order), [PATIENT_RES])
    assert result.failed_orders == ()
    assert result.other_draft_orders == 1


def test_ucum_days_supply_is_read_in_weeks_too():
    disp = dispense("md1", cc(RXNORM, "1921240"), "2026-02-20", 4)
    disp["daysSupply"] = {"value": 4, "unit": "wk", "system": UCUM, "code": "wk"}
    (record,) = facts_for(disp).medications
    assert record.days_supply == 28
