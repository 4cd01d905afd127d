"""Machine-readable evaluations and the one place where empty values are removed.

`evaluation_to_json` is what the response extension `codes.EVALUATION_EXTENSION_KEY`
carries for each evaluated order: the policy layer's `decision_to_json` without
empty values, plus `missingData` when some of the record could not be read (the
criteria that would rest on it are unknown). `not_evaluated_to_json` is the entry of
an order that could not be evaluated: `outcome` "not-evaluated", `reason`, and
`missingData` when the record could not be read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from cds_service.cards.model import MissingData
from cds_service.policy.model import Decision
from cds_service.policy.report import decision_to_json


def evaluation_to_json(
    decision: Decision, missing_data: Sequence[MissingData] = ()
) -> dict[str, Any]:
    """One evaluated order as plain JSON (no FHIR bodies, no PHI beyond references)."""
    body: dict[str, Any] = prune(decision_to_json(decision))
    if missing_data:
        body["missingData"] = [item.to_json() for item in missing_data]
    return body


def not_evaluated_to_json(
    order_ref: str, reason: str, missing_data: Sequence[MissingData] = ()
) -> dict[str, Any]:
    """An order that could not be evaluated: why, and which record data was missing."""
    body: dict[str, Any] = {"order": order_ref, "outcome": "not-evaluated", "reason": reason}
    if missing_data:
        body["missingData"] = [item.to_json() for item in missing_data]
    return body


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple | dict) and len(value) == 0)


_LEAVES: Final = frozenset({str, int, float, bool, type(None)})


_EMPTY_MARKS: Final = (b"null", b'""', b"[]", b"{}")


def prune(value: Any) -> Any:
    """Drop `None`, empty strings, empty lists and empty objects, recursively.

    CDS Hooks and FHIR JSON both forbid nulls and empty values; every card,
    action and extension goes through here once before it leaves the renderer.
    """
    if type(value) is dict:
        # Most values have nothing to drop: their JSON text shows no null and no empty
        # string, list or object anywhere (not even inside a text), so they are returned as
        # they are, without rebuilding them (a draft order in a system action is thousands
        # of nodes).
        try:
            text = orjson.dumps(value)
        except (orjson.JSONEncodeError, TypeError):
            text = b"null"
        # Read back equal: nothing but dicts, lists and plain scalars (a tuple, which
        # `_prune` would turn into a list, reads back as a list and so compares unequal).
        if not any(mark in text for mark in _EMPTY_MARKS) and orjson.loads(text) == value:
            return value
    return _prune(value)


def _prune(value: Any) -> Any:
    kind = type(value)
    if kind in _LEAVES:  # the common case, tested by exact type first
        return value
    if kind is dict or isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            cleaned = item if type(item) in _LEAVES else _prune(item)
            if not _empty(cleaned):
                out[key] = cleaned
        return out
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        items = [item if type(item) in _LEAVES else _prune(item) for item in value]
        return [item for item in items if not _empty(item)]
    return value
