"""The Da Vinci CRD coverage-information system action (CRD STU 2.1).

For every evaluated order whose facts name a Coverage, the response carries one
`update` system action: a deep copy of the draft order with one
`ext-coverage-information` extension per Coverage (earlier ones of ours are
replaced, never stacked). The policy's drug needs prior authorization under the
plan; the service never issues an authorization number, so it never answers
`satisfied` (which would need `satisfied-pa-id`, invariant crd-ci-q5).

The reason and description texts are the deciding pack's (`coverage` in its
cards.yaml).

Mapping (outcome -> sub-extensions):

- criteria-met: covered=covered, pa-needed=auth-needed, doc-needed=clinical,
  doc-purpose=withpa; reason "criteria met, send the PA request"; detail
  allowed-quantity (dose limit) and allowed-period; expiry-date = date + approval
  months.
- documentation-needed: covered=covered, pa-needed=auth-needed,
  doc-needed=clinical, doc-purpose=withpa; reason lists what to submit per
  criterion; detail allowed-quantity.
- criteria-not-met: covered=not-covered (as ordered), no pa-needed (crd-ci-q2),
  no doc-needed; reason lists every criterion not met; detail allowed-quantity.
- off-label-review: covered=conditional, pa-needed=auth-needed,
  doc-needed=clinical, doc-purpose=withpa, info-needed=OTH (crd-ci-q3); reason
  names the off-label use policy (crd-ci-q6).

Invariants honoured: q2 (not-covered has no pa-needed), q3 (info-needed iff
something is conditional), q4 (withpa only with auth-needed), q5 (no
satisfied, no satisfied-pa-id), q6/q7 (a reason with text whenever info-needed
is OTH; the reason is always text), q8 (doc-purpose comes with a reason).
Every extension has its own `coverage-assertion-id` (a uuid) and `date`.
"""

from __future__ import annotations

import calendar
import copy
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from cds_service.cards.codes import COVERAGE_INFORMATION_URL, CRD_TEMP, UCUM
from cds_service.cards.dose import DoseLimit, dose_limit, fmt, product_unit, whole
from cds_service.cards.model import Evaluation
from cds_service.cards.texts import CardTexts
from cds_service.policy.model import Decision, Outcome, Status
from fhir_mappings.facts import PolicyFacts
from fhir_mappings.product_unit import ProductUnit


