"""Observations the policy can use: scores, labs, body weight, alcohol use, response to
therapy, and IL1RN genetic results.

- Only status final, amended or corrected; only for the patient.
- The kind is the observation value set the code matched (a code first; the value set's
  names in code text / display only when no code matched); panel components are read the
  same way and give their own measurements (same reference).
- Values: valueQuantity / valueInteger as numbers (a valueQuantity comparator, "< 3", is
  kept with the value: the value is then a bound, not the result); a coded or text value
  gives the interpretation ("positive", "negative", "improved"...). A score (CDAI, RAPID3,
  ACR 2010 total) sent as valueString is read as a number when the text is one number,
  optionally with "points" / "pts" or the score's name ("12.5", " 12 ", "12.5 points",
  "CDAI: 12.5"); a range ("10-12"), an inequality (">20"), words ("high") or two numbers are
  not read, and the measurement says why (`Measurement.note`, and a problem without the
  value). Body weight is converted to kg (kg, g, [lb_av], lb); alcohol use to units a week
  (a per-day amount x 7); symptom duration to weeks. A unit that cannot be converted leaves
  the value out with a problem. A score outside its scale (CDAI 0-76, RAPID3 0-30, ACR/EULAR
  2010 0-10) is not read: a CDAI of 290 or -3 is an entry error, not high disease activity
  or remission.
- Reference range: the first referenceRange.high (value and its unit); when no range has
  a high bound, the upper limit printed in referenceRange.text ("<=5.0 mg/L", "0.0-0.9
  mg/dL"; no unit in the text: the result's unit), as many laboratory interfaces send it.
- Effective date: effectiveDateTime, effectivePeriod.start, effectiveInstant, else issued.
- Body weight for dosing: the latest weight on or before the order date and at most 90
  days older than it.
- Genetics: an Observation whose code or a component is in `il1rn-genetic` (or that names
  IL1RN), whose gene is IL1RN (component 48018-6 = HGNC:6000, or text naming IL1RN, on
  itself or on an Observation it is derived from). Finding from component 53037-8, the
  interpretation or the value: pathogenic, likely pathogenic, uncertain, benign, no
  variant detected. A variant reported only as "present" with no significance counts as
  uncertain: its effect is not stated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Literal, TypeVar

from fhir_mappings import valuesets
from fhir_mappings.content_memo import ContentMemo
from fhir_mappings.facts import GeneticResult, Measurement, Ref, WeightFact
from fhir_mappings.fields import (
    Json,
    codings,
    get_map,
    get_num,
    get_str,
    maps,
    names_patient,
    parse_date,
    ref_of,
    reference,
    texts,
)
from fhir_mappings.r4 import Parsed

T = TypeVar("T")

WEIGHT_MAX_AGE_DAYS: Final = 90
_FINAL: Final = frozenset({"final", "amended", "corrected"})
_OBS: Final = frozenset({"observation"})
_LB_KG: Final = 0.45359237
_WEIGHT_KG: Final[Mapping[str, float]] = {
    "kg": 1.0,
    "kilogram": 1.0,
    "kilograms": 1.0,
    "g": 0.001,
    "[lb_av]": _LB_KG,
    "lb": _LB_KG,
    "lbs": _LB_KG,
    "pound": _LB_KG,
    "pounds": _LB_KG,
}
_WEEKS: Final[Mapping[str, float]] = {
    "wk": 1.0,
    "week": 1.0,
    "weeks": 1.0,
    "d": 1 / 7,
    "day": 1 / 7,
    "days": 1 / 7,
    "mo": 30 / 7,
    "month": 30 / 7,
    "months": 30 / 7,
    "a": 365 / 7,
    "year": 365 / 7,
    "years": 365 / 7,
}
_REPORTED_AS: Final[Mapping[str, str]] = {"alcohol-drinks-per-day": "alcohol-units-per-week"}
"""Value sets whose measurements are converted to another's unit and reported as it."""
_INTERPRETATION: Final[Mapping[str, str]] = {
    "h": "high",
    "hh": "high",
    "hu": "high",
    ">": "high",
    "l": "low",
    "ll": "low",
    "lu": "low",
    "<": "low",
    "n": "normal",
    "pos": "positive",
    "det": "positive",
    "neg": "negative",
    "nd": "negative",
    "a": "abnormal",
    "aa": "abnormal",
    "b": "improved",
    "w": "worse",
    "10828004": "positive",
    "260385009": "negative",
    "260373001": "positive",
    "260415000": "negative",
    "ind": "indeterminate",
    "419984006": "indeterminate",
    "82334004": "indeterminate",
    "la11884-6": "indeterminate",
    "la6576-8": "positive",
    "la6577-6": "negative",
}
_WORDS: Final = (
    ("indeterminate", "indeterminate"),
    ("inconclusive", "indeterminate"),
    ("equivocal", "indeterminate"),
    ("not detected", "negative"),
    ("negative", "negative"),
    ("positive", "positive"),
    ("detected", "positive"),
    ("improved", "improved"),
    ("improvement", "improved"),
    ("better", "improved"),
    ("worse", "worse"),
    ("unchanged", "unchanged"),
    ("no change", "unchanged"),
    ("high", "high"),
    ("normal", "normal"),
    ("low", "low"),
)
GENE_STUDIED: Final = "48018-6"
SIGNIFICANCE: Final = "53037-8"
Finding = Literal["pathogenic", "likely-pathogenic", "uncertain", "benign", "no-variant"]
_FINDING_CODES: Final[Mapping[str, Finding]] = {
    "LA6668-3": "pathogenic",
    "LA6669-1": "likely-pathogenic",
    "LA6682-4": "uncertain",
}
_FINDING_WORDS: Final[tuple[tuple[str, Finding], ...]] = (
    ("no pathogenic", "no-variant"),
    ("no variant", "no-variant"),
    ("no reportable variant", "no-variant"),
    ("not detected", "no-variant"),
    ("negative", "no-variant"),
    ("absent", "no-variant"),
    ("likely pathogenic", "likely-pathogenic"),
    ("presumed pathogenic", "likely-pathogenic"),
    ("likely benign", "benign"),
    ("presumed benign", "benign"),
    ("pathogenic", "pathogenic"),
    ("uncertain", "uncertain"),
    ("unknown significance", "uncertain"),
    ("vus", "uncertain"),
    ("benign", "benign"),
    ("present", "uncertain"),
)


