"""Properties of the decision over the real-shaped records of the public sample charts.

The records are what the EHR's prefetch carries for each chart (and each variant) of
`test_realworld_charts.py`; the decision is the mapping plus the policy engine, called
directly (`fhir_mappings.build_facts`, `policy.engine.evaluate`), so each example is fast.

- Adding unrelated resources (another patient's records, or this patient's records of kinds
  and codes the policy never reads) never changes the decision.
- Removing a record never turns an unknown or not-met criterion into met, except where
  the criterion rests on absence (no concurrent therapy, no hypersensitivity: removing the
  conflicting record is what makes them met).
- Duplicating a record never changes the decision.
- Shuffling the order of the records never changes the decision.

The decision compared is the pathway, section, outcome and every criterion's status.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import date
from functools import cache
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cds_service.policy.engine import evaluate, load_policy
from cds_service.prefetch import flatten
from tests.realworld.cases import ALL_CASES, prepare
from tests.realworld.charts import Json, load_charts
from tests.realworld.ehr import draft_order, hook_context, prefetch_from_chart
from tests.realworld.expectations import NOT_EVALUATED
from tests.routed import build_facts

View = tuple[Any, ...]

ABSENCE_CHECKS: Final = frozenset({"no-concurrent-therapy", "hypersensitivity"})
"""Checks that are met when something is NOT found: removing a record may make them met."""
CORRECTION_CASES: Final = frozenset({"variant/hershel-stale-version-first"})
"""Charts in which a record corrects another (a newer version): removing the correction
brings the stale record back, so the removal property does not apply to them."""
UNRELATED_OBSERVATION_CODES: Final = frozenset(
    {"8867-4", "8480-6", "8462-4", "85354-9", "9279-1", "8302-2", "39156-5", "2339-0", "2345-7"}
)
"""LOINC heart rate, blood pressure, respiratory rate, height, BMI, glucose."""
UNRELATED_TYPES: Final = frozenset(
    {"Immunization", "Procedure", "DiagnosticReport", "ImagingStudy"}
)
"""Resource types the policy never reads."""

NAMES: Final = [case.name for case in ALL_CASES if case.outcome != NOT_EVALUATED]
"""Every case with a decision to compare (an order that cannot be read has none)."""
REMOVAL_NAMES: Final = [name for name in NAMES if name not in CORRECTION_CASES]
SETTINGS: Final = settings(
    max_examples=5,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a shrunk shuffle says no more
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@cache
def inputs(name: str) -> tuple[Json, tuple[Json, ...], date]:
    """The hook context, the prefetched records and the order date of a case."""
    prepared = prepare(name)
    order = draft_order(prepared.chart, prepared.spec)
    if prepared.case.edit_order is not None:
        prepared.case.edit_order(order)
    context = hook_context(prepared.chart, prepared.spec, order)
    prefetch = prefetch_from_chart(prepared.chart, context, prepared.spec)
    records = tuple(dict(r) for value in prefetch.values() for r in flatten(value))
    return context, records, prepared.spec.order_date


def view(context: Mapping[str, Any], records: Sequence[Mapping[str, Any]], today: date) -> View:
    result = build_facts(context, records, as_of=today)
    if not result.orders:
        return ("not-evaluated", tuple(reason for _, reason in result.failed_orders))
    decision = evaluate(load_policy(), result.orders[0], today)
    return (
        decision.pathway.value,
        decision.section,
        decision.outcome.value,
        tuple((r.id, r.check, r.status.value) for r in decision.criteria),
    )


@cache
def baseline(name: str) -> View:
    context, records, today = inputs(name)
    return view(context, records, today)


def _patient_ref(record: Mapping[str, Any]) -> str | None:
    for field in ("subject", "patient", "beneficiary"):
        value = record.get(field)
        if isinstance(value, Mapping) and isinstance(value.get("reference"), str):
            return str(value["reference"])
    return None


def _codes(record: Mapping[str, Any]) -> set[str]:
    concept = record.get("code")
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    return {str(c.get("code")) for c in codings or [] if isinstance(c, Mapping)}


POOL_TYPES: Final = UNRELATED_TYPES | {
    "Condition",
    "MedicationRequest",
    "AllergyIntolerance",
    "Observation",
}


def _is_unrelated(record: Mapping[str, Any]) -> bool:
    """Of a kind, or an observation code, that the policy never reads."""
    kind = record.get("resourceType")
    if kind in UNRELATED_TYPES:
        return True
    codes = _codes(record)
    return kind == "Observation" and bool(codes) and codes <= UNRELATED_OBSERVATION_CODES


@cache
def unrelated_pool() -> tuple[Json, ...]:
    """Records from every sample chart to add to another chart: see `_foreign`."""
    return tuple(
        record
        for chart in load_charts()
        for record in chart.resources
        if record.get("resourceType") in POOL_TYPES
    )


def _foreign(record: Json, patient_ref: str) -> Json:
    """`record` made unrelated to the decision: re-pointed to the patient when its kind and
    code are never read, otherwise kept as (or made) another patient's record. Renamed so
    that it cannot clash with the chart's own ids."""
    copied = copy.deepcopy(record)
    copied["id"] = f"unrelated-{copied.get('id', 'x')}"[:64]
    field = "patient" if "patient" in copied and "subject" not in copied else "subject"
    if _is_unrelated(copied):
        copied[field] = {"reference": patient_ref}
    elif _patient_ref(copied) in (patient_ref, None):
        copied[field] = {"reference": "Patient/someone-else"}
    return copied


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_adding_unrelated_resources_never_changes_a_decision(
    name: str, data: st.DataObject
) -> None:
    context, records, today = inputs(name)
    patient_ref = f"Patient/{context['patientId']}"
    extra = data.draw(st.lists(st.sampled_from(unrelated_pool()), min_size=1, max_size=8))
    added = [_foreign(r, patient_ref) for r in extra]
    mixed = list(records)
    rnd = data.draw(st.randoms(use_true_random=False))
    for record in added:
        mixed.insert(rnd.randint(0, len(mixed)), record)
    assert view(context, mixed, today) == baseline(name)