def add_months(start: date, months: int) -> date:
    """`start` plus whole months, the day clamped to the month's end."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def policy_limit(facts: PolicyFacts, decision: Decision) -> DoseLimit | None:
    """The dose limit of the evaluated section, when the section has one."""
    for result in decision.criteria:
        if result.check in {"dose-limit", "dose-increase-limit"}:
            return dose_limit(facts, result)
    return None


def _detail(code: str, value_key: str, value: Any, qualification: str | None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "code", "valueCodeableConcept": {"coding": [{"system": CRD_TEMP, "code": code}]}},
        {"url": "value", value_key: value},
    ]
    if qualification:
        parts.append({"url": "qualification", "valueString": qualification})
    return {"url": "detail", "extension": parts}


def _quantity_details(
    limit: DoseLimit, texts: CardTexts, unit: ProductUnit | None
) -> list[dict[str, Any]]:
    if limit.kind == "weight" and limit.limit_mg_per_kg_per_day is not None:
        qualification = texts.text("coverage", "weight_qualification")
        if limit.limit_mg_per_day is not None and limit.weight_kg is not None:
            qualification = (
                f"{fmt(limit.limit_mg_per_day)} mg per day at the recorded weight of "
                f"{fmt(limit.weight_kg)} kg"
            )
        quantity = {
            "value": whole(limit.limit_mg_per_kg_per_day),
            "unit": "mg/kg/day",
            "system": UCUM,
            "code": "mg/kg/d",
        }
        return [_detail("allowed-quantity", "valueQuantity", quantity, qualification)]
    details = []
    if limit.limit_mg_per_day is not None:
        quantity = {
            "value": whole(limit.limit_mg_per_day),
            "unit": "mg/day",
            "system": UCUM,
            "code": "mg/d",
        }
        details.append(_detail("allowed-quantity", "valueQuantity", quantity, None))
    if limit.limit_units_per_day is not None and unit is not None:
        quantity = {
            "value": whole(limit.limit_units_per_day),
            "unit": f"{unit.name}/day",
            "system": UCUM,
            "code": f"{unit.ucum}/d",
        }
        details.append(
            _detail(
                "allowed-quantity",
                "valueQuantity",
                quantity,
                texts.text("coverage", "unit_qualification"),
            )
        )
    return details


def _reason(decision: Decision, texts: CardTexts) -> str:
    where = {"policy_id": decision.policy_id, "section": decision.section}
    if decision.outcome is Outcome.CRITERIA_MET:
        months = decision.approval_months
        if months:
            return texts.text("coverage", "criteria_met_with_duration", months=months, **where)
        return texts.text("coverage", "criteria_met", **where)
    if decision.outcome is Outcome.DOCUMENTATION_NEEDED:
        needed = [
            f"{r.id}: {r.documentation or r.reason}"
            for r in decision.criteria
            if r.status is Status.UNKNOWN
        ]
        return texts.text("coverage", "documentation_needed", needed="; ".join(needed), **where)
    if decision.outcome is Outcome.CRITERIA_NOT_MET:
        failed = [f"{r.id}: {r.reason}" for r in decision.criteria if r.status is Status.NOT_MET]
        return texts.text("coverage", "criteria_not_met", failed="; ".join(failed), **where)
    policies = decision.policy_references or texts.off_label_references
    names = {"policy_id": decision.policy_id, "off_label_policy": policies[0]}
    if len(policies) > 1:
        others = " / ".join(policies[1:])
        return texts.text("coverage", "off_label_with_others", other_policies=others, **names)
    return texts.text("coverage", "off_label", **names)


def coverage_information(
    facts: PolicyFacts,
    decision: Decision,
    *,
    coverage_ref: str,
    assertion_id: str,
    today: date,
    texts: CardTexts,
) -> dict[str, Any]:
    """One `ext-coverage-information` extension (see the module table)."""
    outcome = decision.outcome
    parts: list[dict[str, Any]] = [
        {"url": "coverage", "valueReference": {"reference": coverage_ref}},
    ]
    if outcome is Outcome.CRITERIA_NOT_MET:
        parts.append({"url": "covered", "valueCode": "not-covered"})
    else:
        covered = "conditional" if outcome is Outcome.OFF_LABEL_REVIEW else "covered"
        parts += [
            {"url": "covered", "valueCode": covered},
            {"url": "pa-needed", "valueCode": "auth-needed"},
            {"url": "doc-needed", "valueCode": "clinical"},
            {"url": "doc-purpose", "valueCode": "withpa"},
        ]
        if outcome is Outcome.OFF_LABEL_REVIEW:
            parts.append({"url": "info-needed", "valueCode": "OTH"})
    parts.append({"url": "reason", "valueCodeableConcept": {"text": _reason(decision, texts)}})
    limit = policy_limit(facts, decision) if outcome is not Outcome.OFF_LABEL_REVIEW else None
    if limit is not None:
        parts += _quantity_details(limit, texts, product_unit(facts, decision.policy_id))
    expiry = None
    if outcome is Outcome.CRITERIA_MET and decision.approval_months:
        expiry = add_months(today, decision.approval_months)
        period = {"start": today.isoformat(), "end": expiry.isoformat()}
        parts.append(
            _detail("allowed-period", "valuePeriod", period, "Approval duration of the policy")
        )
    parts += [
        {"url": "date", "valueDate": today.isoformat()},
        {"url": "coverage-assertion-id", "valueString": assertion_id},
    ]
    if expiry is not None:
        parts.append({"url": "expiry-date", "valueDate": expiry.isoformat()})
    return {"url": COVERAGE_INFORMATION_URL, "extension": parts}


def _description(decision: Decision, texts: CardTexts) -> str:
    words = {
        Outcome.CRITERIA_MET: "criteria met, prior authorization request needed",
        Outcome.DOCUMENTATION_NEEDED: "prior authorization needs documentation",
        Outcome.CRITERIA_NOT_MET: "not covered as ordered",
        Outcome.OFF_LABEL_REVIEW: "off-label review needed",
    }
    return texts.text("coverage", "description", outcome=words[decision.outcome])


def coverage_system_action(
    evaluation: Evaluation, *, uuid_factory: Callable[[], str], today: date, texts: CardTexts
) -> dict[str, Any] | None:
    """The `update` system action for one order, or None when no Coverage is known."""
    facts, decision = evaluation.facts, evaluation.decision
    if not facts.coverage_refs:
        return None
    resource: dict[str, Any] = copy.deepcopy(dict(facts.order.resource))
    kept = [
        ext
        for ext in resource.get("extension", [])
        if not (isinstance(ext, Mapping) and ext.get("url") == COVERAGE_INFORMATION_URL)
    ]
    for coverage_ref in facts.coverage_refs:
        kept.append(
            coverage_information(
                facts,
                decision,
                coverage_ref=coverage_ref,
                assertion_id=uuid_factory(),
                today=today,
                texts=texts,
            )
        )
    resource["extension"] = kept
    return {
        "type": "update",
        "description": _description(decision, texts),
        "resource": resource,
    }
