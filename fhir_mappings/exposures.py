"""Medication exposure: how long the chart shows that a patient took each drug.

Policy-neutral: nothing here knows a drug, a policy or a criterion. `medications.history`
finds the records of value-set drugs (identity, status); this module says, for each
record, from which day and for how long it shows exposure and how sure that length is
(`Measured`), and joins the records of one ingredient into runs (`therapy_runs`).

Dates are days, both ends counted: a 90-day supply handed over on Jan 1 covers Jan 1 to
Mar 31. How sure a length is (`facts.Certainty`): "documented" when a record states it,
"estimated" when it is worked out, "unknown" when nothing in the record says how long.

One record:
- MedicationRequest, from `authoredOn`:
  `dispenseRequest.expectedSupplyDuration` x (1 + `numberOfRepeatsAllowed`): documented;
  else `dispenseRequest.quantity` over the daily use of the sig (x the same fills), when
  both are in one unit or mg against a known strength (`dosing.days_from_quantity`):
  estimated, and open-ended when a dose or frequency range was counted at its top;
  else unknown. Refills count as prescribed (an order with refills documents the course
  the prescriber ordered); dispenses of the order add their own ranges, they never
  shorten the order's (the chart's fill list may be partial, and more evidence must never
  make a trial shorter). `dispenseRequest.validityPeriod` is how long the prescription
  may be filled, never how long the drug was taken: it is not read at all.
  A stopped order (halted before its course ran out, on a day the order does not
  state: Epic writes discontinued orders so) shows its first day and an unknown length
  (`halted`): its supply is an upper bound, never the length taken; its dispenses, a
  renewal or a statement show the rest. Completed, active and on-hold orders keep their
  length. A later order renews a stopped one only when written before its supply (+14
  days) ran out.
- MedicationDispense, from `whenHandedOver` (else `whenPrepared`): `daysSupply`
  (documented; a bare number is days), else its quantity over its own sig (estimated), else unknown.
- MedicationStatement: `effectivePeriod` start..end (documented); an open end on an
  active / on-hold statement runs to the order date (the patient is taking it now:
  documented); an open end on any other status proves the start day and an unknown
  length; `effectiveDateTime` alone proves a day the drug was taken (it may have begun
  before: a reconciliation date, not a start) and an unknown length.
- Claim / ExplanationOfBenefit line (a pharmacy or medical claim whose
  `item.productOrService` names a value-set drug by an NDC, HCPCS or RxNorm coding -
  its code, or that coding's display; a CPT or SNOMED CT line naming a drug is a service,
  e.g. a drug level test), from
  `item.servicedDate` / `servicedPeriod.start` (else `billablePeriod.start`): the days
  supply of the claim (CARIN Blue Button `supportingInfo` category "dayssupply", the
  line's own or the only line's) is documented, else unknown. Only claims for payment
  count (`use` "claim"): cancelled, draft, entered-in-error, pre-authorization and
  predetermination requests and rejected ones (`outcome` "error") are no records.

A record whose length is unknown shows its first day and is *open-ended*: the exposure
may have gone on up to the order date. It is never one day of therapy (that would make
a trial look short) and never the validity window (that would make it look long).

Runs, per ingredient (the engine asks for value sets; a run carries its drug's):
- records sorted by start; the order date cuts every range (a supply not used up yet
  proves nothing beyond it) and records starting after it are left out;
- two records join when the days between them (covered by neither) are 14 or fewer;
  the allowed gap counts in the run's days, as for any consecutive-therapy check;
- renewals: a MedicationRequest of unknown length is continued by any later
  MedicationRequest of the same ingredient authored within `RENEWAL_MAX_SPACING_DAYS`
  (400: a yearly renewal, with a month's grace for the visit) of it. Read as a clinical
  pharmacist reading a prior-authorization chart: a prescriber who re-orders a chronic
  drug, order after order (Synthea marks each earlier order "stopped" when it writes
  the renewal; EHRs mark it stopped, completed or leave it active), documents therapy
  from the first order to the last renewal; the run's days are estimated, and the last
  renewal's own length, when unknown, leaves the run open-ended. Limits: only an order
  of unknown length is renewed (one whose supply is known ran out when it says: the
  14-day rule applies to it), only by an order (a dispense, statement or claim joins by
  the 14-day rule), never across an order on hold or stopped with a stated reason
  (`statusReason`: stopped for a cause, e.g. an adverse effect, so a later order is a
  restart), and never over the spacing limit. Any earlier order of unknown length may be
  the one renewed, not only the last record: a known supply, a dispense or a statement
  written in between does not split the chain. Cancelled (never dispensed), draft,
  entered-in-error and proposal orders are no exposure at all.
- Every run is kept (the engine needs the longest known one and whether an open-ended
  one could be longer); a run's certainty is "estimated" when any of its lengths is
  worked out or rests on renewals, "documented" when all are stated, "unknown" when none
  of its records says how long.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from fhir_mappings.dosing import (
    Strength,
    days_from_quantity,
    days_supplied,
    strength_of,
    supply_days,
)
from fhir_mappings.facts import (
    Certainty,
    ExposureSource,
    MedicationRecord,
    MedicationResourceType,
    TherapyRun,
)
from fhir_mappings.fields import (
    Json,
    as_list,
    codings,
    get_map,
    get_num,
    get_str,
    maps,
    parse_date,
    status_code,
    texts,
    to_number,
)

RUN_GAP_DAYS: Final = 14
RENEWAL_MAX_SPACING_DAYS: Final = 400
_ROUND: Final = 6

ESTIMATED_FROM_QUANTITY: Final = "the quantity and dose ordered or dispensed"
ESTIMATED_FROM_RENEWALS: Final = "renewed orders"


@dataclass(frozen=True)
class Measured:
    """What one record shows: from `start`, through `end` (None when its length is
    unknown), how sure, and in plain words how the length was found."""

    start: date | None
    end: date | None
    certainty: Certainty
    basis: str
    ongoing: bool = False
    """Runs to the order date (an active statement with no end)."""
    at_least: bool = False
    """The known length is a lower bound (a dose range counted at its top)."""
    estimated_from: tuple[str, ...] = ()
    supply_end: date | None = None
    """A stopped order's last day of supply: the most it can show (see `halted`)."""
    began_by: bool = False
    """`start` is a day the drug was taken, not the day it began (a statement with one
    date): it may have begun earlier."""

    @property
    def open_ended(self) -> bool:
        return (self.end is None and not self.ongoing) or self.at_least


