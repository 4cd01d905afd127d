"""Validation and indexing of incoming resources."""

from __future__ import annotations

import copy

from fhir_mappings import r4
from tests.mappings.mapping_builders import LOINC, cc, med_request, observation, qty


def test_sandbox_single_category_object_is_wrapped_and_input_untouched():
    order = med_request(category={"coding": [{"code": "outpatient"}]})
    before = copy.deepcopy(order)
    data, problems = r4.validate(order)
    assert problems == ()
    assert data is not None
    assert isinstance(data["category"], list)
    assert order == before


def test_bad_field_is_reported_by_field_never_by_value():
    obs = observation("7", cc(LOINC, "29463-7"), value=qty("seventy-SECRET", "kg", "kg"))
    parsed = r4.parse_resources([obs])
    assert parsed.of_type("Observation") == ()
    assert parsed.problems == (
        "Observation/7: valueQuantity.value: not a number (resource left out)",
    )
    assert "SECRET" not in " ".join(parsed.problems)


def test_unknown_field_is_ignored_and_reported():
    obs = observation("8", cc(LOINC, "29463-7"), value=qty(70, "kg", "kg"))
    obs["vendorExtra"] = "x"
    parsed = r4.parse_resources([obs])
    assert len(parsed.of_type("Observation")) == 1
    assert parsed.problems == ("Observation/8: vendorExtra: unknown field, ignored",)


def test_duplicates_keep_one_and_unused_types_are_ignored():
    first = observation("1", cc(LOINC, "29463-7"), value=qty(70, "kg", "kg"))
    second = observation("1", cc(LOINC, "29463-7"), value=qty(80, "kg", "kg"))
    other = {"resourceType": "Immunization", "id": "i", "status": "nonsense"}
    parsed = r4.parse_resources([first, second, other, None, {"id": "x"}])
    assert [o["valueQuantity"]["value"] for o in parsed.of_type("Observation")] == [70]
    assert "Immunization/i" not in parsed.by_ref
    assert parsed.problems == ("resources[3]: not a FHIR resource", "resources[4]: no resourceType")


def test_encounter_class_sent_as_list_is_accepted():
    encounter = {
        "resourceType": "Encounter",
        "id": "e",
        "status": "in-progress",
        "class": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}
                ]
            }
        ],
    }
    data, problems = r4.validate(encounter)
    assert problems == ()
    assert data is not None
    assert data["class"]["code"] == "IMP"


def test_a_calls_index_is_freed_when_the_call_ends_without_waiting_for_gc() -> None:
    """No reference cycle keeps a call's parsed data (and the request body) alive until the
    next full garbage collection: worker memory follows the calls in flight."""
    import gc
    import weakref

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        parsed = r4.parse_resources([{"resourceType": "Patient", "id": "p1"}])
        assert parsed.by_ref.get("Patient/p1") is not None
        gone = weakref.ref(parsed)
        del parsed
        assert gone() is None
    finally:
        if was_enabled:
            gc.enable()
