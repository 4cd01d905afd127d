"""Dose checks: `dose-limit` and `dose-increase-limit` (registered in `checks`).

Two ways to state a limit, by the parameters a criterion gives:

- per day (NH.PHAR.244): `mg_per_day`, `syringes_per_day` (units of the product a day),
  `mg_per_kg_per_day`, `weight_based_syringes` with `syringe_band_mg` (a policy's table that
  counts a new unit for every band of a weight-based dose), `syringe_mg`;
- per administration and schedule (any product, any schedule): `interval_days` (the
  fewest days between two doses: weekly = 7), `loading` and `maintenance` limits (`{mg}` or
  `{mg_per_kg, max_mg}`), `bands` of age and / or body weight with their own loading /
  maintenance, `quantity` (`{units_per_28_days, first_week_units}`), `loading_allowed`
  (false: no new loading dose).

A band states any of `min_age` / `max_age` (whole years, both inclusive), `min_weight_kg` /
`max_weight_kg` (at least / at most, both inclusive: "15 to 40 kg") and `over_weight_kg` /
`under_weight_kg` (more than / less than: "over 40 kg"); it holds when every bound it states
holds, and the first band that holds is used. Weight is the latest body weight within
`weight_max_age_days` (default 90); a band whose weight bound cannot be told without one
leaves the limit unknown, asking for a body weight within that many days.

The order's dose comes from `PolicyFacts.order.dose` (fhir_mappings.dosing), worked out with
the unit of the product (drug.json): units per administration = ceil(mg / deliverable mg).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from cds_service.policy.checks import (
    MET,
    NOT_MET,
    UNKNOWN,
    EvalContext,
    ParamSpec,
    Verdict,
    _check,
    _fmt,
    _le,
    _num,
    _sentence,
    age_on,
    appendix_e_syringes,
)
from fhir_mappings.dosing import banded_units_per_day
from fhir_mappings.facts import DoseFacts, PolicyFacts, WeightFact
from fhir_mappings.product_unit import ProductUnit

_EPSILON: Final = 1e-9
_DAYS_PER_QUANTITY_PERIOD: Final = 28.0
_FIRST_WEEK_DAYS: Final = 7.0

_DOSE_PARAMS: Mapping[str, ParamSpec] = {
    "mg_per_day": ParamSpec("number", required=False),
    "syringes_per_day": ParamSpec("number", required=False),
    "mg_per_kg_per_day": ParamSpec("number", required=False),
    "weight_based_syringes": ParamSpec("bool", required=False),
    "syringe_mg": ParamSpec("number", required=False),
    "syringe_band_mg": ParamSpec("number", required=False),
    "weight_max_age_days": ParamSpec("int", required=False),
    "interval_days": ParamSpec("number", required=False),
    "loading": ParamSpec("dose", required=False),
    "maintenance": ParamSpec("dose", required=False),
    "bands": ParamSpec("dose_bands", required=False),
    "quantity": ParamSpec("quantity", required=False),
    "loading_allowed": ParamSpec("bool", required=False),
}
_SCHEDULE_KEYS: Final = frozenset({"loading", "maintenance", "bands", "quantity", "interval_days"})
# a band's weight bound -> its words in a reason
_WEIGHT_BOUNDS: Final = {
    "min_weight_kg": "at least",
    "max_weight_kg": "at most",
    "over_weight_kg": "more than",
    "under_weight_kg": "less than",
}
_IMPRECISE_BIRTH_DATE: Final = "the birth date is not precise enough to tell the age band"
_BAND_KEYS: Final = frozenset({"min_age", "max_age", "loading", "maintenance", *_WEIGHT_BOUNDS})


# --------------------------------------------------------------------------- parameters


def _positive(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value > 0


def _dose_problem(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "expected {mg: N} or {mg_per_kg: X, max_mg: N}"
    keys = set(value)
    if keys == {"mg"} and _positive(value["mg"]):
        return None
    if keys in ({"mg_per_kg"}, {"mg_per_kg", "max_mg"}) and all(_positive(value[k]) for k in keys):
        return None
    return "expected {mg: N} or {mg_per_kg: X, max_mg: N} with numbers > 0"


def param_problem(kind: str, value: Any) -> str | None:
    """Why a `dose`, `dose_bands` or `quantity` parameter is malformed (None when fine)."""
    if kind == "dose":
        return _dose_problem(value)
    if kind == "quantity":
        if (
            isinstance(value, Mapping)
            and "units_per_28_days" in value
            and set(value) <= {"units_per_28_days", "first_week_units"}
            and all(_positive(v) for v in value.values())
        ):
            return None
        return "expected {units_per_28_days: N, first_week_units: M} with numbers > 0"
    if kind == "dose_bands":
        if not isinstance(value, list) or not value:
            return "expected a non-empty list of age / weight bands"
        for n, band in enumerate(value):
            if not isinstance(band, Mapping) or not set(band) <= _BAND_KEYS:
                return f"band {n + 1}: expected {', '.join(sorted(_BAND_KEYS))}"
            for key in ("min_age", "max_age"):
                age = band.get(key)
                if key in band and (isinstance(age, bool) or not isinstance(age, int) or age < 0):
                    return f"band {n + 1}: {key} must be a whole number of years >= 0"
            for key in _WEIGHT_BOUNDS:
                if key in band and not _positive(band[key]):
                    return f"band {n + 1}: {key} must be a number of kg > 0"
            if "maintenance" not in band:
                return f"band {n + 1}: maintenance is required"
            for key in ("loading", "maintenance"):
                if key in band:
                    problem = _dose_problem(band[key])
                    if problem:
                        return f"band {n + 1}: {key}: {problem}"
        return None
    return f"unknown kind {kind}"


# --------------------------------------------------------------------------- per day


def _recent_weight(dose: DoseFacts, ctx: EvalContext, max_age: int) -> WeightFact | None:
    weight = dose.weight
    if (
        weight is not None
        and weight.effective is not None
        and ((ctx.order_date - weight.effective).days > max_age)
    ):
        return None
    return weight


def _units_of_dose(mg: float, unit_mg: float | None, unit: ProductUnit | None) -> int | None:
    if unit_mg is not None:
        return math.ceil(round(mg / unit_mg, 9))
    return unit.units_for(mg) if unit is not None else None


def _dose_verdict(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    if _SCHEDULE_KEYS & set(params):
        return _schedule_verdict(params, facts, ctx)
    dose = facts.order.dose
    ref = facts.order.ref
    limit_mg = _num(params, "mg_per_day")
    limit_syr = _num(params, "syringes_per_day")
    limit_mgkg = _num(params, "mg_per_kg_per_day")
    weight_based = bool(params.get("weight_based_syringes", False))
    band_mg = _num(params, "syringe_band_mg")
    unit_mg = _num(params, "syringe_mg")
    max_age = int(params.get("weight_max_age_days", 90))

    def banded(mg: float) -> int | None:
        if band_mg is not None:
            return appendix_e_syringes(mg, band_mg)
        return _units_of_dose(mg, unit_mg, dose.unit)

    over: list[str] = []
    unknown: list[str] = []
    evidence = [ref]
    details: dict[str, Any] = {
        "ordered_mg_per_day": dose.mg_per_day,
        "administrations_per_day": dose.administrations_per_day,
        "dispense_syringes_per_day": dose.dispense_syringes_per_day,
    }

    mg_day = dose.mg_per_day
    if mg_day is None:
        unknown.append("; ".join(dose.unknown_reasons) or "the daily dose cannot be derived")

    if limit_mg is not None:
        details["limit_mg_per_day"] = limit_mg
        if mg_day is not None and not _le(mg_day, limit_mg):
            over.append(f"{_fmt(mg_day)} mg/day exceeds {_fmt(limit_mg)} mg/day")

    weight = _recent_weight(dose, ctx, max_age)
    if limit_mgkg is not None:
        details["limit_mg_per_kg_per_day"] = limit_mgkg
        if weight is None or weight.kg <= 0:
            unknown.append(f"no body weight recorded within {max_age} days of the order")
        else:
            evidence.append(weight.ref)
            details["weight_kg"] = weight.kg
            limit_for_weight = limit_mgkg * weight.kg
            details["limit_mg_per_day"] = round(limit_for_weight, 2)
            details["limit_syringes_per_dose_at_limit"] = banded(limit_for_weight)
            if mg_day is not None:
                mgkg = mg_day / weight.kg
                details["ordered_mg_per_kg_per_day"] = round(mgkg, 4)
                if not _le(mgkg, limit_mgkg):
                    over.append(
                        f"{_fmt(mgkg)} mg/kg/day ({_fmt(mg_day)} mg/day at "
                        f"{_fmt(weight.kg)} kg) exceeds {_fmt(limit_mgkg)} mg/kg/day"
                    )

    if weight_based:
        per_admin = dose.mg_per_administration
        allowed: float | None = (
            banded_units_per_day(dose, band_mg)
            if dose.lines and band_mg is not None
            else dose.weight_based_syringes_per_day
        )
        if len(per_admin) == 1 and dose.administrations_per_day is not None:
            units = banded(per_admin[0])
            allowed = units * dose.administrations_per_day if units is not None else None
        details["ordered_syringes_per_day"] = allowed
        details["limit_syringes_per_day"] = allowed
        if band_mg is not None:
            details["syringe_band_mg"] = band_mg
        dispense = dose.dispense_syringes_per_day
        if dispense is not None and allowed is not None and not _le(dispense, allowed):
            over.append(
                f"dispensing {_fmt(dispense)} syringes/day exceeds the Appendix E quantity "
                f"of {_fmt(allowed)}/day"
            )
    elif limit_syr is not None:
        details["limit_syringes_per_day"] = limit_syr
        syringes = dose.syringes_per_day
        if (
            syringes is None
            and dose.administrations_per_day is not None
            and len(dose.mg_per_administration) == 1
        ):
            units = _units_of_dose(dose.mg_per_administration[0], unit_mg, dose.unit)
            syringes = units * dose.administrations_per_day if units is not None else None
        details["ordered_syringes_per_day"] = syringes
        if syringes is None:
            unknown.append("syringes per day cannot be derived")
        elif not _le(syringes, limit_syr):
            over.append(f"{_fmt(syringes)} syringes/day exceeds {_fmt(limit_syr)}/day")
        dispense = dose.dispense_syringes_per_day
        if dispense is not None and not _le(dispense, limit_syr):
            over.append(f"dispensing {_fmt(dispense)} syringes/day exceeds {_fmt(limit_syr)}/day")

    details["over_limit"] = over
    if "limit_mg_per_day" in details:
        details["suggested_mg_per_day"] = (
            math.floor(details["limit_mg_per_day"] + _EPSILON)
            if limit_mgkg is not None
            else details["limit_mg_per_day"]
        )
    if over:
        return Verdict(NOT_MET, _sentence(over), tuple(evidence), details)
    if unknown:
        return Verdict(UNKNOWN, _sentence(unknown), tuple(evidence), details)
    parts = [f"{_fmt(mg_day or 0)} mg/day"]
    if "ordered_mg_per_kg_per_day" in details:
        parts.append(f"{_fmt(details['ordered_mg_per_kg_per_day'])} mg/kg/day")
    if details.get("ordered_syringes_per_day") is not None:
        parts.append(f"{_fmt(details['ordered_syringes_per_day'])} syringe(s)/day")
    return Verdict(MET, "Within the limit: " + ", ".join(parts) + ".", tuple(evidence), details)


@_check("dose-limit", (MET, NOT_MET, UNKNOWN), _DOSE_PARAMS)
def dose_limit(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """Daily dose within mg/day, mg/kg/day and syringes/day limits.

    Fixed dosing: each administration takes ceil(dose / syringe_mg) syringes. Weight-based
    dosing (`weight_based_syringes`): each administration takes the Appendix E count
    (floor(dose / 105 mg) + 1); the dispensed syringes per day may not exceed it. The
    weight is the order's body weight, if recorded within `weight_max_age_days`.
    `details` carry the ordered and allowed values and a suggested daily dose.

    Per administration (`loading`, `maintenance`, `interval_days`, `quantity`, `bands`):
    each band states any of `min_age` / `max_age` (whole years, inclusive), `min_weight_kg`
    / `max_weight_kg` (at least / at most, inclusive) and `over_weight_kg` /
    `under_weight_kg` (more than / less than); the first band whose every bound holds is
    used, none: not-met. A weight bound reached with no body weight within
    `weight_max_age_days` (default 90): unknown, asking for one.
    """
    return _dose_verdict(params, facts, ctx)


@_check("dose-increase-limit", (MET, NOT_MET, UNKNOWN), _DOSE_PARAMS)
def dose_increase_limit(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """Only a dose increase is held to the limits: a new daily dose not higher than the
    current one is met ("no dose increase"). When the current dose is not known, the new
    dose is held to the limits (met within them, not-met above them)."""
    new = facts.order.dose.mg_per_day
    current = [r.mg_per_day for r in ctx.current_drug_records if r.mg_per_day is not None]
    current_mg = max(current) if current else None
    if new is None:
        return _dose_verdict(params, facts, ctx)
    if current_mg is not None and _le(new, current_mg):
        refs = tuple(r.ref for r in ctx.current_drug_records if r.mg_per_day is not None)
        return Verdict(
            MET,
            f"No dose increase: {_fmt(new)} mg/day ordered, {_fmt(current_mg)} mg/day current.",
            (facts.order.ref, *refs),
            {"ordered_mg_per_day": new, "current_mg_per_day": current_mg, "increase": False},
        )
    verdict = _dose_verdict(params, facts, ctx)
    prefix = (
        f"Dose increase from {_fmt(current_mg)} mg/day. "
        if current_mg is not None
        else "Current dose not documented. "
    )
    return Verdict(
        verdict.status,
        prefix + verdict.reason,
        verdict.evidence,
        {**verdict.details, "current_mg_per_day": current_mg, "increase": current_mg is not None},
    )


# --------------------------------------------------------------------------- schedule


def interval_words(days: float) -> str:
    """ "once daily", "once weekly", "every 2 weeks", "every 3.5 days"."""
    if abs(days - 1) < 1e-6:
        return "once daily"
    if abs(days - 7) < 1e-6:
        return "once weekly"
    weeks = days / 7
    if abs(weeks - round(weeks)) < 1e-6:
        return f"every {round(weeks)} weeks"
    return f"every {_fmt(days)} days"


def _weight_holds(band: Mapping[str, Any], kg: float) -> bool:
    low, high = band.get("min_weight_kg"), band.get("max_weight_kg")
    over, under = band.get("over_weight_kg"), band.get("under_weight_kg")
    return (
        (low is None or kg >= float(low) - _EPSILON)
        and (high is None or kg <= float(high) + _EPSILON)
        and (over is None or kg > float(over) + _EPSILON)
        and (under is None or kg < float(under) - _EPSILON)
    )


def _band(
    params: Mapping[str, Any],
    facts: PolicyFacts,
    ctx: EvalContext,
    weight: WeightFact | None,
    max_age: int,
) -> tuple[Mapping[str, Any] | None, str | None, int | None, bool]:
    """(the limits that apply, why none can be chosen, the age used, whether the weight was
    used to choose). Bands are tried in order; a band's age and weight bounds must all hold."""
    bands = params.get("bands")
    base = {k: params[k] for k in ("loading", "maintenance") if k in params}
    if not bands:
        return base, None, None, False
    age: int | None = None
    youngest: int | None = None
    weighed = False
    for band in bands:
        low, high = band.get("min_age"), band.get("max_age")
        if low is not None or high is not None:
            if facts.birth_date is None:
                return None, "no birth date: the dose limit depends on age", None, weighed
            age = age_on(facts.birth_date, ctx.order_date)
            youngest = (
                age_on(facts.earliest_birth_date, ctx.order_date)
                if facts.earliest_birth_date is not None
                else age
            )
            if not ((low is None or age >= low) and (high is None or age <= high)):
                continue
            assert youngest is not None
            if (low is not None and youngest < low) or (high is not None and youngest > high):
                return None, _IMPRECISE_BIRTH_DATE, age, weighed
        if any(key in band for key in _WEIGHT_BOUNDS):
            if weight is None or weight.kg <= 0:
                return (
                    None,
                    f"the dose limit depends on body weight: no body weight within {max_age} "
                    "days of the order",
                    age,
                    weighed,
                )
            weighed = True
            if not _weight_holds(band, weight.kg):
                continue
        return (
            {**base, **{k: band[k] for k in ("loading", "maintenance") if k in band}},
            None,
            age,
            weighed,
        )
    return {}, None, age, weighed


