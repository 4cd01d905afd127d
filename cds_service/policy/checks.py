"""Reusable, pure checks that decide one policy criterion from `PolicyFacts`.

Every check has the same shape, `(params, facts, ctx) -> Verdict`: `params` come from
the policy data file (limits, durations, value set names), `facts` are the mapped
FHIR data, `ctx` is what the engine worked out once for the whole evaluation (the
order date, the pathway, the indication and the diagnoses that claim it, the
patient's current records of the drug). No check reads the clock or does I/O.

A check declares the statuses it can produce and the parameters it takes, so the
policy file can be validated at load and the tests can insist that every criterion
has a case for each status it can come out with. A second drug policy of the same
family needs only a new data file wherever its criteria are of these kinds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar

from cds_service.policy.model import Pathway, Status
from fhir_mappings.facts import (
    Diagnosis,
    GeneticResult,
    Measurement,
    MedicationRecord,
    PolicyFacts,
    TherapyRun,
)

MET = Status.MET
NOT_MET = Status.NOT_MET
UNKNOWN = Status.UNKNOWN

_EPSILON = 1e-9
"""Tolerance for float comparisons, so that 160 mg / 20 kg is exactly 8 mg/kg."""


@dataclass(frozen=True)
class Band:
    """One row of a score table (Appendix G / H): values up to `upper` read as `label`."""

    upper: float | None
    label: str


@dataclass(frozen=True)
class EvalContext:
    """What the engine decided once for the whole evaluation of one order."""

    order_date: date
    pathway: Pathway
    section: str
    indication: str
    claim: tuple[Diagnosis, ...]
    """The diagnoses (order reasons or Conditions) that claim the indication."""
    drug_valueset: str
    """The value set of the drug the policy is about (its pack's ingredient name)."""
    current_drug_records: tuple[MedicationRecord, ...]
    """Records showing the patient currently receives the drug (continued pathway)."""
    first_drug_date: date | None
    """The earliest start of the drug in the patient's history (baseline for response)."""
    scales: Mapping[str, tuple[Band, ...]] = field(default_factory=dict)
    """Score interpretation tables by measurement kind, e.g. "cdai" -> Appendix G."""
    drug_label: str = ""
    """The drug's name for people (its pack's brand); empty: `drug_valueset`."""


@dataclass(frozen=True)
class Verdict:
    """A check's answer; the engine adds the criterion's id, words and documentation."""

    status: Status
    reason: str
    evidence: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    documentation: str | None = None
    """Overrides the criterion's documentation text when the check knows better."""


CheckFn = Callable[[Mapping[str, Any], PolicyFacts, EvalContext], Verdict]
ParamKind = Literal[
    "valueset",
    "valuesets",
    "number",
    "int",
    "str",
    "strs",
    "bool",
    "status",
    "int_map",
    "dose",
    "dose_bands",
    "quantity",
    "checks",
    "thresholds",
]
"""`dose`, `dose_bands`, `quantity`: the dose-limit schedule parameters, validated by
`checks_dose.param_problem`; `checks`: a list of `{check, params}` sub-checks (validated like
criteria); `thresholds`: value set name -> `{value, unit}`."""


@dataclass(frozen=True)
class ParamSpec:
    kind: ParamKind
    required: bool = True


@dataclass(frozen=True)
class CheckDef:
    name: str
    fn: CheckFn
    statuses: frozenset[Status]
    """Every status the check can produce (the test suite wants a case for each)."""
    params: Mapping[str, ParamSpec]
    reachable: Callable[[Mapping[str, Any]], frozenset[Status]] | None = None
    """The statuses the check can reach with given parameters, when fewer than all."""
    reads: frozenset[str] = frozenset()
    """Resource types whose absence the check concludes from."""
    absence_statuses: frozenset[Status] = frozenset()
    """The statuses that rest on nothing of `reads` having been found: the engine turns
    them into unknown when the EHR could not give those resource types."""

    def statuses_for(self, params: Mapping[str, Any]) -> frozenset[Status]:
        return self.reachable(params) if self.reachable else self.statuses


_REGISTRY: dict[str, CheckDef] = {}


def _check(
    name: str,
    statuses: Iterable[Status],
    params: Mapping[str, ParamSpec] | None = None,
    reachable: Callable[[Mapping[str, Any]], frozenset[Status]] | None = None,
    *,
    reads: Iterable[str] = (),
    absence: Iterable[Status] = (),
) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        _REGISTRY[name] = CheckDef(
            name,
            fn,
            frozenset(statuses),
            MappingProxyType(params or {}),
            reachable,
            frozenset(reads),
            frozenset(absence),
        )
        return fn

    return register


# --------------------------------------------------------------------------- helpers


def _names(params: Mapping[str, Any], key: str) -> frozenset[str]:
    value = params.get(key)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset({value})
    return frozenset(str(v) for v in value)


def _num(params: Mapping[str, Any], key: str) -> float | None:
    value = params.get(key)
    return None if value is None else float(value)


def _dedupe(refs: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(refs))


def _fmt(value: float) -> str:
    """A number as a prescriber reads it: 100, 7.5, 8.01."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _sentence(parts: Sequence[str]) -> str:
    text = "; ".join(parts)
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _le(value: float, limit: float) -> bool:
    return value <= limit + _EPSILON


def age_on(birth: date, on: date) -> int:
    """Completed years on `on`. The birthday itself counts (18 on the 18th birthday).

    A 29 February birth turns a year older on 1 March in common years (the day after
    28 February), the conservative reading for an age minimum.
    """
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def months_before(day: date, months: int) -> date:
    """The same day `months` calendar months earlier (clamped to the month's end)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    return date(year, month, 28)  # pragma: no cover - 28 always exists


def appendix_e_syringes(mg: float, band_mg: float) -> int:
    """Units of the product for one weight-based dose counted by a policy's table of bands
    (`syringe_band_mg`): one unit, and one more for every full band (NH.PHAR.244 Appendix E,
    bands of 105 mg: <= 104.99 mg: 1, ...)."""
    if mg <= 0:
        return 0
    return math.floor(round(mg / band_mg, 9)) + 1


def band_of(value: float, bands: Sequence[Band]) -> tuple[int, str] | None:
    """(index, label) of the band a score falls in; a lower index is better."""
    for index, band in enumerate(bands):
        if band.upper is None or _le(value, band.upper):
            return index, band.label
    return None


def _matching(diagnoses: Iterable[Diagnosis], valuesets: frozenset[str]) -> list[Diagnosis]:
    return [d for d in diagnoses if d.valuesets & valuesets]


def _all_diagnoses(facts: PolicyFacts) -> tuple[Diagnosis, ...]:
    return facts.order.reasons + facts.diagnoses


def _dated_on_or_before(
    measurements: Iterable[Measurement], kind: str, on: date, after: date | None = None
) -> list[Measurement]:
    found = [
        m
        for m in measurements
        if m.kind == kind
        and m.value is not None
        and m.effective is not None
        and m.effective <= on
        and (after is None or m.effective > after)
    ]
    return sorted(found, key=lambda m: m.effective or date.min)


def _latest(
    measurements: Iterable[Measurement], kind: str, on: date, after: date | None = None
) -> Measurement | None:
    found = _dated_on_or_before(measurements, kind, on, after)
    return found[-1] if found else None


def _latest_any(measurements: Iterable[Measurement], kind: str, on: date) -> Measurement | None:
    """Latest measurement of a kind on or before `on`, valued or only interpreted."""
    found = [
        m for m in measurements if m.kind == kind and m.effective is not None and m.effective <= on
    ]
    return max(found, key=lambda m: m.effective or date.min) if found else None


def _band_text(kind: str, value: float, scales: Mapping[str, tuple[Band, ...]]) -> str:
    bands = scales.get(kind)
    band = band_of(value, bands) if bands else None
    label = f" ({band[1]})" if band else ""
    return f"{kind.upper()} {_fmt(value)}{label}"


# --------------------------------------------------------------------------- diagnosis


_POSITIVE_FINDINGS = frozenset({"pathogenic", "likely-pathogenic"})
_NEGATIVE_FINDINGS = frozenset({"benign", "no-variant"})
_ABNORMAL = frozenset({"high", "h", "abnormal", "a", "positive", "pos", "hh", "critical"})
_NORMAL = frozenset({"normal", "n", "negative", "neg"})


def _genetic(
    facts: PolicyFacts, gene: str
) -> tuple[list[GeneticResult], list[GeneticResult], list[GeneticResult]]:
    results = [g for g in facts.genetic_results if g.gene.upper() == gene.upper()]
    positive = [g for g in results if g.finding in _POSITIVE_FINDINGS]
    negative = [g for g in results if g.finding in _NEGATIVE_FINDINGS]
    return results, positive, negative


@_check(
    "diagnosis",
    (MET, NOT_MET, UNKNOWN),
    {
        "valuesets": ParamSpec("valuesets"),
        "pending_valuesets": ParamSpec("valuesets", required=False),
        "confirm_by_gene": ParamSpec("str", required=False),
        "classification": ParamSpec("str", required=False),
        "classification_threshold": ParamSpec("number", required=False),
    },
    reachable=lambda p: frozenset(
        {MET, UNKNOWN}
        | ({NOT_MET} if p.get("confirm_by_gene") or p.get("classification") else set())
    ),
)
def diagnosis(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """A diagnosis in the value sets, established: confirmed (or no verification status) and
    coded (see `Diagnosis.established`).

    - Only working diagnoses (provisional / differential / unconfirmed) or diagnoses named
      in words without a code: `unknown` — confirm or code the diagnosis — never met (a
      pharmacist does not approve on a working or uncoded diagnosis), never not-met (the
      diagnosis may well stand). An established one always wins over them.

    - `pending_valuesets`: a code that names the family but not the indication (ICD-10-CM
      M04.2 for NOMID): `unknown` until the specific diagnosis is confirmed.
    - `confirm_by_gene`: the diagnosis stands only on a pathogenic / likely pathogenic
      variant of the gene (DIRA and IL1RN): benign / no variant is `not-met`, no result
      or a variant of uncertain significance is `unknown`.
    - `classification: acr-2010`: the Appendix F score (recorded total, or computed from
      its components) below the threshold makes the criterion `not-met`; at or above it,
      it is shown as supporting evidence.
    """
    wanted = _names(params, "valuesets")
    named = _matching(_all_diagnoses(facts), wanted)
    matches = [d for d in named if d.established(wanted)]
    if named and not matches:
        return _not_established(named, wanted)
    refs = _dedupe(r for d in matches for r in d.refs)
    names = ", ".join(sorted({d.display or d.code for d in matches}))

    gene = params.get("confirm_by_gene")
    if gene:
        if not matches:
            return Verdict(NOT_MET, "No diagnosis of this condition is documented.")
        results, positive, negative = _genetic(facts, str(gene))
        gene_refs = _dedupe(r for g in results for r in g.refs)
        details: dict[str, Any] = {"findings": [g.finding for g in results], "gene": str(gene)}
        if positive:
            return Verdict(
                MET,
                f"{names}: {gene} {positive[0].finding} variant reported.",
                refs + gene_refs,
                details,
            )
        if negative:
            return Verdict(
                NOT_MET,
                f"{names}: {gene} testing found no pathogenic (loss-of-function) variant.",
                refs + gene_refs,
                details,
            )
        if results:
            return Verdict(
                UNKNOWN,
                f"{names}: {gene} result is of uncertain significance.",
                refs + gene_refs,
                details,
            )
        return Verdict(UNKNOWN, f"{names}: no {gene} genetic result on file.", refs, details)

    if not matches:
        pending = _matching(_all_diagnoses(facts), _names(params, "pending_valuesets"))
        if pending:
            pending_names = ", ".join(sorted({d.display or d.code for d in pending}))
            return Verdict(
                UNKNOWN,
                f"{pending_names} names the whole syndrome family; the specific diagnosis "
                "is not documented.",
                _dedupe(r for d in pending for r in d.refs),
                {"pending": True},
            )
        return Verdict(NOT_MET, "No diagnosis of this condition is documented.")

    if params.get("classification") == "acr-2010":
        threshold = _num(params, "classification_threshold") or 6.0
        score = acr_2010_score(facts.measurements, ctx.order_date)
        acr_details: dict[str, Any] = {"acr_2010": score.as_details(), "threshold": threshold}
        evidence = refs + score.refs
        if score.low is not None and score.high is not None:
            if score.low >= threshold:
                return Verdict(
                    MET,
                    f"{names}; ACR 2010 classification score {score.text} (>= "
                    f"{_fmt(threshold)}) supports the diagnosis.",
                    evidence,
                    acr_details,
                )
            if score.high < threshold:
                return Verdict(
                    NOT_MET,
                    f"{names}, but the ACR 2010 classification score is {score.text} "
                    f"(< {_fmt(threshold)}): definite RA is not established.",
                    evidence,
                    acr_details,
                )
        return Verdict(MET, f"{names} documented.", evidence, acr_details)

    return Verdict(MET, f"{names} documented.", refs)


CONFIRM_DOCUMENTATION = (
    "Chart notes confirming the diagnosis (the working diagnosis on file is not confirmed), "
    "with the Condition recorded as confirmed."
)
CODE_DOCUMENTATION = (
    "The diagnosis coded in ICD-10-CM or SNOMED CT (problem list or the order's reason), "
    "with the chart notes that document it."
)


_SYSTEM_NAMES = {
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://snomed.info/sct": "SNOMED CT",
}


def _system_name(system: str) -> str:
    return _SYSTEM_NAMES.get(system.rstrip("/"), "local code")


def _not_established(named: Sequence[Diagnosis], wanted: frozenset[str]) -> Verdict:
    """Only working or uncoded diagnoses of the indication are on file."""
    parts: list[str] = []
    docs: list[str] = []
    working = sorted({d.verification for d in named if d.verification != "confirmed"})
    uncoded = [d for d in named if d.text_only & wanted and d.verification == "confirmed"]
    label = ", ".join(sorted({d.display or d.code for d in named})) or "The diagnosis"
    if working:
        parts.append(f"{label} is recorded as {' / '.join(working)}, not confirmed")
        docs.append(CONFIRM_DOCUMENTATION)
    if uncoded:
        how = ", ".join(sorted({f"{_system_name(d.system)} {d.code}" for d in uncoded if d.code}))
        parts.append(
            f"{label} is recorded "
            + (f"with a code the policy does not list ({how})" if how else "as text only, no code")
        )
        docs.append(CODE_DOCUMENTATION)
    action = "confirm the diagnosis" if working else "code the diagnosis"
    if working and uncoded:
        action = "confirm and code the diagnosis"
    return Verdict(
        UNKNOWN,
        f"{_sentence(parts)[:-1]}: {action}.",
        _dedupe(r for d in named for r in d.refs),
        {"unconfirmed": working, "uncoded": bool(uncoded)},
        documentation=" ".join(docs),
    )


@dataclass(frozen=True)
class AcrScore:
    """Appendix F score: the recorded total, or the range the recorded components allow."""

    low: float | None
    high: float | None
    recorded_total: float | None
    components: Mapping[str, int | None]
    refs: tuple[str, ...]

    @property
    def text(self) -> str:
        if self.recorded_total is not None:
            return _fmt(self.recorded_total)
        low, high = self.low or 0.0, self.high or 0.0
        return _fmt(low) if low == high else f"{_fmt(low)}-{_fmt(high)}"

    def as_details(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "recorded_total": self.recorded_total,
            "components": dict(self.components),
        }


def _joint_score(large: float, small: float) -> int:
    if small >= 1 and large + small > 10:
        return 5
    if small >= 4:
        return 3
    if small >= 1:
        return 2
    if large >= 2:
        return 1
    return 0


def bound_side(comparator: str, bound: float, limit: float, direction: str) -> bool | None:
    """Whether a result known only as `comparator bound` ("< 3": some value under 3) is
    strictly on the `direction` side of `limit`: True when every value it allows is, False
    when none is, None when it cannot tell (or the comparator is not one of < <= >= >)."""
    eps = 1e-9
    if comparator in ("<", "<="):
        if direction == "above":
            return False if bound <= limit + eps else None
        inside = bound <= limit + eps if comparator == "<" else bound < limit - eps
        return True if inside else None
    if comparator in (">", ">="):
        if direction == "below":
            return False if bound >= limit - eps else None
        inside = bound >= limit - eps if comparator == ">" else bound > limit + eps
        return True if inside else None
    return None


def _bounded_serology(
    comparator: str, bound: float, high: float
) -> Literal["negative", "low", "high", "positive"] | None:
    """A result known only as a bound ("< 20", "> 300"): the level every value it allows
    falls in, "positive" for low-or-high, None when it may be negative or positive."""
    if bound_side(comparator, bound, high, "above") is False:
        return "negative"
    if bound_side(comparator, bound, 3 * high, "above"):
        return "high"
    return "positive" if bound_side(comparator, bound, high, "above") else None


def _serology_level(m: Measurement) -> Literal["negative", "low", "high", "positive"] | None:
    interp = (m.interpretation or "").lower()
    if m.value is not None and m.reference_high and m.comparator:
        return _bounded_serology(m.comparator, m.value, m.reference_high)
    if m.value is not None and m.reference_high:
        if m.value <= m.reference_high:
            return "negative"
        return "high" if m.value >= 3 * m.reference_high else "low"
    if interp in _NORMAL:
        return "negative"
    if interp in _ABNORMAL:
        return "positive"
    return None


def _reactant_abnormal(m: Measurement) -> bool | None:
    interp = (m.interpretation or "").lower()
    if m.value is not None and m.reference_high is not None and m.comparator:
        # "< 5" under a range up to 3 may be normal or not; "> 10" over it is abnormal.
        return bound_side(m.comparator, m.value, m.reference_high, "above")
    if m.value is not None and m.reference_high is not None:
        return m.value > m.reference_high
    if interp in _ABNORMAL:
        return True
    if interp in _NORMAL:
        return False
    return None


R = TypeVar("R")


def _latest_readings(
    measurements: Sequence[Measurement],
    kinds: Sequence[str],
    on: date,
    read: Callable[[Measurement], R | None],
    refs: list[str],
) -> list[R]:
    """What `read` makes of the latest measurement of each kind (those it can read),
    adding the measurements used to `refs`."""
    out: list[R] = []
    for kind in kinds:
        found = _latest_any(measurements, kind, on)
        value = read(found) if found is not None else None
        if found is not None and value is not None:
            out.append(value)
            refs.append(found.ref)
    return out


def acr_2010_score(measurements: Sequence[Measurement], on: date) -> AcrScore:
    """Appendix F (2010 ACR/EULAR classification) from the latest values on or before `on`.

    A recorded total is used as is. Otherwise each category is scored from its
    components; a category with no usable result counts as its whole range (joints
    0-5, serology 0-3, acute-phase reactants 0-1, duration 0-1), so the result is a
    range that decides only when it lies wholly on one side of the threshold. A positive
    serology with no value against an upper limit of normal counts as low (2) to high (3).
    """
    total = _latest(measurements, "acr-2010-score", on)
    if total is not None and total.value is not None:
        return AcrScore(total.value, total.value, total.value, {}, (total.ref,))

    refs: list[str] = []
    low = high = 0.0
    components: dict[str, int | None] = {}

    large = _latest(measurements, "acr-joints-large", on)
    small = _latest(measurements, "acr-joints-small", on)
    if large is None and small is None:
        components["joints"] = None
        high += 5
    else:
        large_n = large.value if large and large.value is not None else 0.0
        small_n = small.value if small and small.value is not None else 0.0
        joints = _joint_score(large_n, small_n)
        refs += [m.ref for m in (large, small) if m is not None]
        complete = large is not None and small is not None
        components["joints"] = joints if complete else None
        low += joints
        high += joints if complete else 5

    sero_levels = _latest_readings(
        measurements, ("rheumatoid-factor", "acpa"), on, _serology_level, refs
    )
    if not sero_levels:
        components["serology"] = None
        high += 3
    else:
        points = {"negative": (0, 0), "low": (2, 2), "positive": (2, 3), "high": (3, 3)}
        sero_low = max(points[level][0] for level in sero_levels)
        sero_high = max(points[level][1] for level in sero_levels)
        components["serology"] = sero_low if sero_low == sero_high else None
        low += sero_low
        high += sero_high

    reactants = _latest_readings(measurements, ("crp", "esr"), on, _reactant_abnormal, refs)
    if not reactants:
        components["acute_phase_reactants"] = None
        high += 1
    else:
        points_apr = 1 if any(reactants) else 0
        components["acute_phase_reactants"] = points_apr
        low += points_apr
        high += points_apr

    duration = _latest(measurements, "symptom-duration-weeks", on)
    if duration is None or duration.value is None:
        components["symptom_duration"] = None
        high += 1
    else:
        points_d = 1 if duration.value >= 6 else 0
        components["symptom_duration"] = points_d
        refs.append(duration.ref)
        low += points_d
        high += points_d

    if not refs:
        return AcrScore(None, None, None, components, ())
    return AcrScore(low, high, None, components, _dedupe(refs))


# --------------------------------------------------------------------------- prescriber


@_check(
    "prescriber-specialty",
    (MET, UNKNOWN),
    {"valuesets": ParamSpec("valuesets"), "referral_months": ParamSpec("int")},
)
def prescriber_specialty(
    params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext
) -> Verdict:
    """Prescribed by or in consultation with the specialty.

    Met by the requester's own role, a CareTeam participant with that role, or a
    referral to it authored within `referral_months` before the order date. Anything
    else is `unknown` (a consultation may exist outside the data), never `not-met`.
    """
    wanted = _names(params, "valuesets")
    label = "/".join(sorted(wanted))
    p = facts.prescriber
    if p.specialty_valuesets & wanted:
        return Verdict(MET, f"The prescriber's role is {label}.", p.refs)
    for sets, ref in p.care_team:
        if sets & wanted:
            return Verdict(MET, f"A {label} specialist is on the patient's care team.", (ref,))
    months = int(params["referral_months"])
    cutoff = months_before(ctx.order_date, months)
    recent = [
        r
        for r in p.referrals
        if r.valuesets & wanted
        and r.authored is not None
        and cutoff <= r.authored
        and r.authored <= ctx.order_date
    ]
    if recent:
        latest = max(recent, key=lambda r: r.authored or date.min)
        return Verdict(
            MET,
            f"Referred to {label} on {latest.authored} (within {months} months).",
            latest.refs,
        )
    older = [r for r in p.referrals if r.valuesets & wanted]
    if older:
        return Verdict(
            UNKNOWN,
            f"The {label} referral on file is not dated within {months} months of the order.",
            _dedupe(ref for r in older for ref in r.refs),
        )
    if p.has_role_data:
        codes = ", ".join(p.specialty_codes) or "no specialty"
        return Verdict(
            UNKNOWN,
            f"The prescriber's role ({codes}) is not {label}, and no {label} "
            "consultation is documented.",
            p.refs,
        )
    return Verdict(
        UNKNOWN,
        f"The prescriber's specialty is not available; no {label} consultation is documented.",
        p.refs,
        {"confirm_specialty": True},  # the request carries no role to read: ask to confirm
    )


# --------------------------------------------------------------------------- age


@_check("minimum-age", (MET, NOT_MET, UNKNOWN), {"years": ParamSpec("int")})
def minimum_age(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """Age on the order date at least `years` (the birthday itself counts).

    A birth date recorded as a year or a year and month only (EHRs send "1990" or
    "2008-11" when the day is not known) gives a youngest and an oldest possible age: met
    only when the youngest reaches `years`, not-met only when the oldest does not; between
    the two the age is unknown and the full birth date is asked for."""
    years = int(params["years"])
    if facts.birth_date is None:
        return Verdict(UNKNOWN, "The patient's birth date is not available.", (facts.patient_ref,))
    age = age_on(facts.birth_date, ctx.order_date)
    details = {"age": age, "minimum": years}
    if age >= years:
        return Verdict(MET, f"Age {age} on the order date.", (facts.patient_ref,), details)
    earliest = facts.earliest_birth_date
    oldest = age_on(earliest, ctx.order_date) if earliest is not None else age
    if oldest >= years:
        return Verdict(
            UNKNOWN,
            f"The birth date is recorded without its day: the patient is {age} or {oldest} "
            f"on the order date; the minimum is {years}.",
            (facts.patient_ref,),
            {**details, "oldest_age": oldest},
            documentation="The patient's full date of birth.",
        )
    return Verdict(
        NOT_MET,
        f"Age {age} on the order date; the minimum is {years}.",
        (facts.patient_ref,),
        details,
    )


# --------------------------------------------------------------------------- step therapy


@dataclass(frozen=True)
class _Trials:
    """What the therapy runs of some value sets show against a minimum length."""

    best: TherapyRun | None
    """The longest run whose length is known (documented or estimated)."""
    open_run: TherapyRun | None
    """The longest open-ended run that could reach the minimum through its unknown part
    (set only when no known run reaches it)."""
    any_run: TherapyRun | None
    """The longest run of any kind (for the reason when nothing else is there)."""

    @property
    def days(self) -> int:
        return self.best.days if self.best is not None else 0

    def met(self, min_days: int) -> bool:
        return self.best is not None and self.best.days >= min_days


def _trials(facts: PolicyFacts, valuesets: frozenset[str], on: date, min_days: int) -> _Trials:
    """Met only on a length known to reach `min_days`; a run whose length is unknown, or
    that could reach it only through a part of unknown length (up to the order date),
    makes the answer unknown, never short."""
    runs = [r for r in facts.therapy_runs if r.valuesets & valuesets and r.start <= on]
    known = [r for r in runs if r.certainty != "unknown"]
    best = max(known, key=lambda r: (r.days, r.end), default=None)
    open_run: TherapyRun | None = None
    if best is None or best.days < min_days:
        could = [
            r
            for r in runs
            if r.open_ended and ((on - r.start).days + 1 >= min_days or r.began_earlier)
        ]
        open_run = max(could, key=lambda r: ((on - r.start).days, r.days), default=None)
    any_run = max(runs, key=lambda r: (r.days, r.end), default=None)
    return _Trials(best, open_run, any_run)


def _how_known(run: TherapyRun) -> str:
    if run.certainty == "estimated" and run.estimated_from:
        return f"; estimated from {' and '.join(run.estimated_from)}"
    return ""


def _taken(run: TherapyRun) -> str:
    return (
        f"{run.drug} taken for {run.days} consecutive days ({run.start} to {run.end}"
        f"{_how_known(run)})."
    )


def _at_most(run: TherapyRun, on: date, min_days: int) -> str:
    """A run of unknown length that cannot reach the minimum before the order date."""
    most = (on - run.start).days + 1
    return (
        f"{run.drug} first recorded on {run.start}: at most {most} days before the order "
        f"date (needs {min_days})"
    )


_RECORD_WORDS: Final = {
    "MedicationRequest": "order",
    "MedicationStatement": "medication statement",
    "MedicationDispense": "dispense",
    "MedicationAdministration": "administration",
    "Claim": "claim",
    "ExplanationOfBenefit": "claim",
}


def _open_reason(run: TherapyRun) -> str:
    """Why an open-ended run's length is not known, e.g. "methotrexate from 2019-02-19
    (MedicationRequest: no supply duration or quantity): how long it was taken is not
    in the chart"."""
    unknown = [s for s in run.sources if s.open_ended] or list(run.sources)
    tail = max(unknown, key=lambda s: (s.end, s.start), default=None)
    what = f" ({_RECORD_WORDS.get(tail.resource_type, 'record')}: {tail.basis})" if tail else ""
    shown = (
        f"{run.drug} from {run.start}{what}"
        if run.days <= 1
        else f"{run.drug} documented for {run.days} days ({run.start} to {run.end}), then{what}"
    )
    return f"{shown}: how long it was taken is not in the chart."


def _trial_documentation(drug: str) -> str:
    return (
        f"The {drug} trial dates (start and end) and dose (the chart shows the trial but "
        "not how long it lasted)."
    )


def _intolerances(facts: PolicyFacts, valuesets: frozenset[str]) -> list[Any]:
    return [i for i in facts.intolerances if i.valuesets & valuesets]


_TRIAL_READS: Final = (
    "MedicationRequest",
    "MedicationStatement",
    "MedicationDispense",
    "AllergyIntolerance",
)


@_check(
    "trial-or-intolerance",
    (MET, NOT_MET, UNKNOWN),
    {
        "valuesets": ParamSpec("valuesets"),
        "min_days": ParamSpec("int"),
        "short_trial_status": ParamSpec("status", required=False),
        "label": ParamSpec("str", required=False),
    },
    reachable=lambda p: frozenset(
        {MET, UNKNOWN} | ({NOT_MET} if p.get("short_trial_status") == "not-met" else set())
    ),
    reads=_TRIAL_READS,
    absence=(NOT_MET,),
)
def trial_or_intolerance(
    params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext
) -> Verdict:
    """A trial of `min_days` consecutive days of a drug in the value sets, or documented
    intolerance / contraindication to them. A trial known to be shorter, with no
    intolerance, is `short_trial_status` (default `unknown`); a trial whose length the
    chart does not give, or no history, is `unknown`."""
    wanted = _names(params, "valuesets")
    min_days = int(params["min_days"])
    # The words the prescriber reads ("preferred product (tocilizumab, ...)"), else the
    # value set names.
    label = str(params.get("label") or "/".join(sorted(wanted)) + " product")
    trials = _trials(facts, wanted, ctx.order_date, min_days)
    run = trials.best
    days = trials.days
    details: dict[str, Any] = {"best_trial_days": days, "min_days": min_days}
    if run is not None:
        details["best_trial_drug"] = run.drug
        details["best_trial_certainty"] = run.certainty
    if run is not None and trials.met(min_days):
        return Verdict(MET, _taken(run), run.refs, details)
    intol = _intolerances(facts, wanted)
    if intol:
        return Verdict(
            MET,
            f"Documented {intol[0].kind} to {intol[0].substance}.",
            _dedupe(r for i in intol for r in i.refs),
            details,
        )
    if trials.open_run is not None:
        details["trial_length_unknown"] = True
        drug = trials.open_run.drug
        return Verdict(
            UNKNOWN,
            _open_reason(trials.open_run),
            _dedupe([*trials.open_run.refs, *(run.refs if run else ())]),
            details,
            documentation=_trial_documentation(drug),
        )
    if run is not None:
        status = Status(params.get("short_trial_status", "unknown"))
        return Verdict(
            status,
            f"{run.drug} taken for only {days} consecutive days (needs {min_days}); "
            "no intolerance documented.",
            run.refs,
            details,
        )
    if trials.any_run is not None:
        status = Status(params.get("short_trial_status", "unknown"))
        return Verdict(
            status,
            _at_most(trials.any_run, ctx.order_date, min_days) + "; no intolerance documented.",
            trials.any_run.refs,
            details,
        )
    return Verdict(UNKNOWN, f"No trial of a {label} is documented.", (), details)


@_check(
    "first-line-step",
    (MET, NOT_MET, UNKNOWN),
    {
        "first_line": ParamSpec("valueset"),
        "min_days": ParamSpec("int"),
        "alternatives": ParamSpec("valuesets"),
        "contraindication_valuesets": ParamSpec("valuesets"),
        "alcohol_units_per_week_over": ParamSpec("number", required=False),
    },
    # "Trial too short and no intolerance" rests on the whole history and allergy list.
    reads=(*_TRIAL_READS, "Condition"),
    absence=(NOT_MET,),
)
def first_line_step(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """(a) a `min_days` trial of the first-line drug; or (b) intolerance / contraindication
    to it AND a `min_days` trial of one alternative (or intolerance to them).

    Met only on a trial length known to reach `min_days`. A first-line trial known to be
    shorter, with no intolerance, is `not-met`; a trial whose length the chart does not
    give (or could reach the minimum only through a part of unknown length) is `unknown`,
    asking for the trial dates and dose; no first-line history (and no intolerance) is
    `unknown`. Contraindication: an intolerance record to the drug, a Condition in
    `contraindication_valuesets`, or alcohol use above the weekly limit (Appendix D:
    social drinking and child-bearing potential do not count).
    """
    first = str(params["first_line"])
    min_days = int(params["min_days"])
    alternatives = _names(params, "alternatives")
    on = ctx.order_date
    trials = _trials(facts, frozenset({first}), on, min_days)
    run = trials.best
    days = trials.days
    details: dict[str, Any] = {"first_line_days": days, "min_days": min_days}
    if run is not None:
        details["first_line_certainty"] = run.certainty
    if run is not None and trials.met(min_days):
        return Verdict(MET, "(a) " + _taken(run), run.refs, details)

    reasons: list[str] = []
    refs: list[str] = []
    for intol in _intolerances(facts, frozenset({first})):
        reasons.append(f"{intol.kind} to {intol.substance}")
        refs += intol.refs
    for cond in _matching(facts.diagnoses, _names(params, "contraindication_valuesets")):
        reasons.append(f"{cond.display or cond.code}")
        refs += cond.refs
    alcohol_limit = _num(params, "alcohol_units_per_week_over")
    alcohol = _latest(facts.measurements, "alcohol-units-per-week", on)
    if alcohol_limit is not None and alcohol is not None and alcohol.value is not None:
        details["alcohol_units_per_week"] = alcohol.value
        if alcohol.value > alcohol_limit:
            reasons.append(f"alcohol {_fmt(alcohol.value)} units/week (> {_fmt(alcohol_limit)})")
            refs.append(alcohol.ref)
    first_runs = [r for r in (run, trials.open_run) if r is not None]
    refs = [*(ref for r in first_runs for ref in r.refs), *refs]

    if reasons:
        details["first_line_contraindication"] = reasons
        why = "; ".join(reasons)
        alt = _trials(facts, alternatives, on, min_days)
        alt_run = alt.best
        details["alternative_days"] = alt.days
        if alt_run is not None and alt.met(min_days):
            return Verdict(
                MET,
                f"(b) {first} not tolerated or contraindicated ({why}); " + _taken(alt_run),
                _dedupe([*refs, *alt_run.refs]),
                details,
            )
        alt_intol = _intolerances(facts, alternatives)
        if alt_intol:
            return Verdict(
                MET,
                f"(b) {first} not tolerated or contraindicated ({why}); "
                f"{alt_intol[0].kind} to {alt_intol[0].substance} documented.",
                _dedupe([*refs, *(r for i in alt_intol for r in i.refs)]),
                details,
            )
        if alt.open_run is not None:
            details["trial_length_unknown"] = True
            return Verdict(
                UNKNOWN,
                f"(b) {first} not tolerated or contraindicated ({why}); "
                + _open_reason(alt.open_run),
                _dedupe([*refs, *alt.open_run.refs]),
                details,
                documentation=_trial_documentation(alt.open_run.drug),
            )
        if alt_run is not None:
            return Verdict(
                NOT_MET,
                f"(b) {first} not tolerated or contraindicated ({why}), but {alt_run.drug} "
                f"was taken for only {alt.days} consecutive days (needs {min_days}).",
                _dedupe([*refs, *alt_run.refs]),
                details,
            )
        if alt.any_run is not None:
            return Verdict(
                NOT_MET,
                f"(b) {first} not tolerated or contraindicated ({why}), but "
                + _at_most(alt.any_run, on, min_days)
                + ".",
                _dedupe([*refs, *alt.any_run.refs]),
                details,
            )
        return Verdict(
            UNKNOWN,
            f"(b) {first} not tolerated or contraindicated ({why}); no trial of a "
            "conventional alternative is documented.",
            _dedupe(refs),
            details,
        )

    if trials.open_run is not None:
        details["trial_length_unknown"] = True
        return Verdict(
            UNKNOWN,
            "(a) " + _open_reason(trials.open_run),
            _dedupe(refs),
            details,
            documentation=_trial_documentation(first),
        )
    if run is not None:
        return Verdict(
            NOT_MET,
            f"(a) {run.drug} taken for only {days} consecutive days (needs {min_days}); "
            "no intolerance or contraindication documented.",
            _dedupe(refs),
            details,
        )
    if trials.any_run is not None:
        return Verdict(
            NOT_MET,
            "(a) "
            + _at_most(trials.any_run, on, min_days)
            + "; no intolerance or contraindication documented.",
            _dedupe([*trials.any_run.refs, *refs]),
            details,
        )
    return Verdict(
        UNKNOWN,
        f"No {first} trial, intolerance or contraindication is documented.",
        _dedupe(refs),
        details,
    )


# --------------------------------------------------------------------------- scores


@_check("score-documented", (MET, UNKNOWN), {"kinds": ParamSpec("valuesets")})
def score_documented(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """A score of one of `kinds` dated on or before the order date (latest one shown,
    with its band). Observations without a date cannot be placed and do not count. A score
    sent as text that is not one number (a range, ">20", "high"), or a value outside the
    score's scale (a CDAI of 290), is not read; the reason names it so the prescriber knows
    which record to correct."""
    kinds = list(params["kinds"])
    found = [m for kind in kinds if (m := _latest(facts.measurements, kind, ctx.order_date))]
    if not found:
        unread = [
            m
            for m in facts.measurements
            if m.kind in kinds
            and m.value is None
            and m.note
            and (m.effective is None or m.effective <= ctx.order_date)
        ]
        why = "".join(
            f" {m.kind.upper()} in {m.ref}: {(m.note or '').split(';')[0]}." for m in unread
        )
        return Verdict(
            UNKNOWN,
            f"No {' or '.join(k.upper() for k in kinds)} score dated on or before the order."
            + (f" A score is on file but could not be read:{why}" if why else ""),
            tuple(dict.fromkeys(m.ref for m in unread)),
        )
    latest = max(found, key=lambda m: m.effective or date.min)
    assert latest.value is not None
    band = band_of(latest.value, ctx.scales.get(latest.kind, ()))
    return Verdict(
        MET,
        f"{_band_text(latest.kind, latest.value, ctx.scales)} on {latest.effective}.",
        (latest.ref,),
        {
            "kind": latest.kind,
            "value": latest.value,
            "band": band[1] if band else None,
            "date": latest.effective.isoformat() if latest.effective else None,
        },
    )


def _compare_bands(
    ctx: EvalContext, base: Measurement, follow: Measurement
) -> tuple[int, int] | None:
    assert base.value is not None
    assert follow.value is not None
    b = band_of(base.value, ctx.scales.get(base.kind, ()))
    f = band_of(follow.value, ctx.scales.get(follow.kind, ()))
    if b is None or f is None:
        return None
    return b[0], f[0]


@_check(
    "score-improved",
    (MET, NOT_MET, UNKNOWN),
    {"primary": ParamSpec("valueset"), "alternative": ParamSpec("valueset")},
)
def score_improved(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """(i) the latest score is lower than the baseline, the latest score on or before the
    first date of the drug: `primary` first, else `alternative`; (ii) with no re-assessment
    of `primary`, an `alternative` score in the same or a better band than the baseline
    `primary` (bands: Appendices G / H). An equal or higher score is `not-met`."""
    primary = str(params["primary"])
    alternative = str(params["alternative"])
    start = ctx.first_drug_date
    if start is None:
        return Verdict(
            UNKNOWN,
            "The start date of the current therapy is unknown, so no baseline score can be "
            "identified.",
        )
    ms = facts.measurements
    on = ctx.order_date
    base = {k: _latest(ms, k, start) for k in (primary, alternative)}
    follow = {k: _latest(ms, k, on, after=start) for k in (primary, alternative)}

    def verdict_by_value(kind: str) -> Verdict:
        b, f = base[kind], follow[kind]
        assert b is not None
        assert f is not None
        assert b.value is not None
        assert f.value is not None
        details = {"kind": kind, "baseline": b.value, "latest": f.value, "rule": "i"}
        text = (
            f"{_band_text(kind, f.value, ctx.scales)} on {f.effective} vs baseline "
            f"{_band_text(kind, b.value, ctx.scales)} on {b.effective}"
        )
        if f.value < b.value - _EPSILON:
            return Verdict(MET, f"Decrease: {text}.", (b.ref, f.ref), details)
        return Verdict(NOT_MET, f"No decrease: {text}.", (b.ref, f.ref), details)

    for kind in (primary, alternative):
        if base[kind] is not None and follow[kind] is not None:
            return verdict_by_value(kind)
    for b_kind, f_kind in ((primary, alternative), (alternative, primary)):
        b, f = base[b_kind], follow[f_kind]
        if b is None or f is None:
            continue
        bands = _compare_bands(ctx, b, f)
        if bands is None:
            continue
        assert b.value is not None
        assert f.value is not None
        text = (
            f"{_band_text(f_kind, f.value, ctx.scales)} on {f.effective} vs baseline "
            f"{_band_text(b_kind, b.value, ctx.scales)} on {b.effective}"
        )
        details = {
            "kind": f_kind,
            "baseline_kind": b_kind,
            "baseline": b.value,
            "latest": f.value,
            "rule": "ii",
        }
        if bands[1] <= bands[0]:
            return Verdict(
                MET, f"Same or better disease activity: {text}.", (b.ref, f.ref), details
            )
        return Verdict(NOT_MET, f"Worse disease activity: {text}.", (b.ref, f.ref), details)
    if not any(base.values()):
        return Verdict(
            UNKNOWN,
            f"No {primary.upper()} or {alternative.upper()} score on or before the start of "
            f"therapy ({start}) to serve as baseline.",
            tuple(m.ref for m in follow.values() if m),
        )
    return Verdict(
        UNKNOWN,
        f"No {primary.upper()} or {alternative.upper()} re-assessment since therapy "
        f"started ({start}).",
        tuple(m.ref for m in base.values() if m),
    )


_IMPROVED = frozenset({"improved", "improving", "better", "responding", "response", "resolved"})
_NOT_IMPROVED = frozenset(
    {"worse", "worsened", "worsening", "unchanged", "no-response", "stable-disease", "no change"}
)


@_check("positive-response", (MET, NOT_MET, UNKNOWN), {"kind": ParamSpec("valueset")})
def positive_response(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """The latest treatment-response assessment since the drug was started (or, when
    the start is unknown, any on or before the order date) says improved: `met`;
    worse or unchanged: `not-met`; none: `unknown`."""
    kind = str(params["kind"])
    found = [
        m
        for m in facts.measurements
        if m.kind == kind
        and m.effective is not None
        and m.effective <= ctx.order_date
        and (ctx.first_drug_date is None or m.effective >= ctx.first_drug_date)
        and (m.interpretation or "").lower() in _IMPROVED | _NOT_IMPROVED
    ]
    if not found:
        return Verdict(UNKNOWN, "No assessment of the response to therapy is documented.")
    latest = max(found, key=lambda m: m.effective or date.min)
    interp = (latest.interpretation or "").lower()
    if interp in _IMPROVED:
        return Verdict(
            MET, f"Response to therapy documented as {interp} on {latest.effective}.", (latest.ref,)
        )
    return Verdict(
        NOT_MET, f"Response to therapy documented as {interp} on {latest.effective}.", (latest.ref,)
    )


# --------------------------------------------------------------------------- concurrent


_DISPENSE_STATUSES = frozenset(
    {"completed", "in-progress", "preparation", "on-hold", "unknown", "active"}
)
"""Dispense statuses that hand (or are handing) the drug over (a claim or explanation of
benefit line is "active"); cancelled, declined, stopped and entered-in-error ones say
nothing about current therapy."""
_SUPPLY_RECORDS = frozenset(
    {"MedicationDispense", "MedicationAdministration", "Claim", "ExplanationOfBenefit"}
)
"""Records of a supply handed over or a dose given (start = the day, `days_supply`), read
by their dates. An administration (a clinic infusion or injection) has no days supply: it
lasts one usual dosing interval of its drug."""


@dataclass(frozen=True)
class _DispenseRule:
    grace_days: int
    intervals: Mapping[str, int]
    default_interval_days: int
    max_supply_days: int


def _dispense_rule(params: Mapping[str, Any]) -> _DispenseRule | None:
    intervals = params.get("dispense_intervals")
    if not isinstance(intervals, Mapping):
        return None
    return _DispenseRule(
        grace_days=int(params.get("dispense_grace_days", 0)),
        intervals={str(k): int(v) for k, v in intervals.items()},
        default_interval_days=int(params.get("dispense_default_interval_days", 28)),
        max_supply_days=int(params.get("dispense_max_supply_days", 90)),
    )


def _dispense_currency(
    rec: MedicationRecord, rule: _DispenseRule, on: date
) -> tuple[Status | None, str]:
    """Whether a dispense is current therapy on the order date `on` (NOT_MET), may be
    (UNKNOWN), or is history only (None), with the words why.

    A dispense covers its days supply, and never less than one usual dosing interval of
    the drug (one pen of adalimumab lasts 14 days, an infliximab infusion 8 weeks, whatever
    daysSupply says); a supply that ran out `grace_days` or fewer days before the order is
    still current (the allowed gap between fills). Without a days supply, a dispense within
    one dosing interval (+ grace) is current; within the longest usual fill
    (`max_supply_days` + grace) it may be (unknown); older ones are history. A dispense of
    status unknown, or of an unidentified drug, is never more than unknown."""
    handed = rec.start
    verb = "given" if rec.resource_type == "MedicationAdministration" else "dispensed"
    if handed is None:
        return UNKNOWN, f"{verb}, date not stated"
    when = f"{verb} {handed.isoformat()}"
    if handed > on:
        return (UNKNOWN if rec.status == "unknown" else NOT_MET), when
    interval = (
        rule.default_interval_days
        if rec.unidentified
        else rule.intervals.get(rec.drug, rule.default_interval_days)
    )
    since = (on - handed).days  # 0 = handed over on the order date
    if rec.days_supply is not None:
        covered = max(round(rec.days_supply), interval, 1)
        text = f"{when}, {_fmt(rec.days_supply)} days' supply"
        current = since <= covered - 1 + rule.grace_days
        status = NOT_MET if current else None
    else:
        text = when if verb == "given" else f"{when}, days supply not stated"
        if since <= interval - 1 + rule.grace_days:
            status = NOT_MET
        elif since <= rule.max_supply_days - 1 + rule.grace_days:
            status = UNKNOWN
        else:
            status = None
    if status is NOT_MET and (rec.unidentified or rec.status == "unknown"):
        status = UNKNOWN
    return status, text


def _completed_through(rec: MedicationRecord, on: date) -> bool:
    """A completed order or statement whose own dates reach the order date (an order's
    supply duration x fills, a statement's effective period): "completed" says the course
    is over, its dates say it is not. A stopped one was halted early and is not current."""
    return (
        rec.status.lower() == "completed"
        and rec.start is not None
        and rec.end is not None
        and rec.start <= on <= rec.end
    )


@_check(
    "no-concurrent-therapy",
    (MET, NOT_MET, UNKNOWN),
    {
        "valuesets": ParamSpec("valuesets"),
        "label_valuesets": ParamSpec("valuesets", required=False),
        "statuses": ParamSpec("strs"),
        "unknown_statuses": ParamSpec("strs", required=False),
        "record_types": ParamSpec("strs", required=False),
        "duplicate_drafts": ParamSpec("bool", required=False),
        "unidentified": ParamSpec("bool", required=False),
        "dispense_intervals": ParamSpec("int_map", required=False),
        "dispense_default_interval_days": ParamSpec("int", required=False),
        "dispense_grace_days": ParamSpec("int", required=False),
        "dispense_max_supply_days": ParamSpec("int", required=False),
        "switch_from": ParamSpec("valuesets", required=False),
    },
    # MedicationAdministration is read when the EHR sends it, but its absence is no gap:
    # clinic-given biologics are ordered too, and many EHRs do not share administrations.
    reads=("MedicationRequest", "MedicationStatement", "MedicationDispense"),
    absence=(MET,),
)
def no_concurrent_therapy(
    params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext
) -> Verdict:
    """No record of a drug in the value sets with one of `statuses` (e.g. active,
    on-hold, draft), and no other draft order for one. Stopped, completed, cancelled or
    entered-in-error orders and statements do not count; the status decides, not the end
    date. A record of `unknown_statuses` (e.g. "unknown") may be current: unknown.

    With `dispense_intervals` (usual dosing interval in days per drug), dispenses,
    administrations and claims lines (records of type MedicationDispense,
    MedicationAdministration, Claim, ExplanationOfBenefit: start = the day handed over /
    given / served, `days_supply`) count as evidence of current therapy by
    their dates (see `_dispense_currency`); without it they are history only.

    With `unidentified`, a record whose drug cannot be told (a Medication that was not sent
    and could not be fetched) that may be current makes the answer unknown, unless a known
    conflict already makes it not-met: the prescriber confirms it is not a biologic / JAK
    inhibitor.

    With `duplicate_drafts`, another draft order for the evaluated drug itself (a second
    order of it signed together with this one) conflicts too: duplicate therapy. The
    drug's own active records never do (they are the therapy being continued).

    With `switch_from` (value sets), records of a drug the new one replaces are no conflict
    (another draft order of it still is): they are listed in `details["switch_from"]` and
    the reason tells the prescriber to stop that drug when the new one starts, at the time
    of its next dose.
    """
    wanted = _names(params, "valuesets")
    duplicates = bool(params.get("duplicate_drafts", False))
    labels = _names(params, "label_valuesets")
    statuses = _names(params, "statuses")
    unknown_statuses = _names(params, "unknown_statuses")
    record_types = _names(params, "record_types")
    check_unidentified = bool(params.get("unidentified", False))
    rule = _dispense_rule(params)
    replaced = _names(params, "switch_from")
    switching: list[dict[str, Any]] = []
    conflicts: list[dict[str, Any]] = []
    uncertain: list[dict[str, Any]] = []
    for rec in facts.medications:
        status = rec.status.lower()
        if rec.unidentified:
            if not check_unidentified:
                continue
            entry: dict[str, Any] = {
                "drug": rec.drug,
                "ref": rec.ref,
                "draft": rec.is_draft_order,
                "status": rec.status,
                "unidentified": True,
            }
            if rec.resource_type in _SUPPLY_RECORDS and not rec.is_draft_order:
                if rule is None or status not in _DISPENSE_STATUSES:
                    continue
                verdict, when = _dispense_currency(rec, rule, ctx.order_date)
                if verdict is None:
                    continue
                entry["dispense"] = when
            elif not (rec.is_draft_order or status in statuses | unknown_statuses):
                continue
            uncertain.append(entry)
            continue
        own_drug = ctx.drug_valueset in rec.valuesets
        if own_drug and duplicates and rec.is_draft_order:
            conflicts.append(
                {
                    "drug": rec.drug,
                    "ref": rec.ref,
                    "draft": True,
                    "valueset": ctx.drug_valueset,
                    "status": rec.status,
                    "duplicate": True,
                }
            )
            continue
        if not rec.valuesets & wanted or own_drug:
            continue
        if rec.valuesets & replaced and not rec.is_draft_order:
            if rec.resource_type in _SUPPLY_RECORDS or status in statuses | unknown_statuses:
                switching.append({"drug": rec.drug, "ref": rec.ref, "status": rec.status})
            continue
        specific = sorted(rec.valuesets & labels) or sorted(rec.valuesets & wanted)
        entry = {
            "drug": rec.drug,
            "ref": rec.ref,
            "draft": rec.is_draft_order,
            "valueset": specific[0],
            "status": rec.status,
        }
        if rec.resource_type in _SUPPLY_RECORDS and not rec.is_draft_order:
            if rule is None or status not in _DISPENSE_STATUSES:
                continue
            verdict, when = _dispense_currency(rec, rule, ctx.order_date)
            entry["dispense"] = when
            if verdict is NOT_MET:
                conflicts.append(entry)
            elif verdict is UNKNOWN:
                uncertain.append(entry)
            continue
        if record_types and rec.resource_type not in record_types and not rec.is_draft_order:
            continue
        if rec.is_draft_order or status in statuses:
            conflicts.append(entry)
        elif status in unknown_statuses:
            uncertain.append(entry)
        elif _completed_through(rec, ctx.order_date):
            entry["through"] = f"{rec.status}, its dates run to {rec.end}"
            uncertain.append(entry)

    def state(conflict: Mapping[str, Any]) -> str:
        if conflict.get("duplicate"):
            return "another draft order"
        if conflict.get("dispense"):
            return str(conflict["dispense"])
        if conflict.get("through"):
            return str(conflict["through"])
        return "draft order" if conflict["draft"] else f"status {conflict['status']}"

    if conflicts:
        names = ", ".join(f"{c['drug']} ({state(c)})" for c in _strongest_per_drug(conflicts))
        return _with_switch(
            switching,
            Verdict(
                NOT_MET,
                f"Combination with {names}: additive immunosuppression and serious infection risk.",
                _dedupe(c["ref"] for c in conflicts),
                {"conflicts": conflicts, "uncertain": uncertain},
            ),
        )
    if uncertain:
        unknown_drug = [c for c in uncertain if c.get("unidentified")]
        known = [c for c in uncertain if not c.get("unidentified")]
        parts = []
        asks = []
        if unknown_drug:
            records = ", ".join(f"{c['ref']} ({state(c)})" for c in unknown_drug)
            parts.append(
                f"the drug of {records} could not be identified (its Medication was not sent "
                "and could not be fetched, or it carries only codes this service does not know)"
            )
            asks.append(
                "the name of the unidentified medication, and confirmation that it is not a "
                "biologic DMARD or JAK inhibitor"
            )
        if known:
            parts.append(
                ", ".join(
                    f"{c['drug']} may still be current ({state(c)}, {c['ref']})"
                    for c in _strongest_per_drug(known)
                )
            )
            drugs = sorted({str(c["drug"]) for c in known})
            asks.append(
                f"confirmation that {' and '.join(drugs)} has been discontinued (stop date)"
            )
        return _with_switch(
            switching,
            Verdict(
                UNKNOWN,
                "A current biologic DMARD or JAK inhibitor cannot be ruled out: "
                + "; ".join(parts)
                + ".",
                _dedupe(c["ref"] for c in uncertain),
                {"conflicts": [], "uncertain": uncertain},
                documentation=_sentence(asks),
            ),
        )
    return _with_switch(
        switching,
        Verdict(
            MET,
            "No current biologic DMARD or JAK inhibitor found.",
            (),
            {"conflicts": [], "uncertain": []},
        ),
    )


def _evidence_rank(conflict: Mapping[str, Any]) -> int:
    """How strongly a record shows the drug is current: a draft order of this call, then a
    record whose status says so, then a dispense whose supply still runs."""
    if conflict.get("draft") or conflict.get("duplicate"):
        return 0
    return 2 if conflict.get("dispense") else 1


def _strongest_per_drug(conflicts: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One conflict per drug, the one with the strongest evidence (the reason names each
    drug once; every record stays in the details and the evidence)."""
    best: dict[str, Mapping[str, Any]] = {}
    for conflict in conflicts:
        drug = str(conflict["drug"])
        if drug not in best or _evidence_rank(conflict) < _evidence_rank(best[drug]):
            best[drug] = conflict
    return list(best.values())


def _with_switch(switching: Sequence[Mapping[str, Any]], verdict: Verdict) -> Verdict:
    """`verdict` with the records of a drug being replaced (`switch_from`) named: the
    prescriber stops that drug when the new one starts, at the time of its next dose."""
    if not switching:
        return verdict
    drugs = sorted({str(c["drug"]) for c in switching})
    refs = ", ".join(str(c["ref"]) for c in switching)
    note = (
        f" {' and '.join(drugs)} ({refs}) is the drug being replaced, not a combination: "
        f"stop {' and '.join(drugs)} when the new drug starts (at the time of its next dose)."
    )
    return Verdict(
        verdict.status,
        verdict.reason + note,
        verdict.evidence,
        {**verdict.details, "switch_from": [dict(c) for c in switching]},
        verdict.documentation,
    )


# --------------------------------------------------------------------------- safety


@_check(
    "hypersensitivity",
    (MET, NOT_MET, UNKNOWN),
    {"valuesets": ParamSpec("valuesets")},
    reads=("AllergyIntolerance",),
    absence=(MET,),
)
def hypersensitivity(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """No recorded allergy / intolerance to a substance in the value sets (the drug, its
    source proteins). The absence of such a record is `met`: allergies are recorded
    when known, and asking for a negative would stop every request."""
    found = _intolerances(facts, _names(params, "valuesets"))
    if found:
        what = ", ".join(sorted({f"{i.kind} to {i.substance}" for i in found}))
        return Verdict(
            NOT_MET,
            f"Contraindicated: documented {what}.",
            _dedupe(r for i in found for r in i.refs),
            {"substances": sorted({i.substance for i in found})},
        )
    return Verdict(MET, "No hypersensitivity to the product or its source proteins recorded.")


@_check(
    "care-setting",
    (MET, NOT_MET, UNKNOWN),
    {
        "authorized_settings": ParamSpec("strs"),
        "regimen_mg_per_day": ParamSpec("number"),
        "regimen_max_days": ParamSpec("int"),
    },
)
def care_setting(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """Use authorized only in `authorized_settings` (the COVID-19 EUA: hospitalized).

    A documented ambulatory encounter: `not-met`. No encounter in the request, an
    encounter that could not be read, an emergency or unrecognised setting: `unknown`:
    the setting is not known, and the prescriber is asked to confirm that the patient is
    hospitalized (a call without an encounter is not evidence of outpatient use: EHRs
    and the CDS Hooks sandbox leave `encounterId` out for inpatients too). In the
    authorized setting the result is informational and the order is checked against the
    EUA regimen (mg/day and number of days): within it `met`, above it `not-met`, dose
    not derivable `unknown`.
    """
    allowed = _names(params, "authorized_settings")
    enc = facts.encounter
    mg = float(params["regimen_mg_per_day"])
    max_days = int(params["regimen_max_days"])
    details: dict[str, Any] = {
        "setting": enc.setting if enc else None,
        "regimen_mg_per_day": mg,
        "regimen_max_days": max_days,
        "informational": False,
    }
    if enc is not None and enc.setting == "ambulatory":
        return Verdict(
            NOT_MET,
            "Ordered in an ambulatory encounter: the EUA authorizes use only in "
            "hospitalized patients.",
            (enc.ref,),
            details,
        )
    if enc is None or enc.setting not in allowed:
        if enc is None:
            known = "No encounter was sent with the order, so the care setting is not known"
        elif not enc.found:
            known = "The encounter could not be read from the EHR, so the care setting is not known"
        elif enc.note is not None:
            known = f"{enc.note}, so the care setting is not known"
        else:
            known = f"The encounter setting is {enc.setting}; hospital admission is not documented"
        details["confirm_setting"] = True
        return Verdict(
            UNKNOWN,
            f"{known}. Confirm the patient is hospitalized: the EUA authorizes "
            f"{ctx.drug_label or ctx.drug_valueset} for "
            "COVID-19 only in hospitalized patients; outpatient use is not authorized.",
            (enc.ref,) if enc else (),
            details,
            documentation="Documentation that the patient is hospitalized.",
        )
    details["informational"] = True
    dose = facts.order.dose
    evidence = (enc.ref, facts.order.ref)
    details["ordered_mg_per_day"] = dose.mg_per_day
    details["ordered_days"] = dose.duration_days
    if dose.mg_per_day is None:
        return Verdict(
            UNKNOWN,
            "Inpatient use under the EUA; the ordered daily dose cannot be derived.",
            evidence,
            details,
        )
    problems = []
    if not _le(dose.mg_per_day, mg):
        problems.append(f"{_fmt(dose.mg_per_day)} mg/day exceeds the EUA {_fmt(mg)} mg daily")
    if dose.duration_days is not None and dose.duration_days > max_days:
        problems.append(f"{dose.duration_days} days exceeds the EUA {max_days} days")
    if problems:
        return Verdict(NOT_MET, "Inpatient use: " + "; ".join(problems) + ".", evidence, details)
    length = f"{dose.duration_days} days" if dose.duration_days else "duration not stated"
    return Verdict(
        MET,
        f"Inpatient use under the EUA ({_fmt(mg)} mg SC daily for {max_days} days): "
        f"{_fmt(dose.mg_per_day)} mg/day, {length}.",
        evidence,
        details,
    )


# --------------------------------------------------------------------------- pathway


@_check(
    "currently-receiving",
    (MET, UNKNOWN),
    # The engine takes the continued pathway only when such a record exists.
    reachable=lambda p: frozenset({MET}),
)
def currently_receiving(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """The patient currently receives the drug: the records that put the request on the
    continued pathway (active / on-hold, or ended within the window)."""
    records = ctx.current_drug_records
    if not records:
        return Verdict(UNKNOWN, "No current record of the medication is on file.")
    rec = records[0]
    if rec.status in ("active", "on-hold"):
        text = f"{rec.resource_type} {rec.status}"
    else:
        text = f"{rec.resource_type} {rec.status}, ended {rec.end}"
    return Verdict(MET, f"Currently receiving {rec.drug}: {text}.", _dedupe(r.ref for r in records))


@_check("refer-to-policy", (UNKNOWN,), {"policies": ParamSpec("strs"), "reason": ParamSpec("str")})
def refer_to_policy(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """Not decided here: the request goes to another policy (off-label, recent label
    change). Always `unknown`, with the policies to refer to in `details`."""
    policies = list(params["policies"])
    return Verdict(UNKNOWN, str(params["reason"]), (), {"policies": policies})


# The dose checks live in their own module and register through `_check` too.

CHECKS: Mapping[str, CheckDef] = MappingProxyType(_REGISTRY)
"""Every check by name."""


def run_check(
    name: str, params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext
) -> Verdict:
    return CHECKS[name].fn(params, facts, ctx)


__all__ = [
    "CHECKS",
    "AcrScore",
    "Band",
    "CheckDef",
    "EvalContext",
    "ParamSpec",
    "Verdict",
    "acr_2010_score",
    "age_on",
    "appendix_e_syringes",
    "band_of",
    "months_before",
    "run_check",
]


# The check kinds of the other modules register themselves into `CHECKS` on import.
from cds_service.policy import checks_combinators, checks_episodes, checks_labs, checks_records  # noqa: E402, F401
