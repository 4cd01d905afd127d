"""Checks made of other checks: `any-of` (one of several ways to meet a criterion, "a or b")
and `all-of` (every part must hold, "both a and b").

A sub-check is written like a criterion's check, `{check: <kind>, params: {...}}`, and its
parameters are validated by the policy loader like any other (`definition._Validator`). A
sub-check whose answer rests on data the EHR did not give is unknown here, as the engine
would make it at the top level, so that a combinator never turns "not found" into met.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cds_service.policy.checks import (
    CHECKS,
    MET,
    NOT_MET,
    UNKNOWN,
    EvalContext,
    ParamSpec,
    Verdict,
    _check,
    _dedupe,
)
from cds_service.policy.model import Status
from fhir_mappings.facts import PolicyFacts

_PARAMS: Mapping[str, ParamSpec] = {
    "checks": ParamSpec("checks"),
    "label": ParamSpec("str", required=False),
}

_TYPE_WORDS: Mapping[str, str] = {
    "AllergyIntolerance": "allergies",
    "Condition": "conditions",
    "MedicationRequest": "medication orders",
    "MedicationStatement": "medication statements",
    "MedicationDispense": "dispensing history",
    "Observation": "observations",
}


def _subs(params: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return [(str(s["check"]), s.get("params") or {}) for s in params.get("checks") or ()]


def run_guarded(
    name: str, params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext
) -> Verdict:
    """A sub-check's verdict, unknown when it rests on resource types the EHR did not give
    (the engine's rule for a criterion's own check)."""
    check = CHECKS[name]
    verdict = check.fn(params, facts, ctx)
    unread = sorted(set(check.reads) & facts.unavailable)
    if unread and verdict.status in check.absence_statuses:
        words = ", ".join(_TYPE_WORDS.get(t, t) for t in unread)
        return Verdict(
            UNKNOWN,
            f"Could not be checked: the EHR did not return the patient's {words}.",
            details=verdict.details,
        )
    return verdict


def _sub_statuses(params: Mapping[str, Any]) -> list[frozenset[Status]]:
    return [CHECKS[name].statuses_for(p) for name, p in _subs(params) if name in CHECKS]


def _reachable_any(params: Mapping[str, Any]) -> frozenset[Status]:
    subs = _sub_statuses(params)
    out: set[Status] = set()
    if any(MET in s for s in subs):
        out.add(MET)
    if subs and all(NOT_MET in s for s in subs):
        out.add(NOT_MET)
    if any(UNKNOWN in s for s in subs):
        out.add(UNKNOWN)
    return frozenset(out)


def _reachable_all(params: Mapping[str, Any]) -> frozenset[Status]:
    subs = _sub_statuses(params)
    out: set[Status] = set()
    if subs and all(MET in s for s in subs):
        out.add(MET)
    if any(NOT_MET in s for s in subs):
        out.add(NOT_MET)
    if any(UNKNOWN in s for s in subs):
        out.add(UNKNOWN)
    return frozenset(out)


def _combine(
    params: Mapping[str, Any],
    facts: PolicyFacts,
    ctx: EvalContext,
    decide: Callable[[Sequence[Status]], Status],
    joiner: str,
) -> Verdict:
    verdicts = [(name, run_guarded(name, p, facts, ctx)) for name, p in _subs(params)]
    status = decide([v.status for _, v in verdicts])
    # The parts that make the answer: the met ones for met, the not-met ones for not-met,
    # every part that is not settled for unknown.
    deciding = [(n, v) for n, v in verdicts if v.status is status] or verdicts
    if status is UNKNOWN:
        deciding = [(n, v) for n, v in verdicts if v.status is not MET] or verdicts
    label = params.get("label")
    reason = f" {joiner} ".join(v.reason.rstrip(".") for _, v in deciding) + "."
    if label:
        reason = f"{label}: {reason}"
    docs = [v.documentation for _, v in deciding if v.documentation]
    return Verdict(
        status,
        reason,
        _dedupe(ref for _, v in deciding for ref in v.evidence),
        {
            "checks": [
                {"check": n, "status": str(v.status), "reason": v.reason, "details": v.details}
                for n, v in verdicts
            ]
        },
        documentation=" ".join(dict.fromkeys(docs)) if status is UNKNOWN and docs else None,
    )


def _any(statuses: Sequence[Status]) -> Status:
    if MET in statuses:
        return MET
    if statuses and all(s is NOT_MET for s in statuses):
        return NOT_MET
    return UNKNOWN


def _all(statuses: Sequence[Status]) -> Status:
    if NOT_MET in statuses:
        return NOT_MET
    if statuses and all(s is MET for s in statuses):
        return MET
    return UNKNOWN


@_check("any-of", (MET, NOT_MET, UNKNOWN), _PARAMS, reachable=_reachable_any)
def any_of(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """One of several sub-checks ("a or b"). Parameters: `checks`, a list of
    `{check: <kind>, params: {...}}`; `label` (optional), words put before the reason.

    `met` when any sub-check is met (the reason gives the met ones); `not-met` when every
    sub-check is not-met; otherwise `unknown`, with the documentation the unsettled
    sub-checks ask for."""
    return _combine(params, facts, ctx, _any, "or")


@_check("all-of", (MET, NOT_MET, UNKNOWN), _PARAMS, reachable=_reachable_all)
def all_of(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """Every sub-check ("both a and b"). Parameters as `any-of`.

    `not-met` when any sub-check is not-met; `met` when every sub-check is met; otherwise
    `unknown`, with the documentation the unsettled sub-checks ask for."""
    return _combine(params, facts, ctx, _all, "and")
