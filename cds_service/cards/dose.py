"""Dose-limit arithmetic for the dose card and the dose suggestion.

Every limit comes from the `dose-limit` / `dose-increase-limit` criterion's `details` (the
check writes them from the policy's parameters); the card code holds no policy number. The
ordered amounts come from the details too, else from the order's `DoseFacts`:

- `ordered_mg_per_day`: else `facts.order.dose.mg_per_day`;
- `limit_mg_per_day`: for a weight-based limit without it, floor(limit mg/kg x weight);
- `limit_mg_per_kg_per_day`: its presence makes the limit weight-based;
- `ordered_mg_per_kg_per_day`: else `facts.order.dose.mg_per_kg_per_day`;
- `weight_kg`: else `facts.order.dose.weight.kg`;
- `ordered_syringes_per_day` (units of the product a day): else the order's units a day;
- `limit_syringes_per_day`: the units a day allowed (none when the details have none);
- `syringe_band_mg`: a weight-based dose counts one unit more for every band of this many
  mg (a policy's table); without it a dose takes ceil(mg / deliverable mg) units.

The suggested order is a deep copy of the draft MedicationRequest, never the
draft itself:
- fixed dosing: one dosage line, the limit once daily (at most the units a day allowed,
  never more than ordered); the line's route, site and bounds are kept, its free text is
  replaced so that it cannot contradict the new dose;
- weight-based dosing: the frequency is kept and every administration becomes
  floor(limit mg a day / administrations per day) whole mg, so the day's total stays within
  the limit;
- a dispense quantity (in units of the product, or in mL) above what the new dose needs for
  the expected supply duration (days, weeks, months of 30 days) is lowered to that need;
- when the dose itself is within the limit and only the dispense request supplies
  more units a day than the dose needs (`excess` is "dispense"), the dose is
  kept and only the dispense quantity is lowered (`suggest_dispense`): a card
  never suggests a dose higher than the one ordered.
No suggestion is made when the arithmetic would need a guess (no limit, no weight, no
administrations per day, no dosage line, a dispense unit other than the product's or mL).

A regimen authorized for a setting (`suggest_regimen`): its dose once daily for at most
its days, with the dispense request capped at the units of that course.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cds_service.cards.codes import UCUM
from cds_service.policy.checks import appendix_e_syringes as banded_units
from cds_service.policy.checks_dose import interval_words
from cds_service.policy.model import CriterionResult
from fhir_mappings.dosing import quantity_per_unit, supply_days
from fhir_mappings.facts import PolicyFacts
from fhir_mappings.product_unit import ProductUnit

EPSILON = 1e-6
Excess = Literal["dose", "units", "dispense"]


@dataclass(frozen=True)
class DoseLimit:
    kind: Literal["fixed", "weight"]
    ordered_mg_per_day: float | None
    limit_mg_per_day: float | None
    ordered_mg_per_kg_per_day: float | None
    limit_mg_per_kg_per_day: float | None
    weight_kg: float | None
    weight_ref: str | None
    ordered_units_per_day: float | None
    limit_units_per_day: float | None
    dispense_units_per_day: float | None
    band_mg: float | None = None
    """A weight-based dose takes one unit more for every band of this many mg."""


@dataclass(frozen=True)
class DoseSuggestion:
    label: str
    """Plain words for the new dose, e.g. "100 mg once daily"."""
    resource: dict[str, Any]
    """The deep copy of the draft order with the new dose."""
    mg_per_day: float
    units_per_day: float


def fmt(value: float) -> str:
    """A number as a prescriber would write it: 100, 12.5, 7.33."""
    if abs(value - round(value)) < 1e-9:
        return str(round(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _number(details: Mapping[str, Any], key: str) -> float | None:
    value = details.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def dose_limit(facts: PolicyFacts, criterion: CriterionResult) -> DoseLimit:
    """The ordered and allowed daily dose for the dose card (see module table)."""
    details = criterion.details
    dose = facts.order.dose
    limit_mg_kg = _number(details, "limit_mg_per_kg_per_day")
    limit_mg = _number(details, "limit_mg_per_day")
    weight = _number(details, "weight_kg")
    weight_ref = None
    if dose.weight is not None:
        weight_ref = dose.weight.ref
        if weight is None:
            weight = dose.weight.kg
    ordered_mg = _number(details, "ordered_mg_per_day")
    if ordered_mg is None:
        ordered_mg = dose.mg_per_day
    ordered_units = _number(details, "ordered_syringes_per_day")
    if limit_mg_kg is not None:
        if limit_mg is None and weight is not None:
            limit_mg = float(math.floor(limit_mg_kg * weight + 1e-9))
        ordered_mg_kg = _number(details, "ordered_mg_per_kg_per_day")
        if ordered_mg_kg is None:
            ordered_mg_kg = dose.mg_per_kg_per_day
        if ordered_mg_kg is None and ordered_mg is not None and weight:
            ordered_mg_kg = ordered_mg / weight
        if ordered_units is None:
            ordered_units = dose.weight_based_syringes_per_day
        return DoseLimit(
            kind="weight",
            ordered_mg_per_day=ordered_mg,
            limit_mg_per_day=limit_mg,
            ordered_mg_per_kg_per_day=ordered_mg_kg,
            limit_mg_per_kg_per_day=limit_mg_kg,
            weight_kg=weight,
            weight_ref=weight_ref,
            ordered_units_per_day=ordered_units,
            limit_units_per_day=_number(details, "limit_syringes_per_day"),
            dispense_units_per_day=dose.dispense_syringes_per_day,
            band_mg=_number(details, "syringe_band_mg"),
        )
    if ordered_units is None:
        ordered_units = dose.syringes_per_day
    return DoseLimit(
        kind="fixed",
        ordered_mg_per_day=ordered_mg,
        limit_mg_per_day=limit_mg,
        ordered_mg_per_kg_per_day=None,
        limit_mg_per_kg_per_day=None,
        weight_kg=None,
        weight_ref=None,
        ordered_units_per_day=ordered_units,
        limit_units_per_day=_number(details, "limit_syringes_per_day"),
        dispense_units_per_day=dose.dispense_syringes_per_day,
    )


def excess(limit: DoseLimit) -> Excess | None:
    """What the order exceeds: the daily dose, the units a day of the dose, or only
    the units a day the dispense request supplies (None: nothing found over)."""
    if limit.kind == "weight":
        if (
            limit.ordered_mg_per_kg_per_day is not None
            and limit.limit_mg_per_kg_per_day is not None
        ):
            if limit.ordered_mg_per_kg_per_day > limit.limit_mg_per_kg_per_day + EPSILON:
                return "dose"
        elif (
            limit.ordered_mg_per_day is not None
            and limit.limit_mg_per_day is not None
            and limit.ordered_mg_per_day > limit.limit_mg_per_day + EPSILON
        ):
            return "dose"
    elif (
        limit.ordered_mg_per_day is not None
        and limit.limit_mg_per_day is not None
        and limit.ordered_mg_per_day > limit.limit_mg_per_day + EPSILON
    ):
        return "dose"
    if (
        limit.ordered_units_per_day is not None
        and limit.limit_units_per_day is not None
        and limit.ordered_units_per_day > limit.limit_units_per_day + EPSILON
    ):
        return "units"
    needed = (
        limit.ordered_units_per_day
        if limit.ordered_units_per_day is not None
        else limit.limit_units_per_day
    )
    if (
        limit.dispense_units_per_day is not None
        and needed is not None
        and limit.dispense_units_per_day > needed + EPSILON
    ):
        return "dispense"
    return None


def _mg(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "mg", "system": UCUM, "code": "mg"}


def _old_dose(line: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first doseQuantity of a dosage line, when it has one."""
    rates = line.get("doseAndRate")
    if isinstance(rates, list) and rates and isinstance(rates[0], Mapping):
        quantity = rates[0].get("doseQuantity")
        if isinstance(quantity, Mapping):
            return quantity
    return None


