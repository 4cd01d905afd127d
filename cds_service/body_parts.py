"""A JSON request body read part by part, each prefetch value sent before taken as read then.

An EHR sends one patient's chart again and again: order-select, again at each edit of the
order, then order-sign, and retries, each with the same prefetch. Parsing that chart is most
of what reading the body costs (and freeing it again when the call ends). So the body is
first cut into its parts without parsing them (msgspec reads the JSON's structure and hands
back each top-level value, and each prefetch value, as its raw text); each part is then
parsed on its own by the caller's `read` (the checks and parser of a whole body), and a
prefetch value whose text is byte for byte one read before is the value read then (kept in
`_SENT_BEFORE`, at most `CAPACITY` bytes of text in all). A prefetch Bundle is also cut
into its parts, so that its `entry` array is the one read before even when the Bundle
around it is new (a FHIR server writes a new `id` and `meta.lastUpdated` for each search).
When every resource of a call is one of those kept, the chart's digest is kept too, by the
resources' identity (`chart_key`).

The result is exactly what parsing the whole body gives, or None (then the caller reads the
whole body the usual way, which gives the error or the value as before): None for anything
that is not a JSON object of parts that each read cleanly, so every refusal and every
unusual body (a run of digits orjson does not take, nesting past the limit, bad UTF-8) is
decided by the whole-body reader. Equal text, equal value: a kept value stands only for its
own text, and was read from it by the same reader with the same depth limit.

Values kept here are shared by every call that sends the same text: nothing in the service
may change a request's prefetch values (nothing does; the tests check it).
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import msgspec

from fhir_mappings import r4
from fhir_mappings.content_memo import WeightedMemo
from fhir_mappings.r4 import ChartKey

_PARTS: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])

CAPACITY: Final = 16 * 1024 * 1024
"""Bytes of prefetch text whose values are kept (a 500-resource chart is about 0.35 MB, a
5,000-resource chart about 3.4 MB, a 20,000-resource chart about 14 MB); parsed, they take
about five times that in memory. A body whose prefetch text is longer keeps none of it
(keeping part of it would only push out what the next call of the same chart needs)."""

_LOCK: Final = threading.RLock()
_SHARED: dict[int, int] = {}
"""The id of every object shared through `_SENT_BEFORE` (each value kept, and the resource
of each entry of a kept Bundle) -> how many kept values hold it."""


Shared = dict[str, Any] | list[Any]


def _objects(value: Shared) -> Iterator[Any]:
    """A kept value and the resources in it: those of its entries when it is an `entry`
    array or a whole Bundle."""
    yield value
    if type(value) is dict:
        entries = value.get("entry") if value.get("resourceType") == "Bundle" else None
    else:
        entries = value
    for entry in entries if type(entries) is list else ():
        resource = entry.get("resource") if type(entry) is dict else None
        if type(resource) is dict:
            yield resource


def _not_shared(_: tuple[int, bytes], value: Shared) -> None:
    with _LOCK:
        _CHARTS.clear()  # so that it never holds resources no longer kept
        for thing in _objects(value):
            held = _SHARED.pop(id(thing), 1) - 1
            if held:
                _SHARED[id(thing)] = held


_SENT_BEFORE: Final[WeightedMemo[tuple[int, bytes], Shared]] = WeightedMemo(
    CAPACITY, dropped=_not_shared
)
"""Prefetch values, and the `entry` arrays of prefetch Bundles, by (depth limit, text)."""

_CHARTS: Final[WeightedMemo[tuple[int, ...], tuple[tuple[Any, ...], ChartKey]]] = WeightedMemo(
    50_000
)
"""`chart_key` answers by the identity of the resources (at most 50,000 resources in all);
each keeps its resources, so their ids are never those of other objects."""


class UnreadablePartError(Exception):
    """Raised by a part reader: the part does not read cleanly on its own."""


PartReader = Callable[[bytes, int], Any]
"""(a part's text, how deep it may nest) -> its value, or raises `UnreadablePartError`."""


def forget_sent() -> None:
    """Empty `_SENT_BEFORE` and what is kept of its values (the benchmark's new-patient
    figures)."""
    with _LOCK:
        _SENT_BEFORE.clear()
        _SHARED.clear()
        _CHARTS.clear()


def chart_key(resources: Sequence[Any]) -> ChartKey | None:
    """`r4.chart_key(resources)` when every resource is one of the shared values (never
    changed, see the module docstring), taken once per list of the same objects: a chart
    sent again in the same text is not written out and digested again. None when any
    resource is not shared (the caller takes `r4.chart_key` itself)."""
    ids = tuple(map(id, resources))
    kept = _CHARTS.get(ids)
    if kept is not None and all(map(operator.is_, kept[0], resources)):
        return kept[1]
    if not ids or not all(i in _SHARED for i in ids):
        return None
    key = r4.chart_key(resources)
    if key is not None:
        _CHARTS.add(ids, (tuple(resources), key), weight=len(ids))
    return key


def read_by_parts(data: bytes, max_depth: int, read: PartReader) -> dict[str, Any] | None:
    """The JSON object `data` (UTF-8, nesting at most `max_depth` deep, `{}` being 1) read
    part by part, or None when it is not an object whose parts all read cleanly."""
    if max_depth < 3:
        return None
    try:
        parts = _PARTS.decode(data)
        body: dict[str, Any] = {}
        for name, raw in parts.items():
            text = bytes(raw)
            if name == "prefetch" and text.startswith(b"{"):
                body[name] = _prefetch(text, max_depth - 1, read)
            else:
                body[name] = read(text, max_depth - 1)
    except (msgspec.MsgspecError, RecursionError, UnreadablePartError):
        return None
    return body


def _prefetch(data: bytes, depth: int, read: PartReader) -> dict[str, Any]:
    """The prefetch object (`depth`: how deep it may nest), each value read by `_value`."""
    keep = len(data) <= CAPACITY
    return {
        key: _value(bytes(raw), depth - 1, read, keep=keep)
        for key, raw in _PARTS.decode(data).items()
    }


def _value(text: bytes, depth: int, read: PartReader, *, keep: bool) -> Any:
    """One prefetch value, as sent before when it was. A Bundle not sent before is read
    part by part, its `entry` array as sent before when it was: a FHIR server writes a new
    Bundle `id` and `meta.lastUpdated` for each search, around the same entries."""
    known = _SENT_BEFORE.get((depth, text))
    if known is not None:
        return known
    if text.startswith(b"{"):
        parts = _PARTS.decode(text)
        entries = parts.get("entry")
        if entries is not None and bytes(parts.get("resourceType", b"")) == b'"Bundle"':
            bundle = {
                name: _kept(bytes(raw), depth - 1, read, keep=keep)
                if name == "entry"
                else read(bytes(raw), depth - 1)
                for name, raw in parts.items()
            }
            if keep:  # the entries are kept (and weighed) on their own
                _share((depth, text), bundle, weight=max(len(text) - len(entries), 1))
            return bundle
    return _read_and_keep(text, depth, read, keep=keep)


def _kept(text: bytes, depth: int, read: PartReader, *, keep: bool) -> Any:
    """The value read before from the same text and depth, else `_read_and_keep`."""
    known = _SENT_BEFORE.get((depth, text))
    return known if known is not None else _read_and_keep(text, depth, read, keep=keep)


def _read_and_keep(text: bytes, depth: int, read: PartReader, *, keep: bool) -> Any:
    """`read(text, depth)`; an object or array is kept for the next time (when `keep`)."""
    value = read(text, depth)
    if keep and (type(value) is dict or type(value) is list):
        _share((depth, text), value, weight=len(text))
    return value


def _share(key: tuple[int, bytes], value: Shared, *, weight: int) -> None:
    with _LOCK:
        if _SENT_BEFORE.add(key, value, weight=weight):
            for thing in _objects(value):
                _SHARED[id(thing)] = _SHARED.get(id(thing), 0) + 1
