"""Dose arithmetic of an order's sig, for any product and any schedule.

The product's unit (a prefilled syringe, a vial: `ProductUnit`, from the policy pack's
drug.json) is passed in by the caller; nothing here names a drug.

Rules (INTERPRETATION.md "Dose arithmetic"):
- dose per administration from `doseAndRate[].doseQuantity` (an entry typed "ordered" is
  preferred) or `doseRange.high`; mg, g, mcg directly; mL through the product's content per
  mL (content_mg / content_ml); a count of the product's units (its name, plural, UCUM code
  or aliases, and "each"/"{each}"/"{pill}", one unit of the chosen product) through its
  deliverable mg per unit; mg/kg times the body weight;
- administrations per day from `timing.repeat` (frequency, default 1 — or frequencyMax when
  given, "1 to 2 times a day" is checked at 2, as a dose range is at its high end — over
  period x periodUnit, the shorter period of a range; h, d, wk, mo = 30 d, a = 365 d), from
  `repeat.timeOfDay` / `repeat.when` counts (two times of day on a daily repeat are two
  doses a day), or from `timing.code` (v3-GTSAbbreviation); a code and a repeat, or a
  frequency and its times of day, that disagree make the frequency unknown;
- several dosage lines add up; lines with different `sequence` numbers are consecutive
  phases, so the phase with the highest daily dose counts;
- the schedule: a loading dose is the first of several lines given once (`repeat.count` 1);
  the other lines are maintenance, given every 1 / (administrations a day) days (weekly: 7);
- "as needed" without a frequency, no timing, an unknown unit or mg/kg without a weight give
  None with a plain reason in `unknown_reasons` — never a guess;
- units: each administration takes ceil(dose / deliverable mg) of the product's units; a
  policy that counts units in bands of a weight-based dose uses `banded_units_per_day`;
- dispense: quantity (units of the product, or mL / content_ml) over expectedSupplyDuration
  (d, wk, mo = 30 d); a reason is recorded only when the order states one of the two but it
  cannot be used;
- duration: boundsDuration, boundsPeriod (inclusive days) or count / administrations a day;
- a text-only sig fills what doseAndRate / timing leave out, where it is unambiguous (see
  "text sig" below); `DoseFacts.from_text` says when it did.

Supply arithmetic for any drug (`supply_amount`, `strength_of`, `days_from_quantity`): how
many days a quantity lasts at the dose of the sig, when the quantity and the dose are in the
same unit (tablets, capsules, syringes or pens, mL, mg), or in mg against tablets / capsules
/ mL through the product's strength. The strength is read only where it cannot be
mistaken: a Medication with one ingredient whose strength is mg per one tablet, capsule or
mL, or a product name with exactly one strength ("methotrexate 2.5 MG Oral Tablet",
"methotrexate 25 MG/ML Injectable Solution"); combination products, several strengths, as
needed sigs, consecutive phases and unknown units give no estimate. A dose range or a
"1 to 2 times a day" frequency is counted at its top, so the estimate is the shortest the
supply can last (and is flagged as such).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from fhir_mappings.facts import DoseFacts, DoseLine, WeightFact
from fhir_mappings.fields import Json, as_list, codings, get_map, get_num, get_str, maps, parse_date
from fhir_mappings.product_unit import ProductUnit as ProductUnit
from fhir_mappings.product_unit import ProductUnitError as ProductUnitError

_ROUND: Final = 6  # decimals kept before ceil/floor so 0.67 mL is exactly one syringe

_MASS_MG: Final[Mapping[str, float]] = {
    "mg": 1.0,
    "milligram": 1.0,
    "milligrams": 1.0,
    "g": 1000.0,
    "gram": 1000.0,
    "grams": 1000.0,
    "mcg": 0.001,
    "ug": 0.001,
    "µg": 0.001,
    "microgram": 0.001,
    "micrograms": 0.001,
}
_VOLUME_ML: Final[Mapping[str, float]] = {"ml": 1.0, "milliliter": 1.0, "milliliters": 1.0}
_SYRINGE_WORDS: Final = frozenset(
    {
        "{syringe}",
        "syringe",
        "syringes",
        "pfs",
        "prefilled syringe",
        "prefilled syringes",
        "pre-filled syringe",
        "{prefilled syringe}",
    }
)
"""Device words for the supply arithmetic of any drug (a count of syringes or pens)."""
_MG_PER_KG: Final = frozenset({"mg/kg", "mg/kg{dose}", "milligram per kilogram"})

_PERIOD_DAYS: Final[Mapping[str, float]] = {
    "h": 1 / 24,
    "d": 1.0,
    "wk": 7.0,
    "mo": 30.0,
    "a": 365.0,
}
_DURATION_DAYS: Final[Mapping[str, float]] = {
    "h": 1 / 24,
    "hour": 1 / 24,
    "hours": 1 / 24,
    "d": 1.0,
    "day": 1.0,
    "days": 1.0,
    "wk": 7.0,
    "week": 7.0,
    "weeks": 7.0,
    "mo": 30.0,
    "month": 30.0,
    "months": 30.0,
}

# v3-GTSAbbreviation (and common EHR spellings) -> administrations per day.
TIMING_CODES: Final[Mapping[str, float]] = {
    "QD": 1.0,
    "DAILY": 1.0,
    "QAM": 1.0,
    "QPM": 1.0,
    "AM": 1.0,
    "PM": 1.0,
    "QHS": 1.0,
    "HS": 1.0,
    "BID": 2.0,
    "TID": 3.0,
    "QID": 4.0,
    "Q4H": 6.0,
    "Q6H": 4.0,
    "Q8H": 3.0,
    "Q12H": 2.0,
    "Q24H": 1.0,
    "QOD": 0.5,
    "Q48H": 0.5,
    "QW": 1 / 7,
    "WK": 1 / 7,
    "QWK": 1 / 7,
    "BIW": 2 / 7,
    "TIW": 3 / 7,
    "Q2W": 1 / 14,
    "MO": 1 / 30,
}


@dataclass(frozen=True)
class _Line:
    mg: float | None
    per_day: float | None
    units_per_admin: int | None
    duration_days: int | None
    sequence: int | None
    count: int | None
    from_text: bool = False
    dose_reason: str = ""
    timing_reason: str = ""


def unit_key(quantity: Json) -> str:
    """Lower-case unit of a Quantity: its UCUM code when coded, else its unit text."""
    return (unit_keys(quantity) or ("",))[0]


def unit_keys(quantity: Json) -> tuple[str, ...]:
    """Lower-case code, then unit text, of a Quantity (both tried, code first)."""
    keys = [get_str(quantity, "code"), get_str(quantity, "unit")]
    return tuple(dict.fromkeys(k.strip().lower() for k in keys if k))


def dose_to_mg(
    value: float, unit: str, weight: WeightFact | None, product: ProductUnit | None = None
) -> tuple[float | None, str]:
    """mg for one dose, or (None, reason). A volume or a count of the product's units
    ("1 syringe", "2 vials") needs the product's unit (its content per mL and per unit)."""
    if unit in _MASS_MG:
        return value * _MASS_MG[unit], ""
    if unit in _VOLUME_ML:
        if product is None:
            return None, "dose is in mL and the product's concentration is not known"
        return value * _VOLUME_ML[unit] * product.mg_per_ml, ""
    if product is not None and product.means_unit(unit):
        return value * product.deliverable_mg, ""
    if unit in _MG_PER_KG:
        if weight is None:
            return None, "dose is in mg/kg and no body weight within 90 days of the order"
        return value * weight.kg, ""
    if not unit:
        return None, "dose has no unit"
    return None, "dose unit is not one the service can convert to mg"