def dose_quantity(
    old: Mapping[str, Any] | None, mg: float, unit: ProductUnit
) -> tuple[dict[str, Any], str]:
    """The new dose as a Quantity in the order's own unit where it can be (so a client that
    shows or applies it sees the unit the prescriber chose), and the amount in words.

    - the product's own unit ("{syringe}", "syringe", "PFS"): kept when the new dose is a
      whole number of units ("1 syringe (100 mg)");
    - mL: kept, converted by the product's concentration ("0.67 mL (100 mg)");
    - anything else (mg, an unknown unit, none): mg ("100 mg").
    The original code, system and unit text are kept as they were sent."""
    quantity = _amount_like(old, mg, unit)
    raw = quantity.get("value")
    value = float(raw) if isinstance(raw, int | float) else mg
    if quantity.get("code") == "mg" and quantity.get("system") == UCUM:
        return quantity, f"{fmt(mg)} mg"
    if _keys(quantity) and any(unit.means_unit(k) for k in _keys(quantity)):
        return quantity, f"{unit.count(value)} ({fmt(mg)} mg)"
    return quantity, f"{fmt(value)} mL ({fmt(mg)} mg)"


def whole(value: float) -> int | float:
    return round(value) if abs(value - round(value)) < 1e-9 else value


def _frequency_words(per_day: float) -> str:
    words = {1.0: "once daily", 2.0: "twice daily", 3.0: "three times daily"}
    return words.get(per_day, f"{fmt(per_day)} times a day")


