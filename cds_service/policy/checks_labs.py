"""Checks on laboratory results and body measurements: a value above or below a limit (the
result's reference range or a fixed threshold, after unit conversion), a value lower since
a drug started, a screening test negative within a time, a minimum body weight.

Results are `Measurement`s of an observation value set (`kind`: "crp", "saa",
"tb-skin-test", "tb-igra", "body-weight"); a result without a date cannot be placed and is
not used. Mass concentrations are compared in mg/L (mg/dL x 10, ug/mL = mg/L, g/L x 1000);
a unit that is not one of these (nmol/L, none) leaves the result unread, never guessed.
A result reported as a bound ("< 3 mg/L", "> 160 mg/L") decides only when every value it
allows is on the same side of the limit; otherwise it is unread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final, Literal

from cds_service.policy.checks import (
    MET,
    NOT_MET,
    UNKNOWN,
    EvalContext,
    ParamSpec,
    Verdict,
    _check,
    _dedupe,
    _fmt,
    _names,
    bound_side,
    months_before,
)
from cds_service.policy.model import Status
from fhir_mappings.facts import Measurement, PolicyFacts

_MG_PER_L: Final[Mapping[str, float]] = {
    "mg/l": 1.0,
    "mg/dl": 10.0,
    "ug/ml": 1.0,
    "µg/ml": 1.0,
    "mcg/ml": 1.0,
    "g/l": 1000.0,
    "mg/100ml": 10.0,
}
_TITLES: Final[Mapping[str, str]] = {
    "crp": "CRP",
    "saa": "SAA",
    "tb-skin-test": "tuberculin skin test",
    "tb-igra": "IGRA",
    "body-weight": "body weight",
}


def to_mg_per_l(value: float, unit: str | None) -> float | None:
    """A mass concentration in mg/L, or None when the unit is not one of mass / volume."""
    if unit is None:
        return None
    factor = _MG_PER_L.get(unit.strip().lower().replace(" ", ""))
    return None if factor is None else value * factor


def _title(kind: str) -> str:
    return _TITLES.get(kind, kind.upper())


def _shown(value: float, unit: str | None) -> str:
    return f"{_fmt(value)} {unit}".rstrip()


def _dated(
    measurements: Sequence[Measurement], kinds: Sequence[str], first: date | None, last: date
) -> list[Measurement]:
    """Results of `kinds` dated within `first`..`last` (both included), oldest first."""
    found = [
        m
        for m in measurements
        if m.kind in kinds
        and m.effective is not None
        and m.effective <= last
        and (first is None or m.effective >= first)
    ]
    return sorted(found, key=lambda m: m.effective or date.min)


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class _Reading:
    """One result against its limit: True (on the wanted side), False, or None (unread)."""

    measurement: Measurement
    on_side: bool | None
    text: str


def _limit(m: Measurement, params: Mapping[str, Any], direction: str) -> tuple[float | None, str]:
    """The result's limit in mg/L and where it comes from."""
    if (
        bool(params.get("use_reference_range", True))
        and direction == "above"
        and m.reference_high is not None
    ):
        limit = to_mg_per_l(m.reference_high, m.reference_unit or m.unit)
        if limit is not None:
            return limit, "the upper limit of its reference range"
    threshold = (params.get("thresholds") or {}).get(m.kind)
    if isinstance(threshold, Mapping):
        limit = to_mg_per_l(float(threshold["value"]), str(threshold["unit"]))
        if limit is not None:
            return limit, "the policy threshold"
    return None, ""


def _read(m: Measurement, params: Mapping[str, Any], direction: str) -> _Reading:
    when = f"on {m.effective}"
    name = _title(m.kind)
    if m.value is None:
        interp = (m.interpretation or "").lower()
        if direction == "above" and bool(params.get("use_reference_range", True)):
            if interp in ("high", "abnormal", "positive"):
                return _Reading(m, True, f"{name} flagged {interp} {when}")
            if interp in ("normal", "low", "negative"):
                return _Reading(m, False, f"{name} flagged {interp} {when}")
        return _Reading(m, None, f"{name} {when} has no value")
    value = to_mg_per_l(m.value, m.unit)
    shown = _shown(m.value, m.unit)
    if value is None:
        return _Reading(m, None, f"{name} {shown} {when}: unit cannot be compared in mg/L")
    limit, source = _limit(m, params, direction)
    if limit is None:
        return _Reading(m, None, f"{name} {shown} {when}: no reference range or threshold")
    if m.comparator is not None:
        return _read_bound(m, value, limit, direction, f"{name} {m.comparator} {shown} {when}")
    above = value > limit + 1e-9
    below = value < limit - 1e-9
    side = above if direction == "above" else below
    relation = "above" if above else ("below" if below else "equal to")
    return _Reading(m, side, f"{name} {shown} {when} is {relation} {_fmt(limit)} mg/L ({source})")