def _days_text(days: int) -> str:
    return f"{days} day" + ("" if days == 1 else "s")


def _fills(repeats: int) -> str:
    return "" if repeats == 0 else f", {repeats} refill" + ("" if repeats == 1 else "s")


# --------------------------------------------------------------------------- one record


def _product_names(resource: Json, medication: Json | None) -> list[str]:
    names = list(texts(get_map(resource, "medicationCodeableConcept")))
    display = get_str(get_map(resource, "medicationReference"), "display")
    if display:
        names.append(display)
    if medication is not None:
        names += texts(get_map(medication, "code"))
    return names


def _strength(resource: Json, medication: Json | None) -> Strength | None:
    ingredients = list(maps(medication.get("ingredient"))) if medication is not None else []
    return strength_of(_product_names(resource, medication), ingredients)


def _quantity_length(
    quantity: Json | None, dosages: Sequence[Json], resource: Json, medication: Json | None
) -> tuple[int, bool] | None:
    estimate = days_from_quantity(quantity, dosages, _strength(resource, medication))
    if estimate is None:
        return None
    return max(math.floor(round(estimate.days, _ROUND)), 1), estimate.at_most


def _ending(start: date, days: int) -> date:
    return start + timedelta(days=days - 1)


def supply_ending(start: date, days: float) -> date:
    """The last day a supply of `days` (rounded, at least one) starting on `start` covers."""
    return _ending(start, max(round(days), 1))


def dispense_day(resource: Json) -> date | None:
    """When a dispense was handed over (else prepared)."""
    return parse_date(resource.get("whenHandedOver")) or parse_date(resource.get("whenPrepared"))


