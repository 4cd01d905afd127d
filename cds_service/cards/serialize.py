"""Machine-readable evaluations and the one place where empty values are removed.

`evaluation_to_json` is the card layer's own serialiser of a `Decision`; if the
policy package later offers `policy/report.py::decision_to_json`, this one can
delegate to it (the shape below is what the response extension
`com.anakinra-cds.evaluation` carries and what tests pin).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds_service.policy.model import Decision


def evaluation_to_json(decision: Decision) -> dict[str, Any]:
    """One evaluated order as plain JSON (no FHIR bodies, no PHI beyond references)."""
    body: dict[str, Any] = prune(
        {
            "order": decision.order_ref,
            "policy": {"id": decision.policy_id, "version": decision.policy_version},
            "pathway": decision.pathway.value,
            "section": decision.section,
            "indication": decision.indication,
            "outcome": decision.outcome.value,
            "approvalMonths": decision.approval_months,
            "documentation": list(decision.documentation),
            "policyReferences": list(decision.policy_references),
            "considered": [
                {"section": section, "outcome": outcome.value}
                for section, outcome in decision.considered
            ],
            "criteria": [
                {
                    "id": result.id,
                    "check": result.check,
                    "status": result.status.value,
                    "reason": result.reason,
                    "evidence": list(result.evidence),
                    "documentation": result.documentation,
                }
                for result in decision.criteria
            ],
        }
    )
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