def _dose_quantity(dosage: Json) -> tuple[Json | None, str]:
    entries = list(maps(dosage.get("doseAndRate")))
    ordered = [
        e for e in entries if any(code == "ordered" for _, code, _ in codings(get_map(e, "type")))
    ]
    for entry in ordered + entries:
        quantity = get_map(entry, "doseQuantity")
        if quantity is not None:
            return quantity, ""
        high = get_map(get_map(entry, "doseRange"), "high")
        if high is not None:
            return high, ""
    return None, "no dose quantity in the dosage instruction"


def _code_per_day(timing: Json) -> float | None:
    """Administrations a day that `timing.code` names (a code, else its text), or None."""
    concept = get_map(timing, "code")
    for _, code, _ in codings(concept):
        if code and code.upper() in TIMING_CODES:
            return TIMING_CODES[code.upper()]
    text = get_str(concept, "text")
    if text and text.strip().upper() in TIMING_CODES:
        return TIMING_CODES[text.strip().upper()]
    return None


def administrations_per_day(timing: Json | None, as_needed: bool) -> tuple[float | None, str]:
    """Administrations a day from a Timing, or (None, reason).

    The structured repeat and `timing.code` state the same schedule twice; when both can be
    read and they disagree ("BID" with a repeat of once a day), the sig is ambiguous and the
    answer is unknown, never the smaller of the two."""
    if timing is None:
        if as_needed:
            return None, "dose is as needed without a frequency"
        return None, "no timing (frequency) in the dosage instruction"
    per_day, why = _repeat_per_day(timing)
    coded = _code_per_day(timing)
    if per_day is not None and coded is not None and abs(per_day - coded) > 1e-6:
        return None, "timing code and repeat state different frequencies"
    if per_day is not None or why:
        return per_day, why
    if coded is not None:
        return coded, ""
    if as_needed:
        return None, "dose is as needed without a frequency"
    if get_map(timing, "code") is not None:
        return None, "timing code is not one the service knows"
    return None, "no timing (frequency) in the dosage instruction"