_KINDS: Final[ContentMemo[str | None]] = ContentMemo(capacity=16_384)
_MAY_BE_GENETIC: Final[ContentMemo[bool]] = ContentMemo(capacity=16_384)


def forget_readings() -> None:
    """Empty the readings kept per resource body (the benchmark's new-patient figures)."""
    _READINGS.clear()


def forget_kinds() -> None:
    """Empty the memos (the benchmark's first-sight figures)."""
    _KINDS.clear()
    _MAY_BE_GENETIC.clear()
    _READINGS.clear()


def _kind(concept: Json | None) -> str | None:
    """The measurement a code names (memoised by its content: it depends on nothing else)."""
    return _KINDS.get(concept, lambda: _kind_now(concept))


def _kind_now(concept: Json | None) -> str | None:
    for system, code, _ in codings(concept):
        for hit in valuesets.match_code(system, code):
            if valuesets.valueset_kind(hit.valueset) in _OBS and hit.valueset != "il1rn-genetic":
                return hit.valueset
    for hit in valuesets.match_names(texts(concept), _OBS):
        if hit.valueset != "il1rn-genetic":
            return hit.valueset
    return None


def _effective(obs: Json) -> date | None:
    return (
        parse_date(obs.get("effectiveDateTime"))
        or parse_date((get_map(obs, "effectivePeriod") or {}).get("start"))
        or parse_date(obs.get("effectiveInstant"))
        or parse_date(obs.get("issued"))
    )


def _holder_words(holder: Json, concepts: Sequence[Json | None]) -> list[str]:
    """Lower-case texts of `concepts`, then the holder's valueString."""
    words = [t.lower() for c in concepts for t in texts(c)]
    value_string = get_str(holder, "valueString")
    if value_string:
        words.append(value_string.lower())
    return words


def _first_word_match(words: Sequence[str], table: Sequence[tuple[str, T]]) -> T | None:
    """The meaning of the first table word found in the first text that holds one."""
    for text in words:
        for word, meaning in table:
            if word in text:
                return meaning
    return None


def _interpretation(holder: Json) -> str | None:
    concepts = list(maps(holder.get("interpretation")))
    value_cc = get_map(holder, "valueCodeableConcept")
    if value_cc is not None:
        concepts.append(value_cc)
    for concept in concepts:
        for _, code, _ in codings(concept):
            if code and code.lower() in _INTERPRETATION:
                return _INTERPRETATION[code.lower()]
    return _first_word_match(_holder_words(holder, concepts), _WORDS)