@pytest.mark.parametrize("name", REMOVAL_NAMES)
@SETTINGS
@given(data=st.data())
def test_removing_a_record_never_turns_unknown_or_not_met_into_met(
    name: str, data: st.DataObject
) -> None:
    context, records, today = inputs(name)
    if not records:
        return
    index = data.draw(st.integers(0, len(records) - 1))
    before = baseline(name)
    after = view(context, [r for i, r in enumerate(records) if i != index], today)
    if before[0] == "not-evaluated" or after[0] == "not-evaluated":
        return
    was = {cid: (check, status) for cid, check, status in before[3]}
    now = {cid: status for cid, _, status in after[3]}
    gained = [
        cid
        for cid, (check, status) in was.items()
        if status != "met" and now.get(cid) == "met" and check not in ABSENCE_CHECKS
    ]
    removed = records[index]
    assert not gained, (
        f"removing {removed.get('resourceType')}/{removed.get('id')} made {gained} met"
    )
    if after[2] == "criteria-met" and before[2] != "criteria-met":
        changed = [cid for cid, (check, status) in was.items() if now.get(cid) != status]
        assert all(was[cid][0] in ABSENCE_CHECKS for cid in changed), changed


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_duplicating_a_record_never_changes_a_decision(name: str, data: st.DataObject) -> None:
    context, records, today = inputs(name)
    if not records:
        return
    index = data.draw(st.integers(0, len(records) - 1))
    position = data.draw(st.integers(0, len(records)))
    doubled = list(records)
    doubled.insert(position, copy.deepcopy(records[index]))
    assert view(context, doubled, today) == baseline(name)
    assert view(context, [*records, *copy.deepcopy(records)], today) == baseline(name)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_shuffling_the_records_never_changes_a_decision(name: str, data: st.DataObject) -> None:
    context, records, today = inputs(name)
    shuffled = list(records)
    data.draw(st.randoms(use_true_random=False)).shuffle(shuffled)
    assert view(context, shuffled, today) == baseline(name)
    assert view(context, records[::-1], today) == baseline(name)


def test_every_case_is_decided_by_the_mapping_and_engine() -> None:
    """The properties mean something only if each case reaches a decision."""
    for name in NAMES:
        assert baseline(name)[0] != "not-evaluated", name
