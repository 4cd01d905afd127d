"""A request body is read part by part, and a prefetch value sent before is the value read
then (`cds_service.body_parts`), with exactly the outcome of reading the whole body: the
same value, or the same 400, for every body, the first time and every time after."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cds_service import body_parts
from cds_service.api import parse_json_body
from cds_service.errors import ApiError
from fhir_mappings import r4
from tests.perf.test_perf_body_reading import _TEXT, _VALUES, MAX_DEPTH, assert_reads_as_before


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    body_parts.forget_sent()
    yield
    body_parts.forget_sent()


def _nested(depth: int) -> Any:
    """A resource whose text nests `depth` deep (`{}` is 1)."""
    value: Any = {"resourceType": "Observation"}
    for _ in range(depth - 1):
        value = {"resourceType": "Observation", "a": value}
    return value


_RESOURCES = st.dictionaries(_TEXT, _VALUES, max_size=4).map(
    lambda d: {"resourceType": "Observation", **d}
)


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    prefetch = draw(
        st.dictionaries(
            st.sampled_from(["patient", "conditions", "observations", 'a"b', "é"]),
            st.one_of(st.none(), _RESOURCES, _VALUES),
            max_size=3,
        )
    )
    body: dict[str, Any] = {"hook": "order-sign", "hookInstance": "h-1", "prefetch": prefetch}
    if draw(st.booleans()):
        body["context"] = draw(_VALUES)
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 4)) == 0:  # a broken byte
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


def _request(prefetch: Any) -> bytes:
    return json.dumps({"hook": "order-sign", "prefetch": prefetch}).encode()


@settings(max_examples=1500, deadline=None)
@given(_requests())
@example(_request({"patient": _nested(6)}))  # 8 deep in all: the limit
@example(_request({"patient": _nested(7)}))  # 9 deep: refused
@example(_request({"patient": {"resourceType": "Patient", "n": 12345678901234567890}}))
@example(_request({"patient": {"resourceType": "Patient", "name": "x\ud800y"}}))
@example(_request({"patient": {"resourceType": "Patient"}, "patient ": None}))
@example(b'{"prefetch": {"p": {"resourceType": "Patient"}, "p": {"resourceType": "P2"}}}')
@example(b'{"prefetch": {"p": {"resourceType": "Patient", "x": 1e999}}}')
@example(b'{"prefetch": {"p": {"resourceType": "Patient", "x": "\xff"}}}')
@example(b'{"prefetch": {"p": {"resourceType": "Patient"}}, "prefetch": null}')
@example(b'{"prefetch": [{"resourceType": "Patient"}]}')
@example(b'{"prefetch": {"p": {"resourceType": "Patient"}}} x')
def test_every_body_reads_as_before_the_first_time_and_again(data: bytes) -> None:
    body_parts.forget_sent()
    assert_reads_as_before(data)
    assert_reads_as_before(data)  # its prefetch values now read before


def test_a_prefetch_value_sent_again_is_the_value_read_before() -> None:
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"}
    data = json.dumps(
        {"hook": "order-sign", "context": {"patientId": "p1"}, "prefetch": {"patient": patient}}
    ).encode()
    first = parse_json_body(data, MAX_DEPTH)
    again = parse_json_body(data, MAX_DEPTH)
    assert again == first
    assert again["prefetch"]["patient"] is first["prefetch"]["patient"]
    assert again["context"] is not first["context"]  # only prefetch values are kept


def test_a_value_read_under_one_depth_limit_is_not_taken_under_a_smaller_one() -> None:
    data = _request({"patient": _nested(6)})
    assert parse_json_body(data, MAX_DEPTH)["prefetch"]["patient"] == _nested(6)
    with pytest.raises(ApiError) as refused:
        parse_json_body(data, MAX_DEPTH - 1)
    assert refused.value.to_dict()["error"] == "too-deep"


def test_at_most_the_capacity_of_text_is_kept() -> None:
    big = {"resourceType": "Binary", "data": "x" * (body_parts.CAPACITY // 3)}
    for n in range(5):
        parse_json_body(_request({"binary": {**big, "id": str(n)}}), MAX_DEPTH)
    kept = body_parts._SENT_BEFORE.items()
    assert 0 < len(kept) <= 3
    assert sum(len(text) for (_, text), _ in kept) <= body_parts.CAPACITY


def _bundle_request(n: int, tag: str = "") -> bytes:
    entries = [
        {"resource": {"resourceType": "Observation", "id": f"o{i}{tag}", "status": "final"}}
        for i in range(n)
    ]
    prefetch = {"observations": {"resourceType": "Bundle", "type": "searchset", "entry": entries}}
    return _request(prefetch)


def _resources(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in body["prefetch"]["observations"]["entry"]]


def test_the_chart_key_of_shared_resources_is_taken_once(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _bundle_request(5)
    first = _resources(parse_json_body(data, MAX_DEPTH))
    again = _resources(parse_json_body(data, MAX_DEPTH))
    taken: list[int] = []
    real = r4.chart_key

    def counted(resources: Any) -> r4.ChartKey | None:
        taken.append(len(resources))
        return real(resources)

    monkeypatch.setattr(r4, "chart_key", counted)
    key = body_parts.chart_key(first)
    assert key == real(first)
    assert body_parts.chart_key(list(again)) == key  # the same objects: not taken again
    assert body_parts.chart_key(first[::-1]) == real(first[::-1])  # another list
    assert taken == [5, 5]


def test_a_chart_with_any_resource_not_shared_has_no_key_here() -> None:
    shared = _resources(parse_json_body(_bundle_request(3), MAX_DEPTH))
    copy = {"resourceType": "Observation", "id": "o1", "status": "final"}
    assert body_parts.chart_key([*shared, copy]) is None
    assert body_parts.chart_key([copy]) is None
    assert body_parts.chart_key([]) is None


def test_values_dropped_to_make_room_are_no_longer_shared() -> None:
    big = body_parts.CAPACITY // 3
    kept = []
    for n in range(5):
        data = _bundle_request(2, tag="x" * big + str(n))
        kept.append(_resources(parse_json_body(data, MAX_DEPTH)))
    values = [value for _, value in body_parts._SENT_BEFORE.items()]
    assert 0 < len(values) < 5
    assert body_parts.chart_key(kept[0]) is None  # dropped
    assert body_parts.chart_key(kept[-1]) is not None
    reachable = {id(value) for value in values}
    for value in values:  # entry arrays, and Bundles around them
        for entry in value if isinstance(value, list) else value.get("entry", []):
            reachable.add(id(entry["resource"]))
    assert set(body_parts._SHARED) == reachable


def test_a_bundle_with_a_new_id_around_the_same_entries_shares_them() -> None:
    def searched(call: int) -> bytes:
        entries = [{"resource": {"resourceType": "Condition", "id": f"c{i}"}} for i in range(4)]
        bundle = {
            "resourceType": "Bundle",
            "id": f"search-{call}",
            "meta": {"lastUpdated": f"2026-12-04T10:00:0{call}Z"},
            "type": "searchset",
            "entry": entries,
        }
        return _request({"conditions": bundle})

    first = parse_json_body(searched(1), MAX_DEPTH)["prefetch"]["conditions"]
    again = parse_json_body(searched(2), MAX_DEPTH)["prefetch"]["conditions"]
    assert again["id"] == "search-2"
    assert again["meta"] == {"lastUpdated": "2026-12-04T10:00:02Z"}
    assert list(again) == ["resourceType", "id", "meta", "type", "entry"]  # as sent
    assert again["entry"] is first["entry"]
    resources = [entry["resource"] for entry in again["entry"]]
    assert body_parts.chart_key(resources) == r4.chart_key(resources)


def test_a_chart_longer_than_the_memo_keeps_none_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _bundle_request(40)
    monkeypatch.setattr(body_parts, "CAPACITY", len(data) // 2)
    first = parse_json_body(data, MAX_DEPTH)
    again = parse_json_body(data, MAX_DEPTH)
    assert again == first
    assert (
        again["prefetch"]["observations"]["entry"] is not first["prefetch"]["observations"]["entry"]
    )
    assert body_parts._SENT_BEFORE.items() == []


def test_dropping_a_value_forgets_the_chart_keys_that_hold_its_resources() -> None:
    big = body_parts.CAPACITY // 3
    first = _resources(parse_json_body(_bundle_request(2, tag="x" * big), MAX_DEPTH))
    assert body_parts.chart_key(first) is not None
    assert len(body_parts._CHARTS) == 1
    for n in range(3):
        parse_json_body(_bundle_request(2, tag="x" * big + str(n)), MAX_DEPTH)
    assert len(body_parts._CHARTS) == 0  # it held resources no longer kept
    assert body_parts.chart_key(first) is None