_SCORE_SCALES: Final[Mapping[str, tuple[float, float]]] = {
    "cdai": (0.0, 76.0),
    "rapid3": (0.0, 30.0),
    "acr-2010-score": (0.0, 10.0),
}
"""The range each score can take (CDAI 0-76, RAPID3 0-30, ACR/EULAR 2010 0-10): a value
outside it is not that score (a unit or entry error), so it is left out, with the reason."""
_TEXT_SCORES: Final = frozenset({"cdai", "rapid3", "acr-2010-score"})
"""Kinds whose valueString may carry the score: unitless, so one number is unambiguous."""
_PLAIN_NUMBER: Final = re.compile(
    r"^(?:(?:cdai|rapid\s*-?\s*3|score|total)\s*[:=]?\s*)?"
    r"(\d+(?:\.\d+)?|\.\d+)\s*(?:points?|pts?\.?|/\s*(?:76|30))?$",
    re.IGNORECASE,
)
_NUMBERS: Final = re.compile(r"\d+(?:[.,]\d+)?")


def number_from_text(text: str) -> tuple[float | None, str]:
    """A score written as text: (number, "") when the text is one plain number, else
    (None, why) in plain words (never quoting the text)."""
    stripped = text.strip()
    match = _PLAIN_NUMBER.match(stripped)
    if match:
        return float(match.group(1)), ""
    numbers = _NUMBERS.findall(stripped)
    if not numbers:
        return None, "words, not a number"
    if re.search(r"[<>≤≥]|\b(?:less|more|greater|over|under|above|below)\b", stripped, re.I):
        return None, "an inequality, not a value"
    if len(numbers) > 1 and re.search(r"\d\s*(?:-|–|to)\s*\d", stripped):
        return None, "a range, not one value"
    if len(numbers) > 1:
        return None, "more than one number"
    if "," in numbers[0]:
        return None, "a number with a comma (decimal or thousands) that is ambiguous"
    return None, "a number with other words around it"


def _value(holder: Json, kind: str = "") -> tuple[float | None, str | None, str]:
    """(value, unit, why the value could not be read)."""
    quantity = get_map(holder, "valueQuantity")
    if quantity is not None:
        unit = get_str(quantity, "code") or get_str(quantity, "unit")
        return get_num(quantity, "value"), unit, ""
    if "valueInteger" in holder:
        return get_num(holder, "valueInteger"), None, ""
    text = get_str(holder, "valueString")
    if text is not None and kind in _TEXT_SCORES:
        value, why = number_from_text(text)
        return value, None, f"valueString is {why}; not read as a score" if why else ""
    return None, None, ""


def _convert(kind: str, value: float, unit: str | None) -> tuple[float | None, str | None, str]:
    key = (unit or "").strip().lower()
    if kind == "body-weight":
        factor = _WEIGHT_KG.get(key)
        if factor is None:
            return None, unit, "body weight unit not recognised"
        return round(value * factor, 3), "kg", ""
    if kind == "alcohol-drinks-per-day":
        # The code says per day; only a unit that says otherwise (per week) overrides it.
        if key.endswith("/wk") or key.endswith("week"):
            return value, "/wk", ""
        return value * 7, "/wk", ""
    if kind == "alcohol-units-per-week":
        if key.endswith("/d") or key.endswith("per day") or key.endswith("/day"):
            return value * 7, "/wk", ""
        if not key or key.endswith("/wk") or key.endswith("week") or key.endswith("/week"):
            return value, "/wk", ""
        return None, unit, "alcohol use unit is not per day or per week"
    if kind == "symptom-duration-weeks":
        factor = _WEEKS.get(key)
        if factor is None:
            return None, unit, "symptom duration unit not recognised"
        return round(value * factor, 3), "wk", ""
    scale = _SCORE_SCALES.get(kind)
    if scale is not None and not scale[0] <= value <= scale[1]:
        return None, unit, f"value outside the score's {scale[0]:g}-{scale[1]:g} scale; not read"
    return value, unit, ""


_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_UNIT = r"(?:\s*([A-Za-z%/\[\]{}.]+[A-Za-z%/\[\]{}.\d]*))?"
_RANGE_AT_MOST = re.compile(rf"^\s*(?:<=|<|\u2264)\s*{_NUMBER}{_UNIT}\s*$")
_RANGE_BETWEEN = re.compile(rf"^\s*{_NUMBER}\s*(?:-|\u2013|to)\s*{_NUMBER}{_UNIT}\s*$")