def _repeat_per_day(timing: Json) -> tuple[float | None, str]:
    """Administrations a day from `timing.repeat`: (None, "") when it states no frequency.

    Times of day (`timeOfDay`, `when`: "MORN", "EVE") name the administrations of each day:
    two of them on a daily repeat are two doses a day. A stated frequency that disagrees with
    them (once a day at 08:00 and 20:00) is ambiguous: unknown."""
    repeat = get_map(timing, "repeat")
    if repeat is not None:
        times = len(as_list(repeat.get("timeOfDay"))) or len(as_list(repeat.get("when")))
        frequency = get_num(repeat, "frequency")
        frequency_max = get_num(repeat, "frequencyMax")
        if frequency_max is not None and (frequency is None or frequency_max > frequency):
            # The most the sig allows decides a dose limit (as doseRange.high does).
            frequency = frequency_max
        period = get_num(repeat, "period")
        unit = get_str(repeat, "periodUnit")
        if period is not None or frequency is not None:
            if period is None or unit is None:
                return None, "timing has a frequency without a period"
            if unit not in _PERIOD_DAYS:
                return None, "timing period unit is shorter than an hour or unknown"
            if period <= 0 or (frequency is not None and frequency <= 0):
                return None, "timing frequency or period is not positive"
            days = period * _PERIOD_DAYS[unit]
            if times > 1 and abs(days - 1.0) < 1e-9:
                if frequency is None:
                    return float(times), ""
                if frequency != times:
                    return None, "timing frequency and its times of day disagree"
            return (frequency if frequency is not None else 1.0) / days, ""
        if times:
            weekdays = len(as_list(repeat.get("dayOfWeek")))
            return times * (weekdays / 7 if weekdays else 1.0), ""
    return None, ""


def duration_days(timing: Json | None, per_day: float | None) -> int | None:
    """Intended treatment length in days from timing bounds or count."""
    repeat = get_map(timing, "repeat")
    if repeat is None:
        return None
    bounds = get_map(repeat, "boundsDuration")
    if bounds is not None:
        value = get_num(bounds, "value")
        factor = _DURATION_DAYS.get(unit_key(bounds))
        if value is not None and factor is not None and value > 0:
            return math.ceil(round(value * factor, _ROUND))
    period = get_map(repeat, "boundsPeriod")
    if period is not None:
        start = parse_date(period.get("start"))
        end = parse_date(period.get("end"), end=True)
        if start and end and end >= start:
            return (end - start).days + 1
    count = get_num(repeat, "count")
    if count is not None and per_day:
        return math.ceil(round(count / per_day, _ROUND))
    return None


def banded_units(mg: float, band_mg: float) -> int:
    """Units for one dose counted in bands (a policy's table, e.g. a new syringe every
    `band_mg` of a weight-based dose): floor(dose / band_mg) + 1."""
    return math.floor(round(mg / band_mg, _ROUND)) + 1


def banded_units_per_day(dose: DoseFacts, band_mg: float) -> float | None:
    """Units a day when each administration takes `banded_units`: the dosage lines of a
    phase add up, and the phase with the most counts (as for the daily dose). None when a
    line's dose or frequency is not known, or when the facts carry no lines."""
    if not dose.lines:
        return None
    phases: dict[int | None, list[DoseLine]] = {}
    for line in dose.lines:
        phases.setdefault(line.sequence, []).append(line)
    totals = [
        _sum(
            [
                banded_units(ln.mg, band_mg) * ln.per_day if ln.mg and ln.per_day else None
                for ln in phase
            ]
        )
        for phase in phases.values()
    ]
    if any(t is None for t in totals):
        return None
    return max(t for t in totals if t is not None)


def _count(timing: Json | None) -> int | None:
    value = get_num(get_map(timing, "repeat"), "count")
    return int(value) if value is not None and value == int(value) else None


def _line(
    dosage: Json, weight: WeightFact | None, n: int, product: ProductUnit | None
) -> tuple[_Line, list[str]]:
    reasons: list[str] = []
    label = f"dosage line {n + 1}: "
    quantity, dose_why = _dose_quantity(dosage)
    as_needed = dosage.get("asNeededBoolean") is True or isinstance(
        dosage.get("asNeededCodeableConcept"), Mapping
    )
    timing = get_map(dosage, "timing")
    per_day, timing_why = administrations_per_day(timing, as_needed)
    text = get_str(dosage, "text") or get_str(dosage, "patientInstruction")
    sig = (
        read_sig_text(text, weight, product)
        if text and (quantity is None or timing is None) and not as_needed
        else None
    )
    from_text = False
    mg: float | None = None
    if quantity is None:
        if sig is not None and sig.amount is not None and sig.unit is not None:
            mg, why = dose_to_mg(sig.amount, sig.unit, weight, product)
            from_text = mg is not None
            if mg is None:
                reasons.append(label + why + " (dose read from the text sig)")
        else:
            extra = f"; {sig.dose_reason}" if sig is not None and sig.dose_reason else ""
            reasons.append(label + dose_why + extra)
    else:
        value = get_num(quantity, "value")
        if value is None or value <= 0:
            reasons.append(label + "dose value is missing or not positive")
        else:
            why = "dose has no unit"
            for key in unit_keys(quantity):
                mg, why = dose_to_mg(value, key, weight, product)
                if mg is not None:
                    break
            if mg is None:
                reasons.append(label + why)
    dose_reason = "; ".join(r[len(label) :] for r in reasons)
    timing_reason = ""
    if per_day is None:
        extra = ""
        if timing is None and sig is not None:
            if sig.per_day is None:
                extra = f"; {sig.frequency_reason}"
            elif quantity is not None and not _text_agrees(sig, mg, weight, product):
                extra = "; the text sig's dose differs from the coded dose"
            else:
                per_day, from_text = sig.per_day, True
        if per_day is None:
            timing_reason = timing_why + extra
            reasons.append(label + timing_reason)
    sequence = dosage.get("sequence")
    return (
        _Line(
            mg=mg,
            per_day=per_day,
            units_per_admin=product.units_for(mg) if mg is not None and product else None,
            duration_days=duration_days(timing, per_day),
            sequence=sequence if isinstance(sequence, int) else None,
            count=_count(timing),
            from_text=from_text,
            dose_reason=dose_reason,
            timing_reason=timing_reason,
        ),
        reasons,
    )