def measure_request(resource: Json, medication: Json | None) -> Measured:
    """A MedicationRequest (see the module docstring)."""
    start = parse_date(resource.get("authoredOn"))
    request = get_map(resource, "dispenseRequest")
    repeats = max(int(get_num(request, "numberOfRepeatsAllowed") or 0.0), 0)
    fills = 1 + repeats
    supply = supply_days(get_map(request, "expectedSupplyDuration"))
    if start is None:
        return Measured(None, None, "unknown", "no date ordered")
    if supply is not None:
        days = max(round(supply * fills), 1)
        return Measured(
            start,
            _ending(start, days),
            "documented",
            f"expected supply {_days_text(round(supply))}{_fills(repeats)}",
        )
    dosages = list(maps(resource.get("dosageInstruction")))
    quantity = get_map(request, "quantity")
    length = _quantity_length(quantity, dosages, resource, medication)
    if length is not None:
        days, at_most = length
        total = days * fills
        return Measured(
            start,
            _ending(start, total),
            "estimated",
            f"quantity ordered lasts {_days_text(days)} at the dose ordered{_fills(repeats)}",
            at_least=at_most,
            estimated_from=(ESTIMATED_FROM_QUANTITY,),
        )
    why = (
        "a quantity the dose ordered does not tell the length of"
        if quantity is not None
        else "no supply duration or quantity"
    )
    return Measured(start, None, "unknown", why)


def halted(measured: Measured) -> Measured:
    """A stopped order (R4: halted "before all of the administrations occurred"): its
    supply is the most it can show, not what was taken, and the day it was stopped is
    not in the order. Its length is unknown: it proves the day ordered, and a later order
    renews it only when written before its supply (+14 days) ran out (a reorder that
    replaced it); one written after that follows a gap the stopped order cannot cover."""
    if measured.start is None or measured.end is None:
        return measured
    days = (measured.end - measured.start).days + 1
    return Measured(
        measured.start,
        None,
        "unknown",
        f"stopped before the end of the {_days_text(days)} ordered ({measured.basis}), "
        "on a day not stated",
        supply_end=measured.end,
    )


def measure_dispense(resource: Json, medication: Json | None) -> Measured:
    start = dispense_day(resource)
    if start is None:
        return Measured(None, None, "unknown", "no date handed over")
    supply = days_supplied(get_map(resource, "daysSupply"))
    if supply is not None:
        days = max(round(supply), 1)
        return Measured(start, _ending(start, days), "documented", f"days supply {days}")
    dosages = list(maps(resource.get("dosageInstruction")))
    length = _quantity_length(get_map(resource, "quantity"), dosages, resource, medication)
    if length is not None:
        days, at_most = length
        return Measured(
            start,
            _ending(start, days),
            "estimated",
            f"quantity dispensed lasts {_days_text(days)} at the dose",
            at_least=at_most,
            estimated_from=(ESTIMATED_FROM_QUANTITY,),
        )
    return Measured(start, None, "unknown", "no days supply")


def measure_statement(resource: Json, status: str) -> Measured:
    period = get_map(resource, "effectivePeriod")
    if period is not None:
        start = parse_date(period.get("start"))
        end = parse_date(period.get("end"), end=True)
        if start is None:
            return Measured(None, None, "unknown", "no start date")
        if end is not None and end >= start:
            return Measured(start, end, "documented", "effective period")
        if end is not None:
            return Measured(start, None, "unknown", "an effective period ending before it starts")
        if status in {"active", "on-hold"}:
            return Measured(start, None, "documented", f"{status}, no end", ongoing=True)
        return Measured(start, None, "unknown", "an effective period with no end")
    day = parse_date(resource.get("effectiveDateTime"))
    if day is None:
        return Measured(None, None, "unknown", "no date")
    return Measured(day, None, "unknown", "one date, no period", began_by=True)


# --------------------------------------------------------------------------- claims

_CLAIM_SKIPPED: Final = frozenset({"cancelled", "draft", "entered-in-error"})


def _is_days_supply(info: Json) -> bool:
    category = get_map(info, "category")
    words = [code for _, code, _ in codings(category) if code] + texts(category)
    return any(w.replace(" ", "").lower() == "dayssupply" for w in words)


def _days_supply_value(info: Json) -> float | None:
    quantity = get_map(info, "valueQuantity")
    if quantity is not None:
        return get_num(quantity, "value")
    for _, code, _ in codings(get_map(info, "code")):  # some feeds put the number here
        value = to_number(code)
        if value is not None:
            return value
    return None


