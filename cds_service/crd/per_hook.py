"""What CRD allows at each hook (CRD STU 2.2 "Hook Categories").

- order-sign and order-dispatch are 'primary' hooks: every card type, and the
  coverage-information system action (hook-16, hook-33).
- order-select is a 'secondary' hook: the coverage information it carries SHALL NOT say
  that clinical or administrative documentation is needed (hook-19): that is asked for
  at order-sign, when the order is complete. `for_hook` removes `doc-needed`,
  `doc-purpose` and the form to complete (`questionnaire`, `response`) from every
  coverage-information extension of an order-select answer, and
  the `reason` that goes with them (which names the documentation to send) unless
  `info-needed` needs it (a conditional answer must say why). An `indeterminate` answer
  keeps its reason (crd-ci-q9), with its code and `INDETERMINATE_TEXT` in place of the text
  that names the documentation. The cards order-select gets
  are chosen by the renderer (`cds_service.cards.render`: clinical cards only, no
  documentation-needed card).
Pure: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from cds_service.cards.codes import COVERAGE_INFORMATION_URL

PRIMARY_HOOKS: Final = frozenset({"order-sign", "order-dispatch"})
SECONDARY_HOOKS: Final = frozenset({"order-select"})
DOCUMENTATION_PARTS: Final = frozenset({"doc-needed", "doc-purpose", "questionnaire", "response"})
"""The documentation request: what is needed, why, and the form to complete (a questionnaire
without doc-needed would break crd-ci-q1)."""
INDETERMINATE_TEXT: Final = (
    "Coverage cannot be determined yet; it is checked again when the order is signed."
)


def _plain_reason(part: Mapping[str, Any]) -> dict[str, Any]:
    """A reason part keeping its codes, with a text that names no documentation."""
    concept = part.get("valueCodeableConcept")
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    value: dict[str, Any] = {"text": INDETERMINATE_TEXT}
    if codings:
        value["coding"] = copy.deepcopy(codings)
    return {"url": "reason", "valueCodeableConcept": value}


def without_documentation(extension: Mapping[str, Any]) -> dict[str, Any]:
    """One coverage-information extension without its documentation-needed parts."""
    parts = [p for p in extension.get("extension", []) if isinstance(p, Mapping)]
    urls = {p.get("url") for p in parts}
    if not urls & DOCUMENTATION_PARTS:
        return dict(extension)
    indeterminate = any(
        p.get("url") in ("covered", "pa-needed") and p.get("valueCode") == "indeterminate"
        for p in parts
    )
    kept: list[Mapping[str, Any]] = []
    for part in parts:
        url = part.get("url")
        if url in DOCUMENTATION_PARTS:
            continue
        if url == "reason" and "info-needed" not in urls:
            if indeterminate:
                kept.append(_plain_reason(part))
            continue
        kept.append(part)
    return {**extension, "extension": kept}


def for_hook(response: Mapping[str, Any], hook: str) -> dict[str, Any]:
    """`response` as `hook` may carry it (a new dict; `response` unchanged)."""
    if hook not in SECONDARY_HOOKS or not response.get("systemActions"):
        return dict(response)
    actions = []
    for action in response["systemActions"]:
        resource = action.get("resource") if isinstance(action, Mapping) else None
        if not isinstance(resource, Mapping):
            actions.append(action)
            continue
        updated = copy.deepcopy(dict(resource))
        updated["extension"] = [
            without_documentation(ext)
            if isinstance(ext, Mapping) and ext.get("url") == COVERAGE_INFORMATION_URL
            else ext
            for ext in resource.get("extension", [])
        ]
        actions.append({**action, "resource": updated})
    return {**response, "systemActions": actions}
