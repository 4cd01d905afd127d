"""Render a `Decision` for people (a plain-text table) and for machines (a JSON dict)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from cds_service.policy.model import CriterionResult, Decision

_WIDTHS = (9, 8, 60, 36)
_HEAD = ("Criterion", "Status", "Reason", "Evidence")


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [_json_safe(v) for v in items]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _row(cells: Sequence[str], evidence: Sequence[str] | None = None) -> list[str]:
    wrapped = [
        textwrap.wrap(cell, width) or [""] for cell, width in zip(cells, _WIDTHS, strict=True)
    ]
    if evidence is not None:
        wrapped[-1] = list(evidence) or ["-"]  # one reference a line, never split
    height = max(len(w) for w in wrapped)
    lines = []
    for i in range(height):
        parts = [
            (w[i] if i < len(w) else "").ljust(width)
            for w, width in zip(wrapped, _WIDTHS, strict=True)
        ]
        lines.append(" | ".join(parts).rstrip())
    return lines


def _criterion_cells(result: CriterionResult) -> list[str]:
    reason = result.reason
    if result.documentation:
        reason += f" Submit: {result.documentation}"
    return [result.id, str(result.status), reason, ""]


def format_table(decision: Decision) -> str:
    """A readable plain-text table: a header (order, pathway, section, outcome,
    approval), then one row per criterion (criterion, status, reason, evidence)."""
    approval = (
        f"{decision.approval_months} months" if decision.approval_months else "not applicable"
    )
    header = [
        f"Order:    {decision.order_ref}",
        f"Policy:   {decision.policy_id} (version {decision.policy_version})",
        f"Pathway:  {decision.pathway}",
        f"Section:  {decision.section} ({decision.indication})",
        f"Outcome:  {decision.outcome}",
        f"Approval: {approval}",
    ]
    if decision.policy_references:
        header.append(f"Refer to: {', '.join(decision.policy_references)}")
    if decision.considered:
        header.append("Considered: " + ", ".join(f"{s} {i} {o}" for s, i, o in decision.considered))
    rule = "-+-".join("-" * w for w in _WIDTHS)
    lines = [*header, "", *_row(_HEAD), rule]
    for result in decision.criteria:
        lines += _row(_criterion_cells(result), result.evidence)
    if decision.documentation:
        lines += ["", "Documentation to submit:"]
        lines += [f"  - {doc}" for doc in decision.documentation]
    return "\n".join(lines) + "\n"


def criterion_to_json(result: CriterionResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "text": result.text,
        "check": result.check,
        "status": str(result.status),
        "reason": result.reason,
        "evidence": list(result.evidence),
        "documentation": result.documentation,
        "details": _json_safe(result.details),
    }


def decision_to_json(decision: Decision) -> dict[str, Any]:
    """The machine-readable evaluation: order, policy id and version, pathway,
    section, indication, outcome, approval months, documentation, references, the
    indications considered and every criterion with its status and evidence.

    The one serialiser of a `Decision`: `cds-service evaluate --json` prints it and the
    CDS Hooks response carries it (without empty values) in its `extension`.
    """
    return {
        "order": decision.order_ref,
        "policy": {"id": decision.policy_id, "version": decision.policy_version},
        "pathway": str(decision.pathway),
        "section": decision.section,
        "indication": decision.indication,
        "outcome": str(decision.outcome),
        "approvalMonths": decision.approval_months,
        "documentation": list(decision.documentation),
        "policyReferences": list(decision.policy_references),
        "considered": [
            {"section": section, "indication": indication, "outcome": str(outcome)}
            for section, indication, outcome in decision.considered
        ],
        "criteria": [criterion_to_json(r) for r in decision.criteria],
    }
