"""Record identity: the newest copy of a resource is read; resources without an id count."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cds_service.prefetch import deduplicate
from fhir_mappings import r4
from fhir_mappings.facts import PolicyFacts
from fhir_mappings.fields import compare_versions, ref_of
from tests.mappings.mapping_builders import (
    ICD,
    MTX,
    PATIENT_RES,
    cc,
    condition,
    context,
    med_request,
    statement,
    weight,
)
from tests.routed import build_facts

Res = dict[str, Any]


def versioned(resource: Res, version: str | None, updated: str | None = None) -> Res:
    out = copy.deepcopy(resource)
    meta: Res = {}
    if version is not None:
        meta["versionId"] = version
    if updated is not None:
        meta["lastUpdated"] = updated
    out["meta"] = meta
    return out


RA = cc(ICD, "M05.79", "Rheumatoid arthritis with rheumatoid factor of multiple sites")


def facts_of(*resources: Res) -> PolicyFacts:
    result = build_facts(context(med_request()), [PATIENT_RES, *resources])
    return result.orders[0]


@pytest.mark.parametrize("newest_first", [True, False])
def test_a_diagnosis_entered_in_error_in_its_newest_version_is_not_read(newest_first: bool):
    old = versioned(condition("ra", RA), "2", "2026-01-05T10:00:00Z")
    new = versioned(
        condition("ra", RA, verification="entered-in-error"), "10", "2026-02-01T10:00:00Z"
    )
    pair = [new, old] if newest_first else [old, new]
    assert facts_of(*pair).diagnoses == ()


@pytest.mark.parametrize("newest_first", [True, False])
def test_the_newest_weight_version_is_the_one_used(newest_first: bool):
    old = versioned(weight("w", 70, "kg", "kg", "2026-02-20"), None, "2026-02-20T08:00:00Z")
    new = versioned(weight("w", 72.5, "kg", "kg", "2026-02-20"), None, "2026-02-21T08:00:00+01:00")
    pair = [new, old] if newest_first else [old, new]
    facts = facts_of(*pair)
    assert [m.value for m in facts.measurements if m.kind == "body-weight"] == [72.5]


def test_a_duplicate_changes_nothing_but_the_copy_kept():
    ra = condition("ra", RA)
    once = facts_of(ra)
    twice = facts_of(ra, copy.deepcopy(ra))
    assert once == twice


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"versionId": "9"}, {"versionId": "10"}, -1),  # numbers, not text
        ({"versionId": "3", "lastUpdated": "2020-01-01T00:00:00Z"}, {"versionId": "2"}, 1),
        (
            {"versionId": "W1", "lastUpdated": "2026-01-01T00:00:00Z"},
            {"versionId": "W2", "lastUpdated": "2025-01-01T00:00:00Z"},
            1,  # opaque ids: the date decides
        ),
        ({"versionId": "b"}, {"versionId": "a"}, 1),  # opaque and nothing else: text
        ({}, {"versionId": "4"}, 0),
        ({"lastUpdated": "2026-01-01"}, {"lastUpdated": "not a date"}, 0),
        ({"versionId": "1"}, {"versionId": "1"}, 0),
    ],
)
def test_compare_versions(a: Res, b: Res, expected: int):
    assert compare_versions({"meta": a}, {"meta": b}) == expected
    assert compare_versions({"meta": b}, {"meta": a}) == -expected


@pytest.mark.parametrize("newest_first", [True, False])
def test_prefetch_deduplicate_keeps_the_newest_copy_in_the_first_place(newest_first: bool):
    old = versioned(condition("ra", RA), "1")
    new = versioned(condition("ra", RA, clinical="resolved"), "2")
    other = {"resourceType": "Patient", "id": "p1"}
    first, second = (new, old) if newest_first else (old, new)
    assert deduplicate([first, other, second]) == [new, other]


def without_id(resource: Res) -> Res:
    out = copy.deepcopy(resource)
    del out["id"]
    return out


def test_resources_without_an_id_are_read_with_an_internal_reference():
    ra = without_id(condition("x", RA))
    mtx = without_id(statement("x", MTX, status="active", start="2025-01-01", end="2026-02-01"))
    body_weight = without_id(weight("x", 70, "kg", "kg", "2026-02-20"))
    facts = facts_of(ra, mtx, body_weight)
    assert [d.valuesets for d in facts.diagnoses] == [frozenset({"rheumatoid-arthritis"})]
    (ref,) = facts.diagnoses[0].refs
    assert ref.startswith("Condition (no id, #")
    assert [m.value for m in facts.measurements if m.kind == "body-weight"] == [70]
    assert any(r.drug == "methotrexate" for r in facts.medications)
    assert not any("no id" in p for p in facts.problems)


def test_the_internal_reference_is_stable_and_identical_copies_are_read_once():
    ra = without_id(condition("x", RA))
    first = facts_of(ra, copy.deepcopy(ra))
    again = facts_of(copy.deepcopy(ra))
    assert first.diagnoses == again.diagnoses
    assert len(first.diagnoses) == 1
    parsed = r4.parse_resources([ra])
    (kept,) = parsed.of_type("Condition")
    assert ref_of(kept) == first.diagnoses[0].refs[0]
    assert "__local_ref__" not in ra  # the input is never changed


def test_an_id_sent_in_the_data_cannot_pose_as_an_internal_reference():
    ra = condition("real", RA)
    ra["__local_ref__"] = "Condition (no id, #00000000)"
    facts = facts_of(ra)
    assert facts.diagnoses[0].refs == ("Condition/real",)


@given(st.permutations(range(4)), st.booleans())
def test_the_kept_copy_does_not_depend_on_the_order_of_arrival(order: list[int], stamped: bool):
    """Four versions of one Condition (only the newest is entered in error) and an id-less
    copy of another: any arrival order, in parsing and in prefetch de-duplication, keeps
    the same copies."""
    versions = [
        versioned(
            condition("ra", RA, verification="entered-in-error" if v == 3 else "confirmed"),
            str(v + 1) if stamped else None,
            f"2026-01-0{v + 1}T09:00:00Z",
        )
        for v in range(4)
    ]
    arrived = [versions[i] for i in order]
    facts = facts_of(*arrived, without_id(condition("x", RA)))
    (only,) = facts.diagnoses  # Condition/ra's newest version is entered in error
    assert only.refs[0].startswith("Condition (no id")
    assert deduplicate(arrived) == [versions[3]]