def _no_band_words(age: int | None, weight: WeightFact | None, weighed: bool) -> str:
    words = []
    if age is not None:
        words.append(f"age {age}")
    if weighed and weight is not None:
        words.append(f"a body weight of {_fmt(weight.kg)} kg")
    return " and ".join(words) or "this member"


def _limit(spec: Mapping[str, Any], weight: WeightFact | None) -> tuple[float, int, str] | None:
    """(allowed mg, suggested whole mg at the limit, words) or None without a weight."""
    if "mg" in spec:
        mg = float(spec["mg"])
        return mg, math.floor(mg + _EPSILON), f"{_fmt(mg)} mg"
    if weight is None or weight.kg <= 0:
        return None
    per_kg = float(spec["mg_per_kg"])
    allowed = per_kg * weight.kg
    suggested = math.floor(allowed + _EPSILON)
    cap = spec.get("max_mg")
    words = f"{_fmt(per_kg)} mg/kg ({_fmt(allowed)} mg at {_fmt(weight.kg)} kg"
    if cap is not None and allowed > float(cap):
        allowed, suggested = float(cap), math.floor(float(cap) + _EPSILON)
        words += f", capped at {_fmt(float(cap))} mg"
    return allowed, suggested, words + ")"


def _administrations(days: float, interval: float, loading: bool) -> int:
    """Administrations in a supply of `days`: every `interval` days from day 1 (after a
    loading dose on day 1, maintenance from day 1 + interval)."""
    if loading:
        return 1 + math.ceil(round((days - interval) / interval, 6)) if days > interval else 1
    return math.ceil(round(days / interval, 6))