def _text_agrees(
    sig: SigText, coded_mg: float | None, weight: WeightFact | None, product: ProductUnit | None
) -> bool:
    """The text's amount (if it states one) is the coded dose: only then may the text add
    the frequency the coded fields leave out."""
    if sig.amount is None or sig.unit is None:
        return True
    text_mg = dose_to_mg(sig.amount, sig.unit, weight, product)[0]
    return text_mg is not None and coded_mg is not None and abs(text_mg - coded_mg) < 0.01


@dataclass(frozen=True)
class _Dispense:
    units: float | None = None
    days: float | None = None
    reasons: tuple[str, ...] = ()

    @property
    def per_day(self) -> float | None:
        return self.units / self.days if self.units is not None and self.days else None


def _dispense(request: Json | None, product: ProductUnit | None) -> _Dispense:
    if request is None:
        return _Dispense()
    quantity = get_map(request, "quantity")
    supply = get_map(request, "expectedSupplyDuration")
    if quantity is None and supply is None:
        return _Dispense()
    if quantity is None or supply is None:
        return _Dispense(reasons=("dispense quantity or expected supply duration is missing",))
    amount = get_num(quantity, "value")
    per_unit = quantity_per_unit(quantity, product)
    if amount is None or amount <= 0 or per_unit is None:
        plural = product.plural if product is not None else "units of the product"
        return _Dispense(reasons=(f"dispense quantity unit is not {plural} or mL",))
    units = round(amount / per_unit, 2)
    days = supply_days(supply)
    if days is None:
        return _Dispense(
            units=units,
            reasons=("expected supply duration is not in days, weeks or months",),
        )
    return _Dispense(units=units, days=days)