def _claim_days_supply(claim: Json, item: Json, only_item: bool) -> float | None:
    linked = {to_number(n) for n in as_list(item.get("informationSequence"))}
    for info in maps(claim.get("supportingInfo")):
        if not _is_days_supply(info):
            continue
        if only_item or to_number(info.get("sequence")) in linked:
            value = _days_supply_value(info)
            if value is not None and value > 0:
                return value
    return None


def claim_line_days(claim: Json, item: Json) -> float | None:
    """The whole days of supply a claim line (or its only-line claim) states; None when
    none is stated."""
    supply = _claim_days_supply(claim, item, len(claim_items(claim)) == 1)
    return None if supply is None else float(max(round(supply), 1))


def claim_counts(claim: Json) -> bool:
    """A claim for payment that stands (not cancelled, a draft, entered in error, a
    pre-authorization or predetermination, or rejected)."""
    if (status_code(claim, "status") or "") in _CLAIM_SKIPPED:
        return False
    if (get_str(claim, "use") or "claim") != "claim":
        return False
    return get_str(claim, "outcome") != "error"


def claim_items(claim: Json) -> list[Json]:
    return list(maps(claim.get("item")))


_DRUG_CODE_SYSTEM_OIDS: Final = frozenset(
    {
        "urn:oid:2.16.840.1.113883.6.69",  # NDC
        "urn:oid:2.16.840.1.113883.6.285",  # HCPCS
        "urn:oid:2.16.840.1.113883.6.88",  # RxNorm
    }
)


def _drug_code_system(system: str | None) -> bool:
    if not system:
        return False
    lowered = system.strip().lower()
    return lowered in _DRUG_CODE_SYSTEM_OIDS or any(
        word in lowered for word in ("/ndc", "hcpcs", "rxnorm")
    )


def claim_drug_concept(item: Json) -> Json | None:
    """The codings of a claim line's `productOrService` in a drug code system (NDC,
    HCPCS, RxNorm), as a CodeableConcept; None when it has none. A line billed under
    another system (CPT, SNOMED CT, a revenue code) is a service, not a drug, even when
    its words name one ("methotrexate level")."""
    concept = get_map(item, "productOrService")
    kept = [c for c in maps(concept.get("coding") if concept else None)]
    kept = [c for c in kept if _drug_code_system(get_str(c, "system"))]
    return {"coding": kept} if kept else None


def _period_start(period: Json | None) -> date | None:
    return parse_date(period.get("start")) if period is not None else None


def measure_claim_item(claim: Json, item: Json) -> Measured:
    start = (
        parse_date(item.get("servicedDate"))
        or _period_start(get_map(item, "servicedPeriod"))
        or _period_start(get_map(claim, "billablePeriod"))
    )
    if start is None:
        return Measured(None, None, "unknown", "no date of service")
    supply = claim_line_days(claim, item)
    if supply is not None:
        days = int(supply)
        return Measured(start, _ending(start, days), "documented", f"days supply {days}")
    return Measured(start, None, "unknown", "no days supply")


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Exposure:
    """One record of one drug, measured, that counts as exposure."""

    record: MedicationRecord
    measured: Measured
    renewal_breaks: bool = False
    """An order on hold or stopped with a reason: a later order does not renew it."""


def renewal_breaks(resource: Json, status: str) -> bool:
    if status == "on-hold":
        return True
    return status == "stopped" and get_map(resource, "statusReason") is not None


@dataclass
class _Part:
    exposure: Exposure
    start: date
    end: date
    open_ended: bool

    @property
    def kind(self) -> MedicationResourceType:
        return self.exposure.record.resource_type


@dataclass
class _Run:
    parts: list[_Part]
    start: date
    end: date
    renewed: bool = False

    def add(self, part: _Part) -> None:
        self.parts.append(part)
        self.end = max(self.end, part.end)


