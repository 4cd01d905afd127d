"""Checks on what the chart records: a drug received lately, findings (symptoms) on file,
an active condition that rules a drug out, an intolerance to a drug, and indications the
policy does not cover.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, Final

from cds_service.policy.checks import (
    MET,
    NOT_MET,
    UNKNOWN,
    EvalContext,
    ParamSpec,
    Verdict,
    _check,
    _dedupe,
    _matching,
    _names,
)
from cds_service.policy.model import Status
from fhir_mappings.facts import MedicationRecord, PolicyFacts

_NEVER_GIVEN: Final = frozenset(
    {"entered-in-error", "cancelled", "not-taken", "declined", "draft", "rejected"}
)
"""Statuses of a record that never shows the drug was given."""


def _days_of(rec: MedicationRecord) -> list[date]:
    return [d for d in (rec.start, rec.end) if d is not None]


def _first_of_current_run(
    facts: PolicyFacts, wanted: frozenset[str], window_start: date, recent: list[MedicationRecord]
) -> date | None:
    """The first day of the therapy that reaches the window: the start of the therapy runs
    (records joined across gaps of up to 14 days) that reach it, else of the records in it.
    An earlier course that stopped before a restart does not count."""
    runs = [
        r
        for r in facts.therapy_runs
        if r.valuesets & wanted and (r.end >= window_start or r.open_ended)
    ]
    starts = [r.start for r in runs] or [r.start for r in recent if r.start is not None]
    return min(starts) if starts else None


@_check(
    "drug-received-recently",
    (MET, NOT_MET, UNKNOWN),
    {
        "valuesets": ParamSpec("valuesets"),
        "within_days": ParamSpec("int"),
        "min_days": ParamSpec("int", required=False),
    },
    reads=("MedicationRequest", "MedicationStatement", "MedicationDispense"),
    absence=(NOT_MET,),
)
def drug_received_recently(
    params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext
) -> Verdict:
    """A drug in `valuesets` ordered, dispensed, given or taken within `within_days` before
    the order (a record dated in that time: its start, or its end when its exposure reaches
    into it), and with `min_days`, received for at least `min_days` before the order: the
    therapy that reaches the window (its therapy runs, else its records there) began at
    least `min_days` before the order.

    Records of a status that never shows the drug was given (cancelled, entered in error,
    not taken, draft) and other draft orders do not count. `met` when both hold; `not-met`
    when no record falls in the window, or the drug was surely first received later than
    `min_days` before the order; `unknown` when the records in the window carry no date
    that places the first one."""
    wanted = _names(params, "valuesets")
    within = int(params["within_days"])
    min_days = params.get("min_days")
    on = ctx.order_date
    window_start = on - timedelta(days=within)
    records = [
        r
        for r in facts.medications
        if r.valuesets & wanted and not r.is_draft_order and r.status.lower() not in _NEVER_GIVEN
    ]
    recent = [r for r in records if any(window_start <= d <= on for d in _days_of(r))]
    # An active record that began before the window (or states no date at all: its status
    # says it is current) and states no end runs into it.
    recent += [
        r
        for r in records
        if r not in recent
        and r.end is None
        and r.status.lower() in ("active", "on-hold", "in-progress")
        and (r.start is None or r.start <= on)
    ]
    label = "/".join(sorted(wanted))
    if not recent:
        return Verdict(
            NOT_MET,
            f"No {label} order, dispense or administration within {within} days of the order.",
            _dedupe(r.ref for r in records),
        )
    refs = _dedupe(r.ref for r in recent)
    latest = max((d for r in recent for d in _days_of(r) if d <= on), default=None)
    first = _first_of_current_run(facts, wanted, window_start, recent)
    details: dict[str, Any] = {
        "latest": latest.isoformat() if latest else None,
        "first": first.isoformat() if first else None,
    }
    text = (
        f"{recent[0].drug} recorded within {within} days (last {latest})"
        if latest
        else f"{recent[0].drug} recorded as current ({recent[0].status}, no date)"
    )
    if min_days is None:
        return Verdict(MET, text + ".", refs, details)
    needed = int(min_days)
    if first is None:
        return Verdict(
            UNKNOWN,
            f"{text}; when it was first received is not recorded.",
            refs,
            details,
            documentation=f"The date {label} was first received.",
        )
    since = (on - first).days
    if since >= needed:
        return Verdict(
            MET, f"{text}; first received {first} ({since} days before the order).", refs, details
        )
    return Verdict(
        NOT_MET,
        f"{text}; first received {first}, {since} days before the order (needs {needed}).",
        _dedupe(r.ref for r in records),
        details,
    )


@_check(
    "findings-count",
    (MET, UNKNOWN),
    {
        "valuesets": ParamSpec("valuesets"),
        "min": ParamSpec("int"),
        "count_by": ParamSpec("str", required=False),
        "label": ParamSpec("str", required=False),
    },
)
def findings_count(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """At least `min` distinct findings (symptoms, signs) recorded on or before the order:
    Conditions of any clinical status (a past symptom counts), encounter diagnoses, findings
    charted as Observations, and the order's reasons.

    Parameters: `valuesets` (diagnosis value sets of the findings); `min`; `count_by`:
    `valueset` (default: each value set is one finding, so two codes of the same symptom
    count once) or `code`; `label` (optional words for the findings).

    `met` when `min` are found; otherwise `unknown` (never not-met: absent symptoms are
    rarely coded), naming those found and asking for the chart notes."""
    wanted = _names(params, "valuesets")
    needed = int(params["min"])
    by_code = params.get("count_by", "valueset") == "code"
    label = str(params.get("label") or "findings")
    found: dict[str, list[str]] = {}
    words: dict[str, str] = {}
    for rec in facts.condition_history:
        if rec.verification != "confirmed" or not rec.valuesets & wanted:
            continue
        when = rec.onset or rec.recorded
        if when is not None and when > ctx.order_date:
            continue
        keys = [f"{rec.system}|{rec.code}"] if by_code else sorted(rec.valuesets & wanted)
        for key in keys:
            found.setdefault(key, []).append(rec.ref)
            words.setdefault(key, rec.display or key)
    for reason in facts.order.reasons:
        if not reason.valuesets & wanted:
            continue
        keys = [f"{reason.system}|{reason.code}"] if by_code else sorted(reason.valuesets & wanted)
        for key in keys:
            found.setdefault(key, []).extend(reason.refs)
            words.setdefault(key, reason.display or key)
    names = ", ".join(words[k] for k in sorted(found))
    refs = _dedupe(r for k in sorted(found) for r in found[k])
    details = {"found": sorted(found), "min": needed}
    if len(found) >= needed:
        return Verdict(MET, f"{len(found)} {label} recorded: {names}.", refs, details)
    have = f"only {len(found)} recorded ({names})" if found else "none recorded"
    return Verdict(
        UNKNOWN,
        f"At least {needed} {label} are needed; {have}.",
        refs,
        details,
        documentation=f"Chart notes documenting the {label} (at least {needed}).",
    )


@_check(
    "no-active-condition",
    (MET, NOT_MET, UNKNOWN),
    {"valuesets": ParamSpec("valuesets"), "label": ParamSpec("str", required=False)},
    reads=("Condition",),
    absence=(MET,),
)
def no_active_condition(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """No active condition in `valuesets` (e.g. a serious infection at the start of
    therapy): the patient's standing diagnoses (clinical status active, recurrence or
    relapse, or none and not abated) and the order's reasons.

    A confirmed one: `not-met`. Only a working diagnosis (provisional, differential,
    unconfirmed): `unknown` (confirm it has been ruled out or treated). None: `met`.
    `label` (optional) names the conditions in the reason."""
    wanted = _names(params, "valuesets")
    label = str(params.get("label") or "/".join(sorted(wanted)))
    standing = [
        r
        for r in facts.condition_history
        if r.valuesets & wanted and r.source != "observation" and r.standing
    ]
    active = _matching((*facts.order.reasons, *facts.diagnoses), wanted)
    confirmed = [d for d in active if d.verification == "confirmed"]
    confirmed_refs = _dedupe(
        [
            *(ref for d in confirmed for ref in d.refs),
            *(r.ref for r in standing if r.verification == "confirmed"),
        ]
    )
    names = ", ".join(
        sorted(
            {d.display or d.code for d in confirmed}
            | {r.display or r.code for r in standing if r.verification == "confirmed"}
        )
    )
    if confirmed_refs:
        return Verdict(NOT_MET, f"Active {label} recorded: {names}.", confirmed_refs)
    working = _dedupe([*(ref for d in active for ref in d.refs), *(r.ref for r in standing)])
    if working:
        return Verdict(
            UNKNOWN,
            f"A working diagnosis of {label} is recorded (not confirmed).",
            working,
            documentation=f"Documentation that the {label} has been ruled out or treated.",
        )
    return Verdict(MET, f"No active {label} recorded.")


@_check(
    "intolerance-documented",
    (MET, NOT_MET, UNKNOWN),
    {
        "valuesets": ParamSpec("valuesets"),
        "contraindication_valuesets": ParamSpec("valuesets", required=False),
        "absent_status": ParamSpec("status", required=False),
    },
    reachable=lambda p: frozenset({MET, Status(p.get("absent_status", "unknown"))}),
    reads=("AllergyIntolerance", "Condition"),
    absence=(NOT_MET,),
)
def intolerance_documented(
    params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext
) -> Verdict:
    """An intolerance, allergy or contraindication to a drug in `valuesets` is recorded (an
    AllergyIntolerance, a contraindication the mapping recognises, or a confirmed active
    Condition in `contraindication_valuesets`): `met`. None recorded: `absent_status`
    (default `unknown`: intolerance is often only in the notes)."""
    wanted = _names(params, "valuesets")
    found = [i for i in facts.intolerances if i.valuesets & wanted]
    conditions = [
        d
        for d in _matching(facts.diagnoses, _names(params, "contraindication_valuesets"))
        if d.verification == "confirmed"
    ]
    label = "/".join(sorted(wanted))
    if found or conditions:
        what = sorted({f"{i.kind} to {i.substance}" for i in found}) + sorted(
            {d.display or d.code for d in conditions}
        )
        return Verdict(
            MET,
            f"Documented: {', '.join(what)}.",
            _dedupe(
                [*(r for i in found for r in i.refs), *(r for d in conditions for r in d.refs)]
            ),
        )
    status = Status(params.get("absent_status", "unknown"))
    return Verdict(
        status,
        f"No intolerance or contraindication to {label} is recorded.",
        documentation=f"Chart notes documenting the intolerance or contraindication to {label}."
        if status is UNKNOWN
        else None,
    )


@_check("not-covered", (NOT_MET,), {"reason": ParamSpec("str")})
def not_covered(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """An indication or use the policy does not cover (e.g. a phenotype the drug is not
    indicated for): always `not-met`, with `reason` as the words on the card."""
    return Verdict(NOT_MET, str(params["reason"]))