def range_text_high(text: str | None) -> tuple[float | None, str | None]:
    """The upper limit and unit of a reference range sent only as printed text ("<=5.0
    mg/L", "< 0.9", "0.0-0.9 mg/dL"); (None, None) for text with no upper limit (">60",
    "Negative") or a range whose bounds are reversed. The unit is None when the text gives
    none (the result's unit then applies)."""
    if not text:
        return None, None
    at_most = _RANGE_AT_MOST.match(text)
    if at_most:
        return float(at_most.group(1)), at_most.group(2)
    between = _RANGE_BETWEEN.match(text)
    if between and float(between.group(1)) < float(between.group(2)):
        return float(between.group(2)), between.group(3)
    return None, None


def _measurement(
    kind: str, holder: Json, ref: Ref, effective: date | None, problems: list[str]
) -> Measurement:
    value, unit, note = _value(holder, kind)
    if note:
        problems.append(f"{ref}: {note}")
    if value is not None:
        value, unit, why = _convert(kind, value, unit)
        if why:
            problems.append(f"{ref}: {why}")
            if kind in _SCORE_SCALES:
                note = note or why
    kind = _REPORTED_AS.get(kind, kind)
    high: float | None = None
    high_unit: str | None = None
    for rng in maps(holder.get("referenceRange")):
        bound = get_map(rng, "high")
        high = get_num(bound, "value")
        if high is not None:
            high_unit = get_str(bound, "code") or get_str(bound, "unit")
            break
    if high is None:
        for rng in maps(holder.get("referenceRange")):
            high, high_unit = range_text_high(get_str(rng, "text"))
            if high is not None:
                high_unit = high_unit or unit
                break
    return Measurement(
        kind=kind,
        value=value,
        unit=unit,
        effective=effective,
        ref=ref,
        reference_high=high,
        interpretation=_interpretation(holder),
        note=note or None,
        reference_unit=high_unit,
        comparator=get_str(get_map(holder, "valueQuantity"), "comparator"),
    )


@dataclass(frozen=True)
class _Reading:
    """What `measurements` reads from one Observation's body alone (before validation)."""

    subject: Ref | None
    effective: date | None
    found: tuple[Measurement, ...]
    problems: tuple[str, ...]
    may_be_genetic: bool


_READINGS: Final[ContentMemo[_Reading | None]] = ContentMemo(capacity=20_000)
"""Readings by the body's content key (`Parsed.keyed_candidates`): a body depends on
nothing else, so a chart sent again is not read again. None: not final."""


def _read(obs: Json) -> _Reading | None:
    if obs.get("status") not in _FINAL:
        return None
    ref = ref_of(obs)
    effective = _effective(obs)
    mine: list[Measurement] = []
    mine_problems: list[str] = []
    kind = _kind(get_map(obs, "code"))
    if kind is not None:
        mine.append(_measurement(kind, obs, ref, effective, mine_problems))
    for component in maps(obs.get("component")):
        c_kind = _kind(get_map(component, "code"))
        if c_kind is not None:
            mine.append(_measurement(c_kind, component, ref, effective, mine_problems))
    return _Reading(
        subject=reference(obs.get("subject")),
        effective=effective,
        found=tuple(mine),
        problems=tuple(mine_problems),
        may_be_genetic=_may_be_genetic(obs),
    )


def measurements(
    parsed: Parsed, patient_ref: Ref | None
) -> tuple[list[Measurement], list[GeneticResult], list[str]]:
    """Measurements and genetic results of the patient's final Observations.

    Each Observation is read before validation (the reading is defensive); only one that
    gives a measurement or a genetic result is validated, and kept only when valid, so an
    Observation the policy cannot use costs no validation."""
    found: list[Measurement] = []
    genetics: list[GeneticResult] = []
    problems: list[str] = []
    for obs, key in parsed.keyed_candidates("Observation"):
        reading = _READINGS.get_keyed(key, lambda: _read(obs))  # noqa: B023 (called now)
        if reading is None:
            continue
        if not names_patient(reading.subject, patient_ref):
            continue
        genetic = _genetic(obs, parsed, reading.effective) if reading.may_be_genetic else None
        if not reading.found and genetic is None:
            continue
        # Validation keeps the fields read above as they are (it only drops unknown ones).
        if parsed.accept(obs) is None:
            continue
        found.extend(reading.found)
        problems.extend(reading.problems)
        if genetic is not None:
            genetics.append(genetic)
    return found, genetics, problems