def _schedule_verdict(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    dose = facts.order.dose
    unit = dose.unit
    max_age = int(params.get("weight_max_age_days", 90))
    weight = _recent_weight(dose, ctx, max_age)
    evidence = [facts.order.ref]
    over: list[str] = []
    unknown: list[str] = list(dose.schedule_reasons)
    excess: list[str] = []
    details: dict[str, Any] = {
        "schedule": True,
        "ordered_loading_mg": dose.loading_mg,
        "ordered_maintenance_mg": dose.maintenance_mg,
        "ordered_interval_days": dose.interval_days,
        "dispense_units": dose.dispense_units,
        "dispense_days": dose.dispense_days,
    }
    limits, why, age, weighed = _band(params, facts, ctx, weight, max_age)
    if age is not None:
        details["age"] = age
        evidence.append(facts.patient_ref)
    if why is not None:
        unknown.append(why)
    elif limits is not None and not limits:
        over.append(f"the policy gives no dose for {_no_band_words(age, weight, weighed)}")
        excess.append("dose")
    limits = limits or {}
    allow_loading = bool(params.get("loading_allowed", True)) and "loading" in limits
    needs_weight = any("mg_per_kg" in limits.get(k, {}) for k in ("loading", "maintenance"))
    if weighed and not needs_weight and weight is not None:
        evidence.append(weight.ref)
        details["weight_kg"] = weight.kg
    if needs_weight:
        if weight is None or weight.kg <= 0:
            unknown.append(f"no body weight recorded within {max_age} days of the order")
        else:
            evidence.append(weight.ref)
            details["weight_kg"] = weight.kg

    maintenance = _limit(limits["maintenance"], weight) if "maintenance" in limits else None
    loading = _limit(limits["loading"], weight) if allow_loading else None
    if maintenance is not None:
        details["limit_maintenance_mg"] = round(maintenance[0], 2)
        details["suggested_maintenance_mg"] = maintenance[1]
        ordered = dose.maintenance_mg
        if ordered is not None and not _le(ordered, maintenance[0]):
            over.append(
                f"{_fmt(ordered)} mg a dose exceeds the maintenance dose of {maintenance[2]}"
            )
            excess.append("dose")
    if dose.loading_mg is not None:
        if allow_loading and loading is not None:
            details["limit_loading_mg"] = round(loading[0], 2)
            details["suggested_loading_mg"] = loading[1]
            if not _le(dose.loading_mg, loading[0]):
                over.append(f"the {_fmt(dose.loading_mg)} mg loading dose exceeds {loading[2]}")
                excess.append("dose")
        elif maintenance is not None and not _le(dose.loading_mg, maintenance[0]):
            what = (
                "no new loading dose on continued therapy"
                if "loading_allowed" in params and not params["loading_allowed"]
                else "the policy allows no loading dose"
            )
            over.append(
                f"a first dose of {_fmt(dose.loading_mg)} mg exceeds the maintenance dose of "
                f"{maintenance[2]} ({what})"
            )
            details["loading_not_allowed"] = True
            excess.append("dose")
    interval = _num(params, "interval_days")
    if interval is not None:
        details["limit_interval_days"] = interval
        ordered_interval = dose.interval_days
        if ordered_interval is not None and ordered_interval < interval - 1e-6:
            over.append(
                f"doses {interval_words(ordered_interval)} are more often than "
                f"{interval_words(interval)}"
            )
            excess.append("interval")

    quantity = params.get("quantity")
    if isinstance(quantity, Mapping):
        _quantity(
            quantity,
            dose,
            unit,
            (allow_loading, _loading_maybe(params, limits, why, dose)),
            interval,
            details,
            over,
            unknown,
            excess,
        )

    details["over_limit"] = over
    details["excess"] = sorted(set(excess))
    if over:
        return Verdict(NOT_MET, _sentence(over), tuple(evidence), details)
    if unknown:
        return Verdict(UNKNOWN, _sentence(unknown), tuple(evidence), details)
    parts = []
    if dose.loading_mg is not None:
        parts.append(f"a loading dose of {_fmt(dose.loading_mg)} mg")
    if dose.maintenance_mg is not None:
        every = f" {interval_words(dose.interval_days)}" if dose.interval_days is not None else ""
        parts.append(f"{_fmt(dose.maintenance_mg)} mg{every}")
    if details.get("dispense_units") is not None and unit is not None:
        parts.append(
            f"{unit.count(details['dispense_units'])} for {_fmt(details['dispense_days'])} days"
        )
    return Verdict(
        MET,
        "Within the limit: "
        + ", then ".join(parts[:2])
        + (f"; {parts[2]}" if len(parts) > 2 else "")
        + ".",
        tuple(evidence),
        details,
    )


def _loading_maybe(
    params: Mapping[str, Any], limits: Mapping[str, Any], why: str | None, dose: DoseFacts
) -> bool:
    """Whether an allowed loading dose may be in the order though it cannot be counted: the
    schedule could not be read, or the age band that says whether loading is allowed is
    not known."""
    if "loading_allowed" in params and not params["loading_allowed"]:
        return False
    if why is not None:
        possible = "loading" in params or any(
            isinstance(b, Mapping) and "loading" in b for b in params.get("bands") or ()
        )
        return possible and (dose.loading_mg is not None or bool(dose.schedule_reasons))
    return "loading" in limits and dose.loading_mg is None and bool(dose.schedule_reasons)


def _quantity(
    quantity: Mapping[str, Any],
    dose: DoseFacts,
    unit: ProductUnit | None,
    loading: tuple[bool, bool],
    interval: float | None,
    details: dict[str, Any],
    over: list[str],
    unknown: list[str],
    excess: list[str],
) -> None:
    """Quantity limits: the dose's units per 28 days, and the dispense request's units over
    its supply days (a first week with a loading dose may hold `first_week_units`).
    `loading`: (a loading dose is allowed, an allowed loading dose may be in the order
    though it cannot be counted: then a dispense that fits only with the first week's
    allowance is unknown)."""
    allow_loading, loading_maybe = loading
    per_28 = float(quantity["units_per_28_days"])
    first_week: float | None = (
        float(quantity["first_week_units"]) if "first_week_units" in quantity else None
    )
    details["limit_units_per_28_days"] = per_28
    if unit is None:
        unknown.append("the product's unit (vials, syringes) is not known to count the quantity")
        return
    details["unit"] = unit.name
    every = dose.interval_days if dose.interval_days is not None else interval
    maint_units = unit.units_for(dose.maintenance_mg) if dose.maintenance_mg else None
    loading_units = unit.units_for(dose.loading_mg) if dose.loading_mg else None
    details["maintenance_units"] = maint_units
    details["loading_units"] = loading_units
    if maint_units is not None and dose.interval_days:
        per_period = maint_units * _DAYS_PER_QUANTITY_PERIOD / dose.interval_days
        details["ordered_units_per_28_days"] = round(per_period, 2)
        if not _le(per_period, per_28):
            over.append(
                f"the dose takes {unit.count(round(per_period, 2))} per 28 days "
                f"({unit.count(maint_units)} a dose), over the limit of {unit.count(per_28)}"
            )
            excess.append("dose")
    units, days = dose.dispense_units, dose.dispense_days
    if units is None or days is None:
        return
    week = first_week if allow_loading and loading_units is not None else None
    with_loading = week is not None
    exact = per_28 * days / _DAYS_PER_QUANTITY_PERIOD
    week_extra = (
        (first_week or 0) - per_28 * _FIRST_WEEK_DAYS / _DAYS_PER_QUANTITY_PERIOD
        if first_week is not None
        else 0.0
    )
    if week is not None:
        exact += week_extra
    allowed = math.floor(exact + 1e-6)
    if loading_maybe and week_extra > 0 and not _le(units, allowed):
        with_loading_allowed = math.floor(exact + week_extra + 1e-6)
        if _le(units, with_loading_allowed):
            details["limit_dispense_units"] = with_loading_allowed
            unknown.append(
                f"dispensing {unit.count(units)} for {_fmt(days)} days is within the limit "
                "only with a loading dose in the first week, which cannot be told here"
            )
            return
        allowed, with_loading = with_loading_allowed, True
    details["limit_dispense_units"] = allowed
    need = None
    if maint_units is not None and every:
        count = _administrations(days, every, loading_units is not None)
        need = maint_units * count
        if loading_units is not None:
            need += loading_units - maint_units
        details["needed_dispense_units"] = need
    if not _le(units, allowed):
        over.append(
            f"dispensing {unit.count(units)} for {_fmt(days)} days exceeds the limit of "
            f"{unit.count(allowed)} ({unit.count(per_28)} per 28 days"
            + (f", {unit.count(first_week or 0)} in the loading week" if with_loading else "")
            + ")"
        )
        excess.append("quantity")
        details["suggested_dispense_units"] = min(allowed, need) if need is not None else allowed