def _sum(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return float(sum(v for v in values if v is not None))


@dataclass(frozen=True)
class _Schedule:
    loading_mg: float | None = None
    maintenance_mg: float | None = None
    interval_days: float | None = None
    reasons: tuple[str, ...] = ()


def _schedule(lines: Sequence[_Line]) -> _Schedule:
    """A single loading dose (the first of several lines, given once: repeat.count 1, or the
    only line given once), then maintenance: the highest amount of the other lines, given
    every 1 / (administrations a day) days (consecutive phases: the most frequent)."""
    if not lines:
        return _Schedule(reasons=("no dosage instruction",))
    reasons: list[str] = []
    loading: _Line | None = None
    maintenance = list(lines)
    if lines[0].count == 1 and (len(lines) > 1 or lines[0].per_day is None):
        loading, maintenance = lines[0], list(lines[1:])
        if loading.mg is None:
            reasons.append(f"loading dose: {loading.dose_reason}")
    for n, line in enumerate(maintenance, start=2 if loading is not None else 1):
        if line.mg is None:
            reasons.append(f"dosage line {n}: {line.dose_reason}")
        if line.per_day is None:
            reasons.append(f"dosage line {n}: {line.timing_reason}")
    amounts = [ln.mg for ln in maintenance]
    phases: dict[int | None, list[float | None]] = {}
    for line in maintenance:
        phases.setdefault(line.sequence, []).append(line.per_day)
    per_day = [_sum(p) for p in phases.values()]
    interval = None
    if per_day and all(p is not None and p > 0 for p in per_day):
        interval = round(1 / max(p for p in per_day if p is not None), _ROUND)
    return _Schedule(
        loading_mg=round(loading.mg, _ROUND) if loading and loading.mg is not None else None,
        maintenance_mg=(
            round(max(a for a in amounts if a is not None), _ROUND)
            if amounts and all(a is not None for a in amounts)
            else None
        ),
        interval_days=interval,
        reasons=tuple(reasons),
    )


def compute_dose(
    dosages: Sequence[Json],
    weight: WeightFact | None,
    dispense_request: Json | None = None,
    product: ProductUnit | None = None,
) -> DoseFacts:
    """Dose facts for one order or statement (its dosage lines and dispense request).
    `product`: the unit of the ordered product (drug.json `unit`), needed to read doses in
    mL or in units of the product and to count units; without it those stay unknown."""
    reasons: list[str] = []
    lines: list[_Line] = []
    for n, dosage in enumerate(dosages):
        line, why = _line(dosage, weight, n, product)
        lines.append(line)
        reasons.extend(why)
    if not lines:
        reasons.append("no dosage instruction")
    phases: dict[int | None, list[_Line]] = {}
    for line in lines:
        phases.setdefault(line.sequence, []).append(line)
    phase_values: list[tuple[float | None, float | None, float | None]] = []
    for phase in phases.values():
        mg_day = _sum([(ln.mg * ln.per_day) if ln.mg and ln.per_day else None for ln in phase])
        per_day = _sum([ln.per_day for ln in phase])
        units = _sum(
            [
                ln.units_per_admin * ln.per_day if ln.units_per_admin and ln.per_day else None
                for ln in phase
            ]
        )
        phase_values.append((mg_day, per_day, units))

    def highest(i: int) -> float | None:
        values = [p[i] for p in phase_values]
        if not values or any(v is None for v in values):
            return None
        return max(v for v in values if v is not None)

    mg_per_day = highest(0)
    dispense = _dispense(dispense_request, product)
    reasons.extend(dispense.reasons)
    schedule = _schedule(lines)
    durations = [ln.duration_days for ln in lines if ln.duration_days is not None]
    return DoseFacts(
        mg_per_day=round(mg_per_day, _ROUND) if mg_per_day is not None else None,
        administrations_per_day=highest(1),
        mg_per_administration=tuple(round(ln.mg, _ROUND) for ln in lines if ln.mg is not None),
        syringes_per_day=highest(2),
        weight_based_syringes_per_day=None,
        mg_per_kg_per_day=(
            round(mg_per_day / weight.kg, _ROUND)
            if mg_per_day is not None and weight is not None and weight.kg > 0
            else None
        ),
        weight=weight,
        dispense_syringes_per_day=dispense.per_day,
        duration_days=max(durations) if durations else None,
        unknown_reasons=tuple(reasons),
        from_text=any(ln.from_text for ln in lines),
        lines=tuple(
            DoseLine(
                mg=round(ln.mg, _ROUND) if ln.mg is not None else None,
                per_day=ln.per_day,
                sequence=ln.sequence,
                count=ln.count,
            )
            for ln in lines
        ),
        unit=product,
        loading_mg=schedule.loading_mg,
        maintenance_mg=schedule.maintenance_mg,
        interval_days=schedule.interval_days,
        schedule_reasons=schedule.reasons,
        dispense_units=dispense.units if dispense.days is not None else None,
        dispense_days=dispense.days if dispense.units is not None else None,
    )


def supply_days(value: Json | None) -> float | None:
    """Days in a Duration / Quantity (h, d, wk, mo = 30 d; code, then unit text), or None."""
    if value is None:
        return None
    amount = get_num(value, "value")
    factor = next((_DURATION_DAYS[u] for u in unit_keys(value) if u in _DURATION_DAYS), None)
    if amount is None or factor is None or amount <= 0:
        return None
    return amount * factor


def days_supplied(value: Json | None) -> float | None:
    """MedicationDispense.daysSupply in days: as `supply_days`, and a bare number with no
    unit and no code is days too (the element's name says so, as the pharmacy's days
    supply field does; Cerner and claims-fed dispenses send `{"value": 30}`)."""
    days = supply_days(value)
    if days is not None or value is None:
        return days
    amount = get_num(value, "value")
    if amount is None or amount <= 0 or value.get("unit") or value.get("code"):
        return None
    return amount


def quantity_per_unit(quantity: Json, product: ProductUnit | None) -> float | None:
    """How much of a dispense quantity's unit one unit of the product is: 1 for the
    product's own unit (syringes, vials), its content in mL for mL; None otherwise."""
    if product is None:
        return None
    for unit in unit_keys(quantity):
        if product.means_unit(unit):
            return 1.0
        if unit in _VOLUME_ML:
            return product.content_ml / _VOLUME_ML[unit]
    return None


# --------------------------------------------------------------------------- text sig
#
# A sig sent only as text (dosageInstruction.text, else patientInstruction), with no
# doseAndRate / timing, is read where it can mean one thing only: one amount in a unit the
# arithmetic above knows (the same amount said twice, "1 syringe (100 mg)", counts once) and
# one clear frequency. Anything else is left unknown with the reason: no amount, two
# different amounts, a range ("100-200 mg"), a taper or titration, "as directed", "as
# needed", a maximum, two frequencies, or frequency words left over that the reader does not
# know ("x2"): a frequency read too low would hide a dose over the limit. Structured fields
# always win: the text fills only what they leave out, and nothing when its amount differs
# from the coded dose.

_NUMBER_WORDS: Final[Mapping[str, float]] = {"one": 1.0, "two": 2.0, "three": 3.0, "four": 4.0}
_NUM: Final = r"(\d+(?:\.\d+)?|\.\d+|one|two|three|four)"
_SIG_UNIT: Final = (
    r"(mg/kg|mg|milligrams?|mcg|micrograms?|g|grams?|ml|mls|milliliters?|millilitres?|"
    r"(?:pre-?filled\s+)?syringes?|pfs|vials?)"
)
_AMOUNT: Final = re.compile(rf"(?<![\w.]){_NUM}\s*{_SIG_UNIT}(?![\w/])", re.IGNORECASE)
_RANGE: Final = re.compile(
    rf"(?<![\w.]){_NUM}\s*(?:{_SIG_UNIT}\s*)?(?:-|–|to|or)\s*{_NUM}\s*{_SIG_UNIT}(?![\w/])",
    re.IGNORECASE,
)
_REFUSE: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (
        re.compile(r"\bas\s+directed\b|\bper\s+(?:md|doctor|instructions?)\b", re.I),
        "says 'as directed'",
    ),
    (
        re.compile(r"\btaper|\btitrat|\bincrease|\bdecrease|\bthen\b|\bsliding\b", re.I),
        "describes a changing dose (taper, titration or steps)",
    ),
    (re.compile(r"\bas\s+needed\b|\bprn\b|\bif\s+needed\b", re.I), "is as needed"),
    (re.compile(r"\bup\s+to\b|\bmax(?:imum)?\b", re.I), "gives a maximum, not the dose"),
)
_TIMES: Final[Mapping[str, float]] = {
    "once": 1.0,
    "one": 1.0,
    "1": 1.0,
    "twice": 2.0,
    "two": 2.0,
    "2": 2.0,
    "three": 3.0,
    "3": 3.0,
    "four": 4.0,
    "4": 4.0,
}
_N_TIMES: Final = r"(once|twice|one|two|three|four|1|2|3|4)\s*(?:x\s*|times?\s+)?"