def _cap_dispense(resource: dict[str, Any], units_per_day: float, unit: ProductUnit) -> str | None:
    """Lower the dispense quantity to what `units_per_day` needs over the expected
    supply duration; plain words for the new quantity, or None when nothing changed."""
    dispense = resource.get("dispenseRequest")
    if not isinstance(dispense, dict):
        return None
    quantity = dispense.get("quantity")
    duration = dispense.get("expectedSupplyDuration")
    days = supply_days(duration) if isinstance(duration, Mapping) else None
    if not isinstance(quantity, dict) or days is None:
        return None
    value = quantity.get("value")
    per_unit = quantity_per_unit(quantity, unit)
    if isinstance(value, bool) or not isinstance(value, int | float) or per_unit is None:
        return None
    units = math.ceil(units_per_day * days - EPSILON)
    needed = whole(round(units * per_unit, 2))
    if value <= needed + EPSILON:
        return None
    quantity["value"] = needed
    words = unit.plural if per_unit == 1.0 else f"mL ({units} {unit.plural})"
    return f"{fmt(float(needed))} {words} for {fmt(days)} days"


def _units_per_administration(mg: float, band_mg: float | None, unit: ProductUnit) -> int:
    """Units for one administration: the policy's bands when the limit has them (a
    weight-based dose), else whole units of the product (at least one)."""
    if band_mg is not None:
        return banded_units(mg, band_mg)
    return max(1, unit.units_for(mg))