def _read_bound(m: Measurement, value: float, limit: float, direction: str, shown: str) -> _Reading:
    """A result reported as a bound (under the reporting limit, over the measuring range)."""
    side = bound_side(str(m.comparator), value, limit, direction)
    if side is None:
        return _Reading(
            m, None, f"{shown}: cannot tell whether it is {direction} {_fmt(limit)} mg/L"
        )
    relation = direction if side else ("below" if direction == "above" else "above")
    return _Reading(m, side, f"{shown} is {relation} {_fmt(limit)} mg/L")


def _window(params: Mapping[str, Any], ctx: EvalContext) -> tuple[date | None, date, str]:
    """First and last day of the results looked at, and the words for them."""
    before_start = params.get("when", "latest") == "before-drug-start"
    last = ctx.order_date
    words = "on or before the order date"
    if before_start and ctx.first_drug_date is not None and ctx.first_drug_date <= last:
        last = ctx.first_drug_date
        words = f"on or before the start of therapy ({last})"
    elif before_start:
        words = "before treatment (up to the order date)"
    days = params.get("within_days")
    first = last - timedelta(days=int(days)) if days is not None else None
    if days is not None:
        words += f", within {int(days)} days"
    return first, last, words


_THRESHOLD_PARAMS: Mapping[str, ParamSpec] = {
    "kinds": ParamSpec("valuesets"),
    "direction": ParamSpec("str"),
    "thresholds": ParamSpec("thresholds", required=False),
    "use_reference_range": ParamSpec("bool", required=False),
    "when": ParamSpec("str", required=False),
    "within_days": ParamSpec("int", required=False),
    "pick": ParamSpec("str", required=False),
}


