"""Resources are validated only when the policy can use them (performance), with the same
facts as validating everything: a malformed resource the policy uses is still reported and
left out; a malformed one it cannot use costs nothing and is not reported."""

from __future__ import annotations

from fhir_mappings import r4
from tests.mappings.mapping_builders import (
    LOINC,
    MTX,
    RXNORM,
    cc,
    context,
    dispense,
    med_request,
    observation,
    qty,
    statement,
    weight,
)
from tests.routed import build_facts

HEART_RATE = cc(LOINC, "8867-4", "Heart rate")
PREDNISONE = cc(RXNORM, "8640", "prednisone")


def test_malformed_observation_the_policy_cannot_use_is_not_reported():
    bad_heart_rate = observation("hr", HEART_RATE, value=qty("fast", "/min", "/min"))
    result = build_facts(context(med_request()), [bad_heart_rate])
    assert result.problems == ()
    assert result.orders[0].measurements == ()


def test_malformed_weight_is_reported_and_left_out():
    bad = weight("w", 70, "kg", "kg", "2026-02-01")
    bad["valueQuantity"]["value"] = "seventy"
    result = build_facts(context(med_request()), [bad])
    assert result.problems == (
        "Observation/w: valueQuantity.value: not a number (resource left out)",
    )
    assert result.orders[0].measurements == ()


def test_malformed_record_of_a_drug_outside_the_policy_is_not_reported():
    bad = statement("s1", PREDNISONE, start="2025-01-01", end="2025-06-01")
    bad["effectivePeriod"]["start"] = "January"
    good_mtx = statement("s2", MTX, start="2025-01-01", end="2025-06-30")
    facts = build_facts(context(med_request()), [bad, good_mtx]).orders[0]
    assert facts.problems == ()
    assert [m.ref for m in facts.medications] == ["MedicationStatement/s2"]


def test_malformed_methotrexate_record_is_reported_and_left_out():
    bad = statement("s1", MTX, start="2025-01-01", end="2025-06-30")
    bad["effectivePeriod"]["end"] = "June"
    facts = build_facts(context(med_request()), [bad]).orders[0]
    assert facts.medications == ()
    assert facts.therapy_runs == ()
    assert len(facts.problems) == 1
    assert facts.problems[0].startswith("MedicationStatement/s1: effectivePeriod.end")


def test_invalid_first_copy_lets_a_valid_duplicate_through():
    first = weight("w", 70, "kg", "kg", "2026-02-01")
    first["valueQuantity"]["value"] = "seventy"
    second = weight("w", 71, "kg", "kg", "2026-02-01")
    parsed = r4.parse_resources([first, second])
    assert [o["valueQuantity"]["value"] for o in parsed.of_type("Observation")] == [71]
    assert [parsed.accept(c) is not None for c in parsed.candidates("Observation")] == [
        False,
        True,
    ]


def test_cancelled_order_counts_only_when_a_valid_dispense_cites_it():
    order = med_request("r1", medication=MTX, status="cancelled", authored="2025-01-01")
    handed = dispense("d1", MTX, "2025-01-01", 90, prescription="MedicationRequest/r1")
    broken = dict(handed, id="d2", whenHandedOver="the first of January")
    ok = build_facts(context(med_request()), [order, handed]).orders[0]
    assert [r.drug for r in ok.therapy_runs] == ["methotrexate"]
    only_broken = build_facts(context(med_request()), [order, broken]).orders[0]
    runs = [r for r in only_broken.therapy_runs if "MedicationRequest/r1" in r.refs]
    assert runs == []