def _times_a_day(match: re.Match[str]) -> float:
    return _TIMES[match.group(1).lower()]


def _times_a_week(match: re.Match[str]) -> float:
    return _TIMES[match.group(1).lower()] / 7


def _every_hours(match: re.Match[str]) -> float:
    hours = float(match.group(1) or match.group(2))
    return 24 / hours if hours > 0 else 0.0


def _every_days(match: re.Match[str]) -> float:
    days = float(match.group(1))
    return 1 / days if days > 0 else 0.0


def _every_weeks(match: re.Match[str]) -> float:
    weeks = float(match.group(1))
    return 1 / (7 * weeks) if weeks > 0 else 0.0


def _fixed(per_day: float) -> Callable[[re.Match[str]], float]:
    return lambda _: per_day


_FREQUENCIES: Final[tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], float]], ...]] = (
    # Most specific first; a later pattern never re-reads text an earlier one claimed.
    (re.compile(r"\bevery\s+other\s+day\b|\bon\s+alternate\s+days\b|\bqod\b", re.I), _fixed(0.5)),
    (re.compile(rf"\b{_N_TIMES}(?:a|per|each|every)\s+day\b", re.I), _times_a_day),
    (re.compile(rf"\b{_N_TIMES}daily\b", re.I), _times_a_day),
    (re.compile(rf"\b{_N_TIMES}(?:a|per|each|every)\s+week\b", re.I), _times_a_week),
    (re.compile(rf"\b{_N_TIMES}weekly\b", re.I), _times_a_week),
    (
        re.compile(r"\bevery\s+(\d+)\s*(?:hours?|hrs?|h)\b|\bq\s*(\d+)\s*h(?:rs?|ours?)?\b", re.I),
        _every_hours,
    ),
    (re.compile(r"\bevery\s+(\d+)\s*days?\b", re.I), _every_days),
    (re.compile(r"\bevery\s+(\d+)\s*weeks?\b", re.I), _every_weeks),
    (
        re.compile(
            r"\b(?:daily|every\s+day|each\s+day|a\s+day|per\s+day|qd|q\s*day|qam|qpm|qhs|"
            r"nightly|at\s+bedtime|every\s+(?:morning|evening|night))\b|/\s*day\b",
            re.I,
        ),
        _fixed(1.0),
    ),
    (re.compile(r"\bbid\b", re.I), _fixed(2.0)),
    (re.compile(r"\btid\b", re.I), _fixed(3.0)),
    (re.compile(r"\bqid\b", re.I), _fixed(4.0)),
    (re.compile(r"\b(?:weekly|every\s+week|qwk?)\b", re.I), _fixed(1 / 7)),
)
_LEFT_OVER: Final = re.compile(
    r"\b(?:times?|every|once|twice|thrice|hourly|daily|weekly|monthly|bid|tid|qid|qod|"
    r"q\s*\d+\s*\w*|\d+\s*x|x\s*\d+(?!\s*(?:days?|d|weeks?|wks?|months?|doses?)\b))\b",
    re.I,
)
"""Frequency words still in the text after the known phrases were read."""


