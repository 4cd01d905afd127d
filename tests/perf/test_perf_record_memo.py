"""The record of a chart sent again with the same orders is the one read before
(`record._RECORDS`), and only then: everything the record depends on (every resource, the
context fields it reads, the day, the resource types the EHR could not give, the product
units) is in its key, and a chart whose text cannot tell it apart from another is read
every time."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest

from benchmarks.workload import ENCOUNTER_ID, PATIENT_ID, USER, chart
from fhir_mappings import record
from fhir_mappings.product_unit import ProductUnit

TODAY = date(2026, 12, 4)
SYRINGE = ProductUnit("syringe", "syringes", "{syringe}", ("PFS",), 100.0, 0.67, 100.0)
Call = tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    record.forget_records()
    yield
    record.forget_records()


def _call() -> Call:
    """(context, resources, build_record's keyword arguments) of a 120-resource chart."""
    # The benchmark's patient, whose chart meets every criterion.
    resources, order = chart(120)
    context = {
        "patientId": PATIENT_ID,
        "userId": USER,
        "encounterId": ENCOUNTER_ID,
        "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": order}]},
    }
    return context, resources, {"as_of": TODAY, "unavailable": frozenset(), "units": None}


def _build(call: Call) -> record.PatientRecord:
    context, resources, options = copy.deepcopy(call)  # new objects, as each request parses
    return record.build_record(context, resources, **options)


def _fresh(call: Call) -> record.PatientRecord:
    """The record read by a worker that has kept none."""
    record.forget_records()
    return _build(call)


def test_a_chart_sent_again_gets_the_record_read_before() -> None:
    call = _call()
    first = _build(call)
    again = _build(call)
    assert again is first
    assert _fresh(call) == first


def _observation(call: Call) -> dict[str, Any]:
    return next(r for r in call[1] if r["resourceType"] == "Observation" and "valueQuantity" in r)


def _order(call: Call) -> dict[str, Any]:
    order: dict[str, Any] = call[0]["draftOrders"]["entry"][0]["resource"]
    return order


def _new_value(call: Call) -> None:
    _observation(call)["valueQuantity"]["value"] += 1


def _new_dose(call: Call) -> None:
    _order(call)["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] *= 2


def _later_day(call: Call) -> None:
    call[2]["as_of"] = date(2027, 6, 1)


def _other_encounter(call: Call) -> None:
    call[0]["encounterId"] = "another-encounter"


def _other_user(call: Call) -> None:
    call[0]["userId"] = "Practitioner/someone-else"


def _no_results_given(call: Call) -> None:
    call[2]["unavailable"] = frozenset({"Observation"})


def _product_unit(call: Call) -> None:
    call[2]["units"] = {"anakinra": SYRINGE}


def _one_result_fewer(call: Call) -> None:
    call[1].remove(_observation(call))


CHANGES: dict[str, Callable[[Call], None]] = {
    "a result's value": _new_value,
    "the ordered dose": _new_dose,
    "the day": _later_day,
    "the encounter": _other_encounter,
    "the user": _other_user,
    "a resource type the EHR could not give": _no_results_given,
    "the product units": _product_unit,
    "one result fewer": _one_result_fewer,
}


@pytest.mark.parametrize("change", CHANGES)
def test_anything_the_record_depends_on_reads_it_again(change: str) -> None:
    call = _call()
    first = _build(call)
    changed = copy.deepcopy(call)
    CHANGES[change](changed)
    after = _build(changed)
    assert after is not first
    assert after == _fresh(changed)
    assert after != first  # each change does show in the record
    assert _fresh(call) == first


def test_a_chart_with_a_nan_or_a_null_is_read_every_time() -> None:
    # orjson writes NaN as null: such a chart's text does not stand for it exactly.
    for value in (float("nan"), None):
        call = _call()
        _observation(call)["note"] = value
        assert _build(call) is not _build(call)


def test_a_chart_holding_objects_other_than_json_values_is_read_every_time() -> None:
    # A date object would be written as the text of a date string (and read differently).
    call = _call()
    _observation(call)["issued"] = date(2026, 1, 5)
    assert _build(call) is not _build(call)
    orders = _call()
    _order(orders)["authoredOn"] = date(2026, 1, 5)
    assert _build(orders) is not _build(orders)