def latest_weight(found: Sequence[Measurement], as_of: date | None) -> WeightFact | None:
    """The latest body weight within 90 days before (or on) the order date."""
    if as_of is None:
        return None
    earliest = as_of - timedelta(days=WEIGHT_MAX_AGE_DAYS)
    candidates = [
        m
        for m in found
        if m.kind == "body-weight"
        and m.value is not None
        and m.value > 0
        and m.effective is not None
        and earliest <= m.effective <= as_of
    ]
    if not candidates:
        return None
    best = max(candidates, key=lambda m: m.effective or date.min)
    return WeightFact(kg=best.value or 0.0, effective=best.effective, ref=best.ref)


def _genetic_codes(obs: Json) -> set[str]:
    codes: set[str] = set()
    for concept in [get_map(obs, "code"), get_map(obs, "valueCodeableConcept")]:
        codes.update(c for _, c, _ in codings(concept) if c)
    for component in maps(obs.get("component")):
        codes.update(c for _, c, _ in codings(get_map(component, "code")) if c)
    return codes


def _names_il1rn(obs: Json) -> bool:
    concepts = [get_map(obs, "code"), get_map(obs, "valueCodeableConcept")]
    strings = [get_str(obs, "valueString") or ""]
    for component in maps(obs.get("component")):
        concepts.append(get_map(component, "valueCodeableConcept"))
        concepts.append(get_map(component, "code"))
        strings.append(get_str(component, "valueString") or "")
    for concept in concepts:
        for system, code, _ in codings(concept):
            if any(
                h.valueset == "il1rn-genetic" and h.code.upper().startswith("HGNC")
                for h in valuesets.match_code(system, code)
            ):
                return True
    all_texts = [t for c in concepts for t in texts(c)] + strings
    return any(h.valueset == "il1rn-genetic" for h in valuesets.match_names(all_texts, _OBS))


def _finding(obs: Json) -> Finding | None:
    holders: list[Json] = [obs]
    holders.extend(maps(obs.get("component")))
    significance = [
        c
        for c in maps(obs.get("component"))
        if SIGNIFICANCE in {code for _, code, _ in codings(get_map(c, "code"))}
    ]
    for holder in significance + holders:
        concepts = [get_map(holder, "valueCodeableConcept"), *maps(holder.get("interpretation"))]
        for concept in concepts:
            for _, code, _ in codings(concept):
                if code and code in _FINDING_CODES:
                    return _FINDING_CODES[code]
    for holder in significance + holders:
        concepts = [get_map(holder, "valueCodeableConcept"), *maps(holder.get("interpretation"))]
        finding = _first_word_match(_holder_words(holder, concepts), _FINDING_WORDS)
        if finding is not None:
            return finding
    return None


_GENETIC_FIELDS: Final = ("code", "valueCodeableConcept", "valueString", "component")


def _may_be_genetic(obs: Json) -> bool:
    """A genetic result's code, or a name of the gene: read from the fields these two look
    at only, so the answer is memoised by those fields' content."""
    fields = {key: obs[key] for key in _GENETIC_FIELDS if key in obs}

    def now() -> bool:
        codes = _genetic_codes(obs)
        is_genetic = bool(codes & {"69548-6", "81252-9", SIGNIFICANCE, GENE_STUDIED})
        return is_genetic or _names_il1rn(obs)

    return _MAY_BE_GENETIC.get(fields, now)


def _genetic(obs: Json, parsed: Parsed, effective: date | None) -> GeneticResult | None:
    """The IL1RN result of an Observation that `_may_be_genetic`."""
    refs = [ref_of(obs)]
    il1rn = _names_il1rn(obs)
    if not il1rn:
        for link in [*maps(obs.get("derivedFrom")), *maps(obs.get("hasMember"))]:
            target = reference(link)
            source = parsed.by_ref.get(target) if target else None
            if source is not None and _names_il1rn(source):
                il1rn = True
                refs.append(ref_of(source))
                break
    if not il1rn:
        return None
    finding = _finding(obs)
    if finding is None:
        return None
    return GeneticResult(gene="IL1RN", finding=finding, effective=effective, refs=tuple(refs))