@dataclass(frozen=True)
class SigText:
    """What a text sig says, read where unambiguous: one amount and one frequency."""

    amount: float | None
    unit: str | None
    """Lower-case unit as the dose arithmetic knows it ("mg", "ml", "mg/kg", or a unit of
    the product as written: "syringe", "vials")."""
    per_day: float | None
    dose_reason: str = ""
    """Why no amount was read ("" when one was)."""
    frequency_reason: str = ""
    """Why no frequency was read ("" when one was)."""


def _sig_unit(word: str) -> str:
    w = re.sub(r"\s+", " ", word.lower())
    if w in {"mg/kg", "mcg"}:
        return w
    if w in {"mg", "milligram", "milligrams"}:
        return "mg"
    if w in {"microgram", "micrograms"}:
        return "mcg"
    if w in {"g", "gram", "grams"}:
        return "g"
    if w.startswith("ml") or w.startswith("milli"):
        return "ml"
    return w  # a unit of the product ("syringe", "pfs", "vials"): the product tells its mg


def _number(text: str) -> float:
    word = _NUMBER_WORDS.get(text.lower())
    return word if word is not None else float(text)


def _frequency(text: str) -> tuple[float | None, str]:
    claimed: list[tuple[int, int]] = []
    found: list[float] = []
    for pattern, meaning in _FREQUENCIES:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < c_end and c_start < end for c_start, c_end in claimed):
                continue
            claimed.append((start, end))
            found.append(meaning(match))
    rest = text
    for start, end in sorted(claimed, reverse=True):
        rest = rest[:start] + " " + rest[end:]
    if _LEFT_OVER.search(rest):
        return None, "has frequency words the service cannot read"
    if any(f <= 0 for f in found):
        return None, "gives an interval of zero"
    if len({round(f, 6) for f in found}) > 1:
        return None, "gives more than one frequency"
    if not found:
        return None, "states no frequency the service can read"
    return found[0], ""


def read_sig_text(
    text: str, weight: WeightFact | None = None, product: ProductUnit | None = None
) -> SigText:
    """Read a free-text sig (see the section comment): amount, unit and administrations a
    day, each None with the reason when the text does not say it unambiguously."""
    for pattern, why in _REFUSE:
        if pattern.search(text):
            return SigText(None, None, None, f"the text sig {why}", f"the text sig {why}")
    per_day, freq_why = _frequency(text)
    freq_reason = f"the text sig {freq_why}" if freq_why else ""
    if _RANGE.search(text):
        return SigText(None, None, per_day, "the text sig gives a dose range", freq_reason)
    amounts = list(
        dict.fromkeys((_number(m.group(1)), _sig_unit(m.group(2))) for m in _AMOUNT.finditer(text))
    )
    if not amounts:
        return SigText(
            None,
            None,
            per_day,
            "the text sig states no dose in mg, mL or "
            + (product.plural if product else "units of the product"),
            freq_reason,
        )
    if len(amounts) > 1:
        in_mg = [dose_to_mg(value, unit, weight, product)[0] for value, unit in amounts]
        if any(mg is None for mg in in_mg) or len({round(mg or 0, 3) for mg in in_mg}) > 1:
            return SigText(
                None, None, per_day, "the text sig gives more than one dose amount", freq_reason
            )
    value, unit = amounts[0]
    if value <= 0:
        return SigText(None, None, per_day, "the text sig's dose is not positive", freq_reason)
    return SigText(value, unit, per_day, "", freq_reason)


SupplyUnit = Literal["mg", "ml", "tablet", "capsule", "syringe", "each"]

_TABLET: Final = frozenset(
    {"tab", "tabs", "tablet", "tablets", "tbl", "{tbl}", "{tab}", "{tablet}", "{tablets}"}
)
_CAPSULE: Final = frozenset(
    {"cap", "caps", "capsule", "capsules", "{cap}", "{capsule}", "{capsules}"}
)
_PEN_OR_SYRINGE: Final = _SYRINGE_WORDS | {
    "pen",
    "pens",
    "{pen}",
    "auto-injector",
    "autoinjector",
    "{auto-injector}",
}
_EACH: Final = frozenset({"each", "ea", "{each}", "{pill}"})


def supply_amount(quantity: Json | None) -> tuple[SupplyUnit, float] | None:
    """(unit, amount) of a dose or supply Quantity: mass as mg, volume as mL, or a count
    of tablets, capsules, syringes / pens or "each"; None when the unit is none of them."""
    if quantity is None:
        return None
    value = get_num(quantity, "value")
    if value is None or value <= 0:
        return None
    for key in unit_keys(quantity):
        if key in _MASS_MG:
            return "mg", value * _MASS_MG[key]
        if key in _VOLUME_ML:
            return "ml", value * _VOLUME_ML[key]
        if key in _TABLET:
            return "tablet", value
        if key in _CAPSULE:
            return "capsule", value
        if key in _PEN_OR_SYRINGE:
            return "syringe", value
        if key in _EACH:
            return "each", value
    return None


