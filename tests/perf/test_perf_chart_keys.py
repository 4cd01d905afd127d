"""A chart sent again is keyed with one digest of the whole chart (`r4._CHARTS`) instead of one
per resource, and a body seen needing no fix is not looked over again (`r4._AS_SENT`): the
index, the keys and what validation gives are exactly those of a chart never seen."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.workload import chart
from fhir_mappings import r4
from fhir_mappings.content_memo import WeightedMemo
from fhir_mappings.fields import LOCAL_REF_KEY
from tests.perf.test_perf_index_as_is import BASES, _variants


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    r4.forget_validated()
    yield
    r4.forget_validated()


def _index(parsed: r4.Parsed) -> list[tuple[str, str, Any, bytes | None]]:
    return [(e.ref, e.rtype, e.raw, e.content_key()) for e in parsed._entries]


def _own_keys(parsed: r4.Parsed) -> list[bytes | None]:
    """Each entry's key computed from its body alone, the long way."""
    out = []
    for entry in parsed._entries:
        body = {k: v for k, v in entry.raw.items() if k != LOCAL_REF_KEY}
        out.append(r4._content_key(body))
    return out


def _all_variants() -> list[dict[str, Any]]:
    return [body for base in BASES.values() for body in _variants(base)]


def test_a_chart_sent_again_is_indexed_and_keyed_as_the_first_time() -> None:
    resources, _ = chart(300)
    first = r4.parse_resources(copy.deepcopy(resources))
    again = r4.parse_resources(copy.deepcopy(resources))  # keys from the chart memo
    assert _index(again) == _index(first)
    assert [e.content_key() for e in again._entries] == _own_keys(again)
    assert all(e.key is not None for e in again._entries)


def test_bodies_that_need_fixing_are_fixed_every_time() -> None:
    for _ in range(3):  # first sight, then from both memos
        sent = _all_variants()
        bodies = copy.deepcopy(sent)
        parsed = r4.parse_resources(bodies)
        for entry, body, original in zip(parsed._entries, bodies, sent, strict=True):
            assert entry.raw == r4.normalise(original)
            assert (entry.raw is body) == (r4.normalise(original) == original)
        assert bodies == sent  # the request's own resources are never changed
        assert [e.content_key() for e in parsed._entries] == _own_keys(parsed)


def test_one_changed_result_is_keyed_by_its_new_body() -> None:
    resources, _ = chart(120)
    r4.parse_resources(copy.deepcopy(resources))
    changed = copy.deepcopy(resources)
    where = next(
        i
        for i, r in enumerate(changed)
        if r["resourceType"] == "Observation" and "valueQuantity" in r
    )
    changed[where]["valueQuantity"]["value"] += 1
    parsed = r4.parse_resources(changed)
    keys = {e.raw["id"]: e.content_key() for e in parsed._entries}
    assert keys[changed[where]["id"]] == r4._content_key(changed[where])
    assert keys[changed[where]["id"]] != r4._content_key(resources[where])
    assert [e.content_key() for e in parsed._entries] == _own_keys(parsed)


def test_a_body_seen_valid_reads_the_same_as_validation_gives() -> None:
    resources, _ = chart(120)
    first = r4.parse_resources(copy.deepcopy(resources))
    validated = [first.resolve(e.ref) for e in first._entries]
    again = r4.parse_resources(copy.deepcopy(resources))
    assert [again.resolve(e.ref) for e in again._entries] == validated
    assert again.problems == first.problems


def test_a_body_with_a_null_or_a_nan_is_never_keyed() -> None:
    # orjson writes NaN as null: two charts that differ only there share the chart's
    # digest, and the body that holds it has no key of its own in either.
    resources, _ = chart(60)
    where = next(i for i, r in enumerate(resources) if r["resourceType"] == "Observation")
    with_null = copy.deepcopy(resources)
    with_null[where]["note"] = None
    with_nan = copy.deepcopy(resources)
    with_nan[where]["note"] = float("nan")
    null_key, nan_key = r4.chart_key(with_null), r4.chart_key(with_nan)
    assert null_key is not None
    assert nan_key is not None
    assert null_key.digest == nan_key.digest
    assert not null_key.exact
    assert not nan_key.exact
    for sent in (with_null, with_nan, with_null):
        parsed = r4.parse_resources(copy.deepcopy(sent))
        keys = {e.raw["id"]: e.content_key() for e in parsed._entries}
        assert keys[sent[where]["id"]] is None
        assert [e.content_key() for e in parsed._entries] == _own_keys(parsed)


def test_the_chart_memo_keeps_at_most_its_capacity_of_keys() -> None:
    memo: WeightedMemo[bytes, tuple[bytes, ...]] = WeightedMemo(capacity=5)
    memo.add(b"a", (b"1", b"2", b"3"), weight=3)
    memo.add(b"b", (b"4", b"5"), weight=2)
    assert memo.get(b"a") is not None
    memo.add(b"c", (b"6",), weight=1)  # six keys: the oldest chart goes
    assert memo.get(b"a") is None
    assert memo.get(b"b") == (b"4", b"5")
    assert memo.get(b"c") == (b"6",)
    memo.add(b"d", tuple(bytes([i]) for i in range(6)), weight=6)  # larger than the memo
    assert memo.get(b"d") is None