def _renewed(earlier: Sequence[_Part], part: _Part) -> _Part | None:
    """The earliest order of unknown length that `part` (an order) renews, among the
    parts before it, whichever run they are in: a record added to a chart then only
    ever joins runs (more evidence never turns a trial shorter), and a dispense or
    statement written between two renewals does not split them."""
    if part.kind != "MedicationRequest":
        return None
    breaks = [p.start for p in earlier if p.exposure.renewal_breaks]
    for p in earlier:
        if (
            p.kind == "MedicationRequest"
            and p.exposure.measured.end is None
            and not p.exposure.renewal_breaks
            and 0 <= (part.start - p.start).days <= RENEWAL_MAX_SPACING_DAYS
            and _within_supply(p.exposure.measured, part.start)
            # an order stopped for a reason (or on hold) after it ends the chain there
            and not any(p.start <= day <= part.start for day in breaks)
        ):
            return p
    return None


def _within_supply(measured: Measured, day: date) -> bool:
    """A stopped order's supply (+ the allowed gap) lasts to `day` (see `halted`)."""
    end = measured.supply_end
    return end is None or (day - end).days - 1 <= RUN_GAP_DAYS


def _merge(runs: list[_Run], first: int) -> _Run:
    merged = runs[first]
    for run in runs[first + 1 :]:
        merged.parts += run.parts
        merged.end = max(merged.end, run.end)
        merged.renewed = merged.renewed or run.renewed
    del runs[first + 1 :]
    return merged


def _part(exposure: Exposure, as_of: date | None) -> _Part | None:
    measured = exposure.measured
    start = measured.start
    if start is None or (as_of is not None and start > as_of):
        return None
    end = measured.end or start
    if measured.ongoing and as_of is not None:
        end = as_of
    if as_of is not None and end > as_of:
        end = as_of
    end = max(end, start)
    open_ended = measured.open_ended and not (as_of is not None and end >= as_of)
    return _Part(exposure, start, end, open_ended)


def _certainty(run: _Run) -> Certainty:
    found = {p.exposure.measured.certainty for p in run.parts}
    if run.renewed or "estimated" in found:
        return "estimated"
    if "documented" in found:
        return "documented"
    return "unknown"


def _finish(drug: str, run: _Run, as_of: date | None) -> TherapyRun:
    records = [p.exposure.record for p in run.parts]
    sets: frozenset[str] = frozenset().union(*(r.valuesets for r in records))
    estimated: list[str] = []
    for part in run.parts:
        estimated += part.exposure.measured.estimated_from
    if run.renewed:
        estimated.append(ESTIMATED_FROM_RENEWALS)
    return TherapyRun(
        drug=drug,
        valuesets=sets,
        start=run.start,
        end=run.end,
        days=(run.end - run.start).days + 1,
        refs=tuple(dict.fromkeys(r.ref for r in records)),
        certainty=_certainty(run),
        # Any part of unknown length may have gone on past the run's end (not only the
        # last one), unless the run already reaches the order date.
        open_ended=any(p.open_ended for p in run.parts) and (as_of is None or run.end < as_of),
        sources=tuple(
            ExposureSource(
                ref=p.exposure.record.ref,
                resource_type=p.kind,
                start=p.start,
                end=p.end,
                certainty=p.exposure.measured.certainty,
                basis=p.exposure.measured.basis,
                open_ended=p.open_ended,
            )
            for p in run.parts
        ),
        estimated_from=tuple(dict.fromkeys(estimated)),
        began_earlier=any(p.exposure.measured.began_by and p.start == run.start for p in run.parts),
    )


def therapy_runs(exposures: Iterable[Exposure], as_of: date | None) -> list[TherapyRun]:
    """Every run of every drug, by drug then start (see the module docstring)."""
    by_drug: dict[str, list[_Part]] = {}
    for exposure in exposures:
        part = _part(exposure, as_of)
        if part is not None:
            by_drug.setdefault(exposure.record.drug, []).append(part)
    out: list[TherapyRun] = []
    for drug, parts in sorted(by_drug.items()):
        parts.sort(key=lambda p: (p.start, p.end, p.exposure.record.ref))
        runs: list[_Run] = []
        for index, part in enumerate(parts):
            renewed = _renewed(parts[:index], part)
            if renewed is not None:
                first = next(i for i, run in enumerate(runs) if renewed in run.parts)
                current = _merge(runs, first)
                current.renewed = True
                current.add(part)
            elif runs and (part.start - runs[-1].end).days - 1 <= RUN_GAP_DAYS:
                runs[-1].add(part)
            else:
                runs.append(_Run([part], part.start, part.end))
        out += [_finish(drug, run, as_of) for run in runs]
    return out