@dataclass(frozen=True)
class Strength:
    """mg of the drug in one tablet, one capsule or one mL of the product."""

    mg: float
    per: SupplyUnit


_STRENGTH_IN_NAME: Final = re.compile(
    r"(?<![\d.])(\d+(?:\.\d+)?)\s*(mg|mcg|g)(\s*/\s*ml)?\b", re.IGNORECASE
)
_TABLET_WORD: Final = re.compile(r"\btablets?\b|\btab\b", re.IGNORECASE)
_CAPSULE_WORD: Final = re.compile(r"\bcapsules?\b|\bcap\b", re.IGNORECASE)


def _strength_in_name(name: str) -> Strength | None:
    found = _STRENGTH_IN_NAME.findall(name)
    if len(found) != 1:
        return None  # no strength, or a combination / several strengths
    value, unit, per_ml = found[0]
    mg = float(value) * _MASS_MG[unit.lower()]
    if per_ml:
        return Strength(mg, "ml")
    tablet = bool(_TABLET_WORD.search(name))
    capsule = bool(_CAPSULE_WORD.search(name))
    if tablet == capsule:
        return None
    return Strength(mg, "tablet" if tablet else "capsule")


def _strength_of_ingredients(ingredients: Sequence[Json]) -> Strength | None:
    if len(ingredients) != 1:
        return None
    ratio = get_map(ingredients[0], "strength")
    numerator = supply_amount(get_map(ratio, "numerator"))
    denominator = supply_amount(get_map(ratio, "denominator"))
    if numerator is None or denominator is None or numerator[0] != "mg":
        return None
    if denominator[0] not in {"tablet", "capsule", "ml"}:
        return None
    return Strength(numerator[1] / denominator[1], denominator[0])


def strength_of(names: Iterable[str], ingredients: Sequence[Json] = ()) -> Strength | None:
    """The product's strength when every source that states one agrees: a Medication's
    single ingredient strength, and product names with exactly one strength in them."""
    found: set[Strength] = set()
    from_ingredients = _strength_of_ingredients(ingredients)
    if from_ingredients is not None:
        found.add(from_ingredients)
    for name in names:
        strength = _strength_in_name(name)
        if strength is not None:
            found.add(Strength(round(strength.mg, _ROUND), strength.per))
    if len({(round(s.mg, _ROUND), s.per) for s in found}) != 1:
        return None
    return next(iter(found))


@dataclass(frozen=True)
class SupplyEstimate:
    days: float
    at_most: bool
    """True when a dose range or a frequency range was counted at its top: the supply
    lasts at least `days`, possibly longer."""


def _daily_use(dosages: Sequence[Json]) -> tuple[SupplyUnit, float, bool] | None:
    """(unit, amount a day, at_most) of the sig, or None when it cannot be told."""
    if not dosages:
        return None
    sequences = {d.get("sequence") for d in dosages}
    if len(sequences) > 1:
        return None  # consecutive phases (a taper): no single daily use
    unit: SupplyUnit | None = None
    total = 0.0
    at_most = False
    for dosage in dosages:
        if dosage.get("asNeededBoolean") is True or isinstance(
            dosage.get("asNeededCodeableConcept"), Mapping
        ):
            return None
        quantity, _ = _dose_quantity(dosage)
        amount = supply_amount(quantity)
        if amount is None or (unit is not None and amount[0] != unit):
            return None
        unit = amount[0]
        timing = get_map(dosage, "timing")
        per_day, _ = administrations_per_day(timing, as_needed=False)
        if per_day is None:
            return None
        repeat = get_map(timing, "repeat")
        if get_num(repeat, "frequencyMax") is not None:
            at_most = True
        if any(
            get_map(entry, "doseQuantity") is None and get_map(entry, "doseRange") is not None
            for entry in maps(dosage.get("doseAndRate"))
        ):
            at_most = True
        total += amount[1] * per_day
    if unit is None or total <= 0:
        return None
    return unit, total, at_most


def days_from_quantity(
    quantity: Json | None, dosages: Sequence[Json], strength: Strength | None
) -> SupplyEstimate | None:
    """How many days `quantity` lasts at the sig's daily use (see the module docstring),
    or None when the two cannot be compared without guessing."""
    supplied = supply_amount(quantity)
    use = _daily_use(dosages)
    if supplied is None or use is None:
        return None
    unit, per_day, at_most = use
    amount = supplied[1]
    if supplied[0] != unit:
        if unit == "mg" and strength is not None and supplied[0] == strength.per:
            amount = supplied[1] * strength.mg
        else:
            return None
    return SupplyEstimate(amount / per_day, at_most)
