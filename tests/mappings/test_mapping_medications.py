"""Medication identity, history records and therapy runs."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from cds_service.policy.packs import default_registry
from fhir_mappings.facts import PolicyFacts
from tests.mappings.mapping_builders import (
    ADALIMUMAB,
    MTX,
    NDC,
    PATIENT_RES,
    RXNORM,
    cc,
    context,
    dispense,
    med_request,
    statement,
)
from tests.routed import build_facts


def facts_for(*resources, order=None, **kwargs) -> PolicyFacts:
    result = build_facts(context(order or med_request()), [PATIENT_RES, *resources], **kwargs)
    assert len(result.orders) == 1, result
    return result.orders[0]


def order_matched_by(medication) -> str | None:
    result = build_facts(context(med_request(medication=medication)), [])
    return result.orders[0].order.matched_by if result.orders else None


@pytest.mark.parametrize(
    ("medication", "matched_by"),
    [
        (cc(RXNORM, "72435"), "ingredient-code"),
        (cc(RXNORM, "727711"), "product-code"),
        (cc(RXNORM, "352734", "Kineret"), "product-code"),
        (cc(NDC, "66658-234-07"), "ndc"),
        (cc(NDC, "66658023428"), "ndc"),
        (cc("urn:oid:2.16.840.1.113883.6.69", "66658-0234-07"), "ndc"),
        (cc(text="Kineret 100 mg/0.67 mL syringe"), "name"),
        (cc("http://example.org/local-formulary", "K1", "ANAKINRA 100MG/0.67ML SYR"), "name"),
    ],
)
def test_anakinra_order_is_recognised_by_code_ndc_or_name(medication, matched_by):
    assert order_matched_by(medication) == matched_by


def test_name_inside_another_word_does_not_match():
    assert order_matched_by(cc(text="Kineretrix")) is None


def test_contained_medication_and_referenced_medication():
    contained = med_request(
        medicationReference={"reference": "#med"},
        contained=[{"resourceType": "Medication", "id": "med", "code": cc(NDC, "66658-234-28")}],
    )
    del contained["medicationCodeableConcept"]
    result = build_facts(context(contained), [])
    assert result.orders[0].order.matched_by == "ndc"

    referenced = med_request(medicationReference={"reference": "Medication/m9"})
    del referenced["medicationCodeableConcept"]
    medication = {
        "resourceType": "Medication",
        "id": "m9",
        "code": {"text": "compounded"},
        "ingredient": [{"itemCodeableConcept": cc(RXNORM, "72435")}],
    }
    result = build_facts(context(referenced), [medication])
    assert result.orders[0].order.matched_by == "ingredient-code"


def by_reference(reference: dict[str, Any], **extra: Any) -> dict[str, Any]:
    order = med_request(medicationReference=reference, **extra)
    del order["medicationCodeableConcept"]
    return order


def test_order_whose_medication_is_not_in_the_data_is_reported_not_ignored():
    # It may be Kineret: silence would read as "no prior authorization issue".
    result = build_facts(context(by_reference({"reference": "Medication/absent"})), [])
    assert result.orders == ()
    assert result.other_draft_orders == 0
    ((ref, reason),) = result.failed_orders
    assert ref == "MedicationRequest/mr1"
    assert "could not be identified" in reason
    assert "neither sent nor readable" in reason


@pytest.mark.parametrize(
    ("reference", "contained"),
    [
        ({"reference": "#gone"}, []),
        ({"identifier": {"system": "urn:local-formulary", "value": "ERX-1"}}, []),
        ({"reference": "#m"}, [{"resourceType": "Medication", "id": "m", "status": "active"}]),
    ],
    ids=["missing-contained", "identifier-only", "contained-names-nothing"],
)
def test_other_unidentifiable_references_are_reported(reference, contained):
    order = by_reference(reference, contained=contained) if contained else by_reference(reference)
    result = build_facts(context(order), [])
    assert [ref for ref, _ in result.failed_orders] == ["MedicationRequest/mr1"]
    assert "could not be identified" in result.failed_orders[0][1]


def test_malformed_medication_leaves_the_drug_unidentified():
    medication = {"resourceType": "Medication", "id": "m1", "code": cc(RXNORM, "727711")}
    medication["status"] = ["active"]  # not a code: the resource is left out
    result = build_facts(context(by_reference({"reference": "Medication/m1"})), [medication])
    assert result.orders == ()
    ((_, reason),) = result.failed_orders
    assert "could not be read" in reason
    assert any(p.startswith("Medication/m1: status") for p in result.problems)


@pytest.mark.parametrize(
    ("order", "resources"),
    [
        (by_reference({"reference": "Medication/y", "display": "methotrexate 2.5 MG"}), []),
        (
            by_reference({"reference": "Medication/y"}),
            [{"resourceType": "Medication", "id": "y", "code": cc(text="lisinopril 10 mg")}],
        ),
        (med_request(medication=cc("urn:local-formulary", "ERX-5521", "Lasix")), []),
        (by_reference({}), []),
    ],
    ids=["named-by-display", "referenced-medication", "local-code", "no-drug-yet"],
)
def test_orders_named_as_another_drug_or_none_are_still_ignored(order, resources):
    result = build_facts(context(order), resources)
    assert result.orders == ()
    assert result.failed_orders == ()
    assert result.other_draft_orders == 1


def test_other_drug_orders_are_counted_not_evaluated():
    other = med_request("mr2", medication=ADALIMUMAB)
    result = build_facts(context(med_request(), other), [])
    assert len(result.orders) == 1
    assert result.other_draft_orders == 1
    records = result.orders[0].medications
    assert [(r.drug, r.is_draft_order) for r in records] == [("adalimumab", True)]
    assert "tnf-blocker" in records[0].valuesets
    assert "preferred-ra-product" in records[0].valuesets
    assert "biologic-dmard-or-jak-inhibitor" in records[0].valuesets


def test_humira_brand_and_biosimilar_name_are_adalimumab():
    facts = facts_for(
        statement("s1", cc(RXNORM, "353484", "Humira"), start="2025-01-01", end="2025-02-01"),
        statement("s2", cc(text="Hyrimoz 40 mg/0.4 mL pen"), start="2025-05-01", end="2025-06-01"),
    )
    assert {r.drug for r in facts.medications} == {"adalimumab"}
    assert {r.matched_by for r in facts.medications} == {"product-code", "name"}


def test_ophthalmic_cyclosporine_is_not_a_dmard():
    facts = facts_for(
        statement(
            "eye",
            cc(RXNORM, "3008", "cyclosporine", text="cyclosporine 0.05% ophthalmic emulsion"),
            start="2025-01-01",
        ),
        statement("oral", cc(text="Neoral 100 mg capsule"), start="2025-01-01", end="2025-06-01"),
    )
    assert [r.ref for r in facts.medications] == ["MedicationStatement/oral"]
    assert "conventional-dmard" in facts.medications[0].valuesets


def run(facts: PolicyFacts, drug: str):
    return next((r for r in facts.therapy_runs if r.drug == drug), None)


def test_90_day_supply_from_jan_1_covers_through_mar_31():
    facts = facts_for(dispense("d1", MTX, "2025-01-01", 90))
    mtx = run(facts, "methotrexate")
    assert mtx is not None
    assert (mtx.start, mtx.end, mtx.days) == (date(2025, 1, 1), date(2025, 3, 31), 90)


def test_89_days_is_89_days():
    facts = facts_for(statement("s", MTX, start="2025-01-01", end="2025-03-30"))
    mtx = run(facts, "methotrexate")
    assert mtx is not None
    assert mtx.days == 89


def test_gap_of_14_days_joins_and_15_does_not():
    first = dispense("d1", MTX, "2025-01-01", 30)  # Jan 1 .. Jan 30
    joined = facts_for(first, dispense("d2", MTX, "2025-02-14", 30))  # gap Jan 31..Feb 13 = 14
    split = facts_for(first, dispense("d3", MTX, "2025-02-15", 30))  # gap of 15 days
    joined_run = run(joined, "methotrexate")
    split_run = run(split, "methotrexate")
    assert joined_run is not None
    assert split_run is not None
    assert joined_run.refs == ("MedicationDispense/d1", "MedicationDispense/d2")
    assert joined_run.days == 30 + 14 + 30  # the allowed gap counts
    assert split_run.days == 30


def test_refills_extend_a_request():
    request = med_request(
        "old",
        medication=MTX,
        status="completed",
        authored="2025-01-01",
        dispenseRequest={
            "numberOfRepeatsAllowed": 2,
            "expectedSupplyDuration": {
                "value": 30,
                "unit": "days",
                "system": "http://unitsofmeasure.org",
                "code": "d",
            },
        },
    )
    mtx = run(facts_for(request), "methotrexate")
    assert mtx is not None
    assert mtx.days == 90


def test_cancelled_never_dispensed_and_entered_in_error_are_not_trials():
    supply = {"expectedSupplyDuration": {"value": 90, "unit": "d"}}
    cancelled = med_request(
        "c", medication=MTX, status="cancelled", authored="2025-01-01", dispenseRequest=supply
    )
    error = statement("e", MTX, status="entered-in-error", start="2025-01-01", end="2025-06-01")
    facts = facts_for(cancelled, error)
    assert run(facts, "methotrexate") is None
    assert [r.ref for r in facts.medications] == ["MedicationRequest/c"]

    dispensed = dispense("d", MTX, "2025-01-01", 90, prescription="MedicationRequest/c")
    facts = facts_for(cancelled, dispensed)
    mtx = run(facts, "methotrexate")
    assert mtx is not None
    assert mtx.days == 90


def test_open_ended_active_statement_runs_to_the_order_date():
    facts = facts_for(statement("s", MTX, status="active", start="2025-12-01"))
    mtx = run(facts, "methotrexate")
    assert mtx is not None
    assert mtx.end == date(2026, 3, 1)
    assert facts.medications[0].end is None


def test_supply_not_yet_used_is_cut_at_the_order_date():
    facts = facts_for(dispense("d", MTX, "2026-02-15", 90))
    mtx = run(facts, "methotrexate")
    assert mtx is not None
    assert mtx.end == date(2026, 3, 1)
    assert mtx.days == 15


def test_order_without_date_uses_as_of():
    order = med_request(authored=None)
    facts = facts_for(
        statement("s", MTX, status="active", start="2025-12-01"),
        order=order,
        as_of=date(2026, 1, 30),
    )
    assert facts.order.authored_on is None
    mtx = run(facts, "methotrexate")
    assert mtx is not None
    assert mtx.end == date(2026, 1, 30)


def test_effective_datetime_statement_proves_its_day_and_an_unknown_length():
    mtx = run(facts_for(statement("s", MTX, status="completed", when="2025-06-01")), "methotrexate")
    assert mtx is not None
    # One day is all it proves, not all it shows: the run stays open (not a 1-day trial).
    assert (mtx.days, mtx.certainty, mtx.open_ended) == (1, "unknown", True)


def test_current_anakinra_dose_is_on_the_record():
    current = med_request(
        "prev",
        status="active",
        authored="2025-10-01",
        dosageInstruction=[
            {
                "timing": {"code": {"coding": [{"code": "QD"}]}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "syringe"}}],
            }
        ],
    )
    facts = facts_for(
        current, units=default_registry().units
    )  # "1 syringe" needs the product's unit
    record = facts.medications[0]
    assert (record.drug, record.status, record.is_draft_order) == ("anakinra", "active", False)
    assert record.mg_per_day == 100


# Every product the policy names, by brand as an EHR may send it in free text only: section
# III.B (combination), Appendix B (conventional DMARDs, methotrexate, preferred products)
# and Appendix D (TNF blockers), plus the biosimilars of the molecules the policy names as a
# class ("Humira and its biosimilars", "any TNF antagonists", interleukin agents).
_COMBINATION = "biologic-dmard-or-jak-inhibitor"
_NAMED_PRODUCTS: list[tuple[str, str, set[str]]] = [
    ("Cimzia", "certolizumab pegol", {"tnf-blocker", _COMBINATION}),
    ("Enbrel", "etanercept", {"tnf-blocker", _COMBINATION}),
    ("Erelzi", "etanercept", {"tnf-blocker", _COMBINATION}),
    ("Humira", "adalimumab", {"tnf-blocker", "preferred-ra-product", _COMBINATION}),
    ("Simponi", "golimumab", {"tnf-blocker", _COMBINATION}),
    ("Simponi Aria", "golimumab", {"tnf-blocker", _COMBINATION}),
    ("Avsola", "infliximab", {"tnf-blocker", _COMBINATION}),
    ("Inflectra", "infliximab", {"tnf-blocker", _COMBINATION}),
    ("Remicade", "infliximab", {"tnf-blocker", _COMBINATION}),
    ("Renflexis", "infliximab", {"tnf-blocker", _COMBINATION}),
    ("Arcalyst", "rilonacept", {"interleukin-agent", _COMBINATION}),
    ("Ilaris", "canakinumab", {"interleukin-agent", _COMBINATION}),
    ("Actemra", "tocilizumab", {"interleukin-agent", "preferred-ra-product", _COMBINATION}),
    ("Kevzara", "sarilumab", {"interleukin-agent", _COMBINATION}),
    ("Stelara", "ustekinumab", {"interleukin-agent", _COMBINATION}),
    ("Wezlana", "ustekinumab", {"interleukin-agent", _COMBINATION}),
    ("Selarsdi", "ustekinumab", {"interleukin-agent", _COMBINATION}),
    ("Pyzchiva", "ustekinumab", {"interleukin-agent", _COMBINATION}),
    ("Otulfi", "ustekinumab", {"interleukin-agent", _COMBINATION}),
    ("Imuldosa", "ustekinumab", {"interleukin-agent", _COMBINATION}),
    ("Yesintek", "ustekinumab", {"interleukin-agent", _COMBINATION}),
    ("Steqeyma", "ustekinumab", {"interleukin-agent", _COMBINATION}),
    ("Cosentyx", "secukinumab", {"interleukin-agent", _COMBINATION}),
    ("Taltz", "ixekizumab", {"interleukin-agent", _COMBINATION}),
    ("Siliq", "brodalumab", {"interleukin-agent", _COMBINATION}),
    ("Ilumya", "tildrakizumab", {"interleukin-agent", _COMBINATION}),
    ("Skyrizi", "risankizumab", {"interleukin-agent", _COMBINATION}),
    ("Tremfya", "guselkumab", {"interleukin-agent", _COMBINATION}),
    ("Xeljanz", "tofacitinib", {"jak-inhibitor", "preferred-ra-product", _COMBINATION}),
    ("Xeljanz XR", "tofacitinib", {"jak-inhibitor", "preferred-ra-product", _COMBINATION}),
    ("Cibinqo", "abrocitinib", {"jak-inhibitor", _COMBINATION}),
    ("Olumiant", "baricitinib", {"jak-inhibitor", _COMBINATION}),
    ("Rinvoq", "upadacitinib", {"jak-inhibitor", _COMBINATION}),
    ("Rituxan", "rituximab", {"anti-cd20", _COMBINATION}),
    ("Riabni", "rituximab", {"anti-cd20", _COMBINATION}),
    ("Ruxience", "rituximab", {"anti-cd20", _COMBINATION}),
    ("Truxima", "rituximab", {"anti-cd20", _COMBINATION}),
    ("Rituxan Hycela", "rituximab", {"anti-cd20", _COMBINATION}),
    ("Orencia", "abatacept", {"costimulation-modulator", _COMBINATION}),
    ("Entyvio", "vedolizumab", {"integrin-antagonist", _COMBINATION}),
    ("Hadlima", "adalimumab", {"tnf-blocker", "preferred-ra-product", _COMBINATION}),
    ("Yusimry", "adalimumab", {"tnf-blocker", "preferred-ra-product", _COMBINATION}),
    ("Hyrimoz", "adalimumab", {"tnf-blocker", "preferred-ra-product", _COMBINATION}),
    ("Hulio", "adalimumab", {"tnf-blocker", "preferred-ra-product", _COMBINATION}),
    ("Cyltezo", "adalimumab", {"tnf-blocker", "preferred-ra-product", _COMBINATION}),
    ("Abrilada", "adalimumab", {"tnf-blocker", "preferred-ra-product", _COMBINATION}),
    ("Idacio", "adalimumab", {"tnf-blocker", "preferred-ra-product", _COMBINATION}),
    ("Yuflyma", "adalimumab", {"tnf-blocker", "preferred-ra-product", _COMBINATION}),
    ("Simlandi", "adalimumab", {"tnf-blocker", "preferred-ra-product", _COMBINATION}),
    ("Azasan", "azathioprine", {"conventional-dmard"}),
    ("Imuran", "azathioprine", {"conventional-dmard"}),
    ("Cuprimine", "penicillamine", {"conventional-dmard"}),
    ("Sandimmune", "cyclosporine", {"conventional-dmard"}),
    ("Neoral", "cyclosporine", {"conventional-dmard"}),
    ("Plaquenil", "hydroxychloroquine", {"conventional-dmard"}),
    ("Arava", "leflunomide", {"conventional-dmard"}),
    ("Ridaura", "auranofin", {"conventional-dmard"}),
    ("Azulfidine", "sulfasalazine", {"conventional-dmard"}),
    ("Trexall", "methotrexate", {"methotrexate"}),
    ("Otrexup", "methotrexate", {"methotrexate"}),
    ("Rasuvo", "methotrexate", {"methotrexate"}),
    ("RediTrex", "methotrexate", {"methotrexate"}),
    ("Xatmep", "methotrexate", {"methotrexate"}),
    ("Rheumatrex", "methotrexate", {"methotrexate"}),
]


@pytest.mark.parametrize(
    ("brand", "drug", "sets"), _NAMED_PRODUCTS, ids=[b for b, _, _ in _NAMED_PRODUCTS]
)
def test_every_policy_named_brand_is_recognised_from_its_name(brand, drug, sets):
    facts = facts_for(
        statement("s1", cc(text=f"{brand} (as documented)"), status="active", start="2025-01-01")
    )
    assert [(r.drug, r.matched_by) for r in facts.medications] == [(drug, "name")]
    assert sets <= facts.medications[0].valuesets
    assert "anakinra" not in facts.medications[0].valuesets


def test_kineret_itself_is_not_a_combination_drug():
    facts = facts_for(statement("s1", cc(text="Kineret 100 mg"), status="active"))
    records = [r for r in facts.medications if r.drug == "anakinra"]
    assert records
    assert all(_COMBINATION not in r.valuesets for r in records)