def suggest_dose(
    resource: Mapping[str, Any],
    limit: DoseLimit,
    administrations_per_day: float | None,
    unit: ProductUnit,
) -> DoseSuggestion | None:
    """A deep copy of the draft order with the dose set within the limit."""
    lines = resource.get("dosageInstruction")
    if not isinstance(lines, list) or not lines or not isinstance(lines[0], Mapping):
        return None
    suggested: dict[str, Any] = copy.deepcopy(dict(resource))
    if limit.kind == "fixed":
        if limit.limit_mg_per_day is None:
            return None
        per_dose = limit.limit_mg_per_day
        if limit.limit_units_per_day is not None:
            per_dose = min(per_dose, limit.limit_units_per_day * unit.deliverable_mg)
        if limit.ordered_mg_per_day is not None and limit.ordered_mg_per_day > 0:
            per_dose = min(per_dose, limit.ordered_mg_per_day)  # never more than ordered
        line = copy.deepcopy(dict(lines[0]))
        repeat = {}
        old_timing = line.get("timing")
        if isinstance(old_timing, Mapping) and isinstance(old_timing.get("repeat"), Mapping):
            for key in ("boundsDuration", "boundsPeriod", "boundsRange"):
                if key in old_timing["repeat"]:
                    repeat[key] = copy.deepcopy(old_timing["repeat"][key])
        repeat.update({"frequency": 1, "period": 1, "periodUnit": "d"})
        line["timing"] = {"repeat": repeat}
        quantity, amount = dose_quantity(_old_dose(line), per_dose, unit)
        line["doseAndRate"] = [{"doseQuantity": quantity}]
        line.pop("patientInstruction", None)
        label = f"{amount} once daily"
        line["text"] = label
        suggested["dosageInstruction"] = [line]
        units = float(_units_per_administration(per_dose, None, unit))
        _cap_dispense(suggested, units, unit)
        return DoseSuggestion(label, suggested, per_dose, units)
    if limit.limit_mg_per_day is None or not administrations_per_day:
        return None
    if (
        administrations_per_day <= 0
        or abs(administrations_per_day - round(administrations_per_day)) > 1e-9
    ):
        return None
    per_dose = float(math.floor(limit.limit_mg_per_day / administrations_per_day + 1e-9))
    if per_dose <= 0:
        return None
    new_lines = []
    amount = f"{fmt(per_dose)} mg"
    for index, old in enumerate(lines):
        if not isinstance(old, Mapping):
            return None
        line = copy.deepcopy(dict(old))
        quantity, words = dose_quantity(_old_dose(old), per_dose, unit)
        amount = words if index == 0 else amount
        line["doseAndRate"] = [{"doseQuantity": quantity}]
        line.pop("patientInstruction", None)
        line.pop("text", None)
        new_lines.append(line)
    if (
        limit.ordered_mg_per_day is not None
        and per_dose * administrations_per_day > limit.ordered_mg_per_day + EPSILON
    ):
        return None  # never suggest more than was ordered
    label = f"{amount} {_frequency_words(administrations_per_day)}"
    if len(new_lines) == 1:
        new_lines[0]["text"] = label
    suggested["dosageInstruction"] = new_lines
    units = (
        float(_units_per_administration(per_dose, limit.band_mg, unit)) * administrations_per_day
    )
    _cap_dispense(suggested, units, unit)
    return DoseSuggestion(label, suggested, per_dose * administrations_per_day, units)


def suggest_dispense(
    resource: Mapping[str, Any], units_per_day: float, unit: ProductUnit
) -> tuple[str, dict[str, Any]] | None:
    """A deep copy of the draft order with only the dispense quantity lowered to what
    the ordered dose needs: (plain words for the new quantity, the copy), or None."""
    suggested: dict[str, Any] = copy.deepcopy(dict(resource))
    words = _cap_dispense(suggested, units_per_day, unit)
    return None if words is None else (words, suggested)