@_check("lab-threshold", (MET, NOT_MET, UNKNOWN), _THRESHOLD_PARAMS)
def lab_threshold(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """A laboratory result above (or below) its limit.

    Parameters: `kinds` (observation value sets, e.g. [crp, saa]); `direction`: `above` or
    `below` (strictly: a result equal to the limit is neither); `thresholds`: per kind
    `{value, unit}` (mg/L or mg/dL); `use_reference_range` (default true): for `above`, the
    upper limit of the result's own reference range comes first, and a result sent with no
    value but flagged high / normal is read by its flag; `when`: `latest` (default: results
    up to the order date) or `before-drug-start` (up to the first date of the drug, the
    order date when it was never given); `within_days`: only results this many days before
    that day; `pick`: `latest` (default: the latest result of each kind decides) or `any`
    (any result in the window).

    `met` when a result picked is on the wanted side; `not-met` when every result picked
    could be read and none is; `unknown` when no result is on file, or one could not be
    read (no unit, no limit) and none is on the wanted side. Units are converted (0.6 mg/dL
    is 6 mg/L)."""
    kinds = sorted(_names(params, "kinds"))
    direction = str(params["direction"])
    first, last, words = _window(params, ctx)
    found = _dated(facts.measurements, kinds, first, last)
    if params.get("pick", "latest") == "latest":
        latest: dict[str, Measurement] = {}
        for m in found:
            if m.value is not None or m.interpretation:
                latest[m.kind] = m
        found = list(latest.values())
    readings = [_read(m, params, direction) for m in found]
    names = " or ".join(_title(k) for k in kinds)
    side = f"{direction} the limit"
    details: dict[str, Any] = {
        "direction": direction,
        "results": [
            {
                "kind": r.measurement.kind,
                "value": r.measurement.value,
                "unit": r.measurement.unit,
                "date": r.measurement.effective.isoformat() if r.measurement.effective else None,
                "on_side": r.on_side,
            }
            for r in readings
        ],
    }
    hits = [r for r in readings if r.on_side]
    if hits:
        return Verdict(
            MET,
            "; ".join(r.text for r in hits) + ".",
            _dedupe(r.measurement.ref for r in hits),
            details,
        )
    if not readings:
        return Verdict(
            UNKNOWN,
            f"No {names} result {words} is on file.",
            (),
            details,
            documentation=f"{names} result(s) {words}, with the laboratory's reference range.",
        )
    unread = [r for r in readings if r.on_side is None]
    refs = _dedupe(r.measurement.ref for r in readings)
    if unread:
        return Verdict(
            UNKNOWN,
            "; ".join(r.text for r in readings) + f": cannot tell whether {side}.",
            refs,
            details,
            documentation=f"{names} result(s) {words}, with units and reference range.",
        )
    return Verdict(NOT_MET, "; ".join(r.text for r in readings) + ".", refs, details)


@_check("lab-improved", (MET, NOT_MET, UNKNOWN), {"kinds": ParamSpec("valuesets")})
def lab_improved(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """A laboratory result lower since the drug started. Parameters: `kinds` (e.g.
    [crp, saa]).

    For each kind, the latest result after the drug's first date is compared with the last
    result on or before it (units converted to mg/L). `met` when one kind is lower; `not-met`
    when every kind with both results is equal or higher; `unknown` when the start of the
    drug is not known or no kind has both a baseline and a result since."""
    kinds = sorted(_names(params, "kinds"))
    start = ctx.first_drug_date
    names = " or ".join(_title(k) for k in kinds)
    if start is None:
        return Verdict(
            UNKNOWN,
            f"The start of therapy is not known, so no baseline {names} can be identified.",
            documentation=f"The date therapy started and the {names} results before and since.",
        )
    pairs: list[tuple[Measurement, Measurement, float, float]] = []
    seen: list[str] = []
    for kind in kinds:
        usable = [
            m
            for m in _dated(facts.measurements, [kind], None, ctx.order_date)
            if m.value is not None and to_mg_per_l(m.value, m.unit) is not None
        ]
        before = [m for m in usable if m.effective is not None and m.effective <= start]
        after = [m for m in usable if m.effective is not None and m.effective > start]
        seen += [m.ref for m in usable]
        if before and after:
            b, a = before[-1], after[-1]
            assert b.value is not None
            assert a.value is not None
            b_mg = to_mg_per_l(b.value, b.unit)
            a_mg = to_mg_per_l(a.value, a.unit)
            assert b_mg is not None
            assert a_mg is not None
            pairs.append((b, a, b_mg, a_mg))

    def text(b: Measurement, a: Measurement) -> str:
        assert b.value is not None
        assert a.value is not None
        return (
            f"{_title(a.kind)} {_shown(a.value, a.unit)} on {a.effective} vs "
            f"{_shown(b.value, b.unit)} on {b.effective} before therapy started ({start})"
        )

    details = {"start": start.isoformat(), "compared": [p[0].kind for p in pairs]}
    lower = [p for p in pairs if p[3] < p[2] - 1e-9]
    if lower:
        return Verdict(
            MET,
            "Lower: " + "; ".join(text(b, a) for b, a, _, _ in lower) + ".",
            _dedupe(r for b, a, _, _ in lower for r in (b.ref, a.ref)),
            details,
        )
    if pairs:
        return Verdict(
            NOT_MET,
            "Not lower: " + "; ".join(text(b, a) for b, a, _, _ in pairs) + ".",
            _dedupe(r for b, a, _, _ in pairs for r in (b.ref, a.ref)),
            details,
        )
    return Verdict(
        UNKNOWN,
        f"No {names} result both before therapy started ({start}) and since is on file.",
        _dedupe(seen),
        details,
        documentation=f"{names} results from before therapy started and since.",
    )


# --------------------------------------------------------------------------- screening


Result = Literal["negative", "positive", "indeterminate", "unread"]
_WORST: Final[Mapping[str, int]] = {"positive": 3, "indeterminate": 2, "unread": 1, "negative": 0}
_MM: Final = frozenset({"mm", "millimeter", "millimeters", "millimetre", "millimetres"})


def _result(m: Measurement, params: Mapping[str, Any]) -> Result:
    interp = (m.interpretation or "").lower()
    if interp in ("negative", "normal"):
        return "negative"
    if interp in ("positive", "high", "abnormal"):
        return "positive"
    if interp == "indeterminate":
        return "indeterminate"
    negative_below = params.get("induration_negative_below_mm")
    positive_from = params.get("induration_positive_from_mm")
    if m.value is not None and (m.unit or "").strip().lower() in _MM:
        if negative_below is not None and m.value < float(negative_below):
            return "negative"
        if positive_from is not None and m.value >= float(positive_from):
            return "positive"
    return "unread"


@_check(
    "test-negative-within",
    (MET, NOT_MET, UNKNOWN),
    {
        "kinds": ParamSpec("valuesets"),
        "within_months": ParamSpec("int"),
        "treated_valuesets": ParamSpec("valuesets", required=False),
        "induration_negative_below_mm": ParamSpec("number", required=False),
        "induration_positive_from_mm": ParamSpec("number", required=False),
    },
    reads=("MedicationRequest", "MedicationStatement", "MedicationDispense"),
    absence=(NOT_MET,),
)
def test_negative_within(
    params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext
) -> Verdict:
    """The most recent screening test within `within_months` before the order is negative,
    or the condition it screens for was treated.

    Parameters: `kinds` (e.g. [tb-skin-test, tb-igra]); `within_months`; `treated_valuesets`
    (optional medication value sets: a record of one, of any status but entered in error,
    is documented treatment, e.g. of latent tuberculosis); `induration_negative_below_mm`
    and `induration_positive_from_mm` (optional: a skin test sent as an induration in mm
    with no interpretation is negative below / positive from these sizes; in between, or
    without them, it cannot be read).

    The result is read from the interpretation or coded value (negative / positive /
    indeterminate). The most recent test day decides (several results that day: the worst).
    Negative: `met`. Positive: `met` when treated, else `not-met`. Indeterminate (an
    indeterminate IGRA is not negative) or unreadable: `unknown` (retest). No test in the
    window: `met` when treated, else `unknown`."""
    kinds = sorted(_names(params, "kinds"))
    months = int(params["within_months"])
    first = months_before(ctx.order_date, months)
    found = _dated(facts.measurements, kinds, first, ctx.order_date)
    treated_sets = _names(params, "treated_valuesets")
    treated = [
        r
        for r in facts.medications
        if r.valuesets & treated_sets
        and not r.is_draft_order
        and r.status.lower() not in ("entered-in-error", "cancelled")
    ]
    names = " or ".join(_title(k) for k in kinds)
    treated_text = (
        f"treatment documented ({', '.join(sorted({r.drug for r in treated}))})" if treated else ""
    )
    treated_refs = tuple(r.ref for r in treated)
    if not found:
        if treated:
            return Verdict(MET, f"No {names} within {months} months; {treated_text}.", treated_refs)
        return Verdict(
            UNKNOWN,
            f"No {names} result within {months} months before the order is on file.",
            documentation=f"A {names} result from the last {months} months, or documentation "
            "of treatment.",
        )
    day = max(m.effective or date.min for m in found)
    that_day = [m for m in found if m.effective == day]
    results = [(_result(m, params), m) for m in that_day]
    worst, m = max(results, key=lambda r: _WORST[r[0]])
    refs = tuple(x.ref for _, x in results)
    text = f"{_title(m.kind)} on {day}: {worst if worst != 'unread' else 'result not readable'}"
    details = {"result": worst, "date": day.isoformat(), "kind": m.kind}
    if worst == "negative":
        return Verdict(MET, text + ".", refs, details)
    if treated:
        return Verdict(MET, f"{text}; {treated_text}.", refs + treated_refs, details)
    if worst == "positive":
        return Verdict(
            NOT_MET,
            text + "; no treatment documented.",
            refs,
            details,
            documentation="Documentation of treatment (for a positive screening test).",
        )
    why = (
        "an indeterminate result is not a negative one"
        if worst == "indeterminate"
        else "positive or negative is not stated"
    )
    return Verdict(
        UNKNOWN,
        f"{text} ({why}).",
        refs,
        details,
        documentation=f"A negative {names} result (repeat test), or documentation of treatment.",
    )


# --------------------------------------------------------------------------- weight


@_check(
    "minimum-weight",
    (MET, NOT_MET, UNKNOWN),
    {
        "kg": ParamSpec("number"),
        "within_days": ParamSpec("int"),
        "exclusive": ParamSpec("bool", required=False),
    },
)
def minimum_weight(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """Body weight at least `kg` (with `exclusive: true`, more than `kg`: "> 40 kg"), by the
    latest weight within `within_days` before the order (weights are in kg: the mapping
    converts pounds and grams). None in that time: `unknown`."""
    exclusive = bool(params.get("exclusive", False))
    minimum = float(params["kg"])
    days = int(params["within_days"])
    found = [
        m
        for m in _dated(
            facts.measurements,
            ["body-weight"],
            ctx.order_date - timedelta(days=days),
            ctx.order_date,
        )
        if m.value is not None and m.value > 0
    ]
    if not found:
        return Verdict(
            UNKNOWN,
            f"No body weight recorded within {days} days of the order.",
            documentation=f"A body weight measured within the last {days} days.",
        )
    latest = found[-1]
    assert latest.value is not None
    details = {"weight_kg": latest.value, "minimum_kg": minimum}
    text = f"Body weight {_fmt(latest.value)} kg on {latest.effective}"
    if exclusive:
        status: Status = MET if latest.value > minimum + 1e-9 else NOT_MET
        relation = "more than" if status is MET else "not more than"
    else:
        status = MET if latest.value >= minimum - 1e-9 else NOT_MET
        relation = "at least" if status is MET else "below"
    return Verdict(status, f"{text}: {relation} {_fmt(minimum)} kg.", (latest.ref,), details)
