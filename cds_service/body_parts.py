"""A JSON request body read part by part, each prefetch value sent before taken as read then.

An EHR sends one patient's chart again and again: order-select, again at each edit of the
order, then order-sign, and retries, each with the same prefetch. Parsing that chart is most
of what reading the body costs (and freeing it again when the call ends). So the body is
first cut into its parts without parsing them (msgspec reads the JSON's structure and hands
back each top-level value, and each prefetch value, as its raw text); each part is then
parsed on its own by the caller's `read` (the checks and parser of a whole body), and a
prefetch value whose text is byte for byte one read before is the value read then (kept in
`_SENT_BEFORE`, at most `CAPACITY` bytes of text in all).

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

from collections.abc import Callable
from typing import Any, Final

import msgspec

from fhir_mappings.content_memo import WeightedMemo

_PARTS: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])

CAPACITY: Final = 8 * 1024 * 1024
"""Bytes of prefetch text whose values are kept (a 500-resource chart is about 0.35 MB, a
5,000-resource chart about 3.4 MB); parsed, they take several times that in memory."""

_SENT_BEFORE: Final[WeightedMemo[tuple[int, bytes], dict[str, Any]]] = WeightedMemo(CAPACITY)
"""Prefetch values by (depth limit, their text)."""


class UnreadablePartError(Exception):
    """Raised by a part reader: the part does not read cleanly on its own."""


PartReader = Callable[[bytes, int], Any]
"""(a part's text, how deep it may nest) -> its value, or raises `UnreadablePartError`."""


def forget_sent() -> None:
    """Empty `_SENT_BEFORE` (the benchmark's new-patient figures)."""
    _SENT_BEFORE.clear()


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
    """The prefetch object (`depth`: how deep it may nest), each value sent before as
    read then."""
    values: dict[str, Any] = {}
    for key, raw in _PARTS.decode(data).items():
        text = bytes(raw)
        known = _SENT_BEFORE.get((depth - 1, text))
        if known is not None:
            values[key] = known
            continue
        value = read(text, depth - 1)
        if type(value) is dict:
            _SENT_BEFORE.add((depth - 1, text), value, weight=len(text))
        values[key] = value
    return values