def suggest_regimen(
    resource: Mapping[str, Any], mg_per_day: float, max_days: int, unit: ProductUnit
) -> DoseSuggestion | None:
    """A deep copy of the draft order set to an authorized regimen (e.g. an emergency use
    authorization's): one dosage line, `mg_per_day` once daily for `max_days` days (route and
    site kept, other bounds and counts replaced), the dispense request capped at `max_days`
    days and the units of that course."""
    lines = resource.get("dosageInstruction")
    if not isinstance(lines, list) or not lines or not isinstance(lines[0], Mapping):
        return None
    suggested: dict[str, Any] = copy.deepcopy(dict(resource))
    line = copy.deepcopy(dict(lines[0]))
    new_dose, amount = dose_quantity(_old_dose(line), mg_per_day, unit)
    label = f"{amount} once daily for {max_days} days"
    line["timing"] = {
        "repeat": {
            "boundsDuration": {"value": max_days, "unit": "days", "system": UCUM, "code": "d"},
            "frequency": 1,
            "period": 1,
            "periodUnit": "d",
        }
    }
    line["doseAndRate"] = [{"doseQuantity": new_dose}]
    line.pop("patientInstruction", None)
    line["text"] = label
    suggested["dosageInstruction"] = [line]
    units = float(_units_per_administration(mg_per_day, None, unit))
    dispense = suggested.get("dispenseRequest")
    if isinstance(dispense, dict):
        duration = dispense.get("expectedSupplyDuration")
        days = supply_days(duration) if isinstance(duration, Mapping) else None
        if days is not None and days > max_days and isinstance(duration, dict):
            dispense["expectedSupplyDuration"] = {
                "value": max_days,
                "unit": "days",
                "system": UCUM,
                "code": "d",
            }
        quantity = dispense.get("quantity")
        per_unit = quantity_per_unit(quantity, unit) if isinstance(quantity, dict) else None
        value = quantity.get("value") if isinstance(quantity, dict) else None
        if (
            isinstance(quantity, dict)
            and per_unit is not None
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            course = whole(round(math.ceil(units * max_days) * per_unit, 2))
            if value > course + EPSILON:
                quantity["value"] = course
    return DoseSuggestion(label, suggested, mg_per_day, units)


def product_unit(facts: PolicyFacts, policy_id: str) -> ProductUnit | None:
    """The unit of the ordered product: the one the dose arithmetic used, else the one in
    the deciding pack's drug.json."""
    if facts.order.dose.unit is not None:
        return facts.order.dose.unit
    from cds_service.policy.packs import default_registry  # the registry loads card texts

    pack = default_registry().packs.get(policy_id)
    return pack.drug.unit if pack is not None else None


# --------------------------------------------------------------------------- schedules
#
# A `dose-limit` checked per administration and schedule (details["schedule"]): loading
# dose, maintenance dose, interval between doses, units dispensed. The suggestion edits a
# copy of the order: the loading line (dropped when no new loading dose is allowed), the
# maintenance lines' amount (in the order's own unit where the new amount can be written in
# it: whole units of the product, or mL), the interval, the dispense quantity.


@dataclass(frozen=True)
class ScheduleSuggestion:
    label: str
    """Plain words for the new dose, e.g. "88 mg once weekly"; "" when only the quantity
    changed."""
    quantity_words: str
    """Plain words for the new dispense quantity ("4 vials for 28 days"), "" if unchanged."""
    resource: dict[str, Any]


def _keys(quantity: Mapping[str, Any]) -> list[str]:
    return [
        str(v).strip().lower()
        for v in (quantity.get("code"), quantity.get("unit"))
        if isinstance(v, str) and v.strip()
    ]


def _amount_like(old: Any, mg: float, unit: ProductUnit) -> dict[str, Any]:
    """`mg` written in the unit of the old dose quantity where it can be, else in mg."""
    if isinstance(old, Mapping):
        keys = _keys(old)
        if any(unit.means_unit(k) for k in keys):
            count = mg / unit.deliverable_mg
            if abs(count - round(count)) < 1e-9 and round(count) > 0:
                return {**copy.deepcopy(dict(old)), "value": round(count)}
        if any(k in {"ml", "milliliter", "milliliters"} for k in keys):
            return {**copy.deepcopy(dict(old)), "value": whole(round(mg / unit.mg_per_ml, 2))}
    return _mg(whole(mg))


def _set_amount(line: dict[str, Any], mg: float, unit: ProductUnit) -> None:
    old = None
    for entry in line.get("doseAndRate") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("doseQuantity"), Mapping):
            old = entry["doseQuantity"]
            break
    line["doseAndRate"] = [{"doseQuantity": _amount_like(old, mg, unit)}]
    line.pop("patientInstruction", None)
    line.pop("text", None)


def _set_interval(line: dict[str, Any], days: float) -> None:
    timing = line.get("timing") if isinstance(line.get("timing"), Mapping) else {}
    repeat = dict(timing.get("repeat") or {}) if isinstance(timing, Mapping) else {}
    for key in ("frequency", "frequencyMax", "period", "periodMax", "periodUnit", "timeOfDay"):
        repeat.pop(key, None)
    weeks = days / 7
    if abs(weeks - round(weeks)) < 1e-9:
        repeat.update({"frequency": 1, "period": round(weeks), "periodUnit": "wk"})
    else:
        repeat.update({"frequency": 1, "period": whole(days), "periodUnit": "d"})
    line["timing"] = {"repeat": repeat}
    line.pop("patientInstruction", None)
    line.pop("text", None)


