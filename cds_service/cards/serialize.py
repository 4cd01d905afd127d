"""Machine-readable evaluations and the one place where empty values are removed.

`evaluation_to_json` is what the response extension `com.anakinra-cds.evaluation`
carries for each evaluated order: the policy layer's `decision_to_json` without
empty values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds_service.policy.model import Decision
from cds_service.policy.report import decision_to_json


def evaluation_to_json(decision: Decision) -> dict[str, Any]:
    """One evaluated order as plain JSON (no FHIR bodies, no PHI beyond references)."""
    body: dict[str, Any] = prune(decision_to_json(decision))
    return body


def not_evaluated_to_json(order_ref: str, reason: str) -> dict[str, Any]:
    return {"order": order_ref, "outcome": "not-evaluated", "reason": reason}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple | dict) and len(value) == 0)


def prune(value: Any) -> Any:
    """Drop `None`, empty strings, empty lists and empty objects, recursively.

    CDS Hooks and FHIR JSON both forbid nulls and empty values; every card,
    action and extension goes through here once before it leaves the renderer.
    """
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            cleaned = prune(item)
            if not _empty(cleaned):
                out[key] = cleaned
        return out
    if isinstance(value, list | tuple):
        items = [prune(item) for item in value]
        return [item for item in items if not _empty(item)]
    return value