def _set_quantity(resource: dict[str, Any], units: float, unit: ProductUnit) -> str | None:
    dispense = resource.get("dispenseRequest")
    if not isinstance(dispense, dict) or not isinstance(dispense.get("quantity"), dict):
        return None
    quantity = dispense["quantity"]
    per_unit = quantity_per_unit(quantity, unit)
    duration = dispense.get("expectedSupplyDuration")
    days = supply_days(duration) if isinstance(duration, Mapping) else None
    if per_unit is None or days is None:
        return None
    quantity["value"] = whole(round(units * per_unit, 2))
    words = unit.count(units) if per_unit == 1.0 else f"{fmt(units * per_unit)} mL"
    return f"{words} for {fmt(days)} days"


def suggest_schedule(
    resource: Mapping[str, Any], details: Mapping[str, Any], unit: ProductUnit
) -> ScheduleSuggestion | None:
    """A deep copy of the draft order within a schedule limit (see the section comment);
    None when nothing can be changed without a guess."""
    lines = resource.get("dosageInstruction")
    if not isinstance(lines, list) or not lines or not all(isinstance(x, Mapping) for x in lines):
        return None
    suggested: dict[str, Any] = copy.deepcopy(dict(resource))
    new_lines = [copy.deepcopy(dict(x)) for x in lines]
    excess = set(details.get("excess") or ())
    has_loading = _number(details, "ordered_loading_mg") is not None
    loading_line = new_lines[0] if has_loading else None
    maintenance_lines = new_lines[1:] if has_loading else new_lines
    changed = False
    words: list[str] = []

    ordered_loading = _number(details, "ordered_loading_mg")
    new_loading = ordered_loading
    if loading_line is not None and details.get("loading_not_allowed"):
        new_lines = maintenance_lines
        loading_line, new_loading, changed = None, None, True
    elif loading_line is not None and ordered_loading is not None:
        limit = _number(details, "limit_loading_mg")
        target = _number(details, "suggested_loading_mg")
        if limit is not None and target is not None and ordered_loading > limit + EPSILON:
            _set_amount(loading_line, target, unit)
            new_loading, changed = target, True
    if new_loading is not None:
        words.append(f"a loading dose of {fmt(new_loading)} mg")

    ordered_maint = _number(details, "ordered_maintenance_mg")
    new_maint = ordered_maint
    limit = _number(details, "limit_maintenance_mg")
    target = _number(details, "suggested_maintenance_mg")
    if (
        ordered_maint is not None
        and limit is not None
        and target is not None
        and ordered_maint > limit + EPSILON
    ):
        for line in maintenance_lines:
            _set_amount(line, target, unit)
        new_maint, changed = target, True
    interval = _number(details, "ordered_interval_days")
    limit_interval = _number(details, "limit_interval_days")
    if "interval" in excess and limit_interval is not None:
        for line in maintenance_lines:
            _set_interval(line, limit_interval)
        interval, changed = limit_interval, True
    if "dose" in excess and not changed:
        return None  # over in a way the arithmetic cannot fix (no band for the age)
    if new_maint is not None:
        words.append(f"{fmt(new_maint)} mg" + (f" {interval_words(interval)}" if interval else ""))
    label = ", then ".join(words) if changed else ""
    if changed and len(maintenance_lines) == 1 and loading_line is None:
        maintenance_lines[0]["text"] = label
    suggested["dosageInstruction"] = new_lines
    quantity_words = ""
    units = _number(details, "suggested_dispense_units")
    if units is not None and "quantity" in excess:
        quantity_words = _set_quantity(suggested, units, unit) or ""
    if not changed and not quantity_words:
        return None
    return ScheduleSuggestion(label, quantity_words, suggested)
