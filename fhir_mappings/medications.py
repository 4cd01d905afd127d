"""Which drug a medication resource is, its history records and therapy runs.

Identity: `medicationCodeableConcept`, or `medicationReference` to a contained (`#id`)
Medication or a Medication among the resources (sent, or fetched from the EHR by the
caller; its code, then its ingredients' itemCodeableConcept / itemReference). Each coding is
matched against the medication value sets and the product files behind them (ingredient
code > product code (SCD / SBD / SCDC / packs) > NDC in any 10- or 11-digit form > HCPCS);
only when no code matches, the names of the value sets are looked for in `coding.display`
/ `text` / the reference's display.

Where identified ends (see `unidentified`): a record is for a value-set drug when a code or
a name says so; it is for *another drug* when nothing the value sets know matches but it
names something in words (a text, a coding display, the reference's display, the
Medication's code or ingredient names: "lisinopril 10 MG Oral Tablet"), since every drug of
the policy's lists is in the value sets by ingredient, brand and biosimilar name; it is
*unidentified* when there is nothing to read: a reference without display to a Medication
that is neither contained, nor sent, nor fetchable (or is invalid, or empty), or only codes
nobody here knows. Unidentified records that may be current (active / on-hold / draft /
unknown orders and statements, dispenses not cancelled) are `MedicationRecord`s with
`unidentified=True` (`unidentified_records`): concurrent therapy is then unknown, and they
never enter therapy runs.

Day ranges (both ends inclusive: a 90-day supply starting Jan 1 covers Jan 1 - Mar 31):
- MedicationStatement: effectivePeriod start..end; an open end on an active / on-hold
  statement runs to the order date (on a completed / stopped one it proves only the start
  day); effectiveDateTime is one day (the statement only proves the drug was taken that day).
- MedicationRequest: authoredOn + expectedSupplyDuration x (1 + numberOfRepeatsAllowed) - 1,
  else dispenseRequest.validityPeriod, else the authored day alone.
- MedicationDispense: whenHandedOver (or whenPrepared) + daysSupply - 1, else that day alone.

Therapy runs (I.A.4, I.A.5): per drug, ranges sorted by start and joined when the days
between them (not covered by either) are 14 or fewer; run days = first to last day
inclusive (the allowed gaps count, as for any consecutive-therapy check). Ranges are cut at
the order date (a supply not yet used up proves nothing beyond it) and ranges starting after
it are left out. Kept out of runs: entered-in-error (no record at all), draft orders,
intended / not-taken statements, cancelled or declined dispenses, and cancelled orders
that were never dispensed (no completed dispense refers to them). The longest run per drug
is kept (the latest when two are as long).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Literal

from fhir_mappings import valuesets
from fhir_mappings.dosing import compute_dose, supply_days
from fhir_mappings.facts import MatchedBy, MedicationRecord, Ref, TherapyRun, WeightFact
from fhir_mappings.fields import (
    Json,
    codings,
    get_map,
    get_num,
    get_str,
    maps,
    parse_date,
    ref_of,
    reference,
    status_code,
    texts,
)
from fhir_mappings.r4 import Parsed

RunGapDays: Final = 14

_RANK: Final[Mapping[str, int]] = {
    "ingredient-code": 0,
    "product-code": 1,
    "ndc": 2,
    "hcpcs": 3,
    "name": 4,
}
_MED_KIND: Final = frozenset({"medication"})


@dataclass(frozen=True)
class DrugIdentity:
    drug: str
    valuesets: frozenset[str]
    matched_by: MatchedBy


def _identify_concepts(
    concepts: Sequence[Json | None], extra_texts: Sequence[str]
) -> dict[str, MatchedBy]:
    found: dict[str, MatchedBy] = {}
    all_texts = [t for c in concepts for t in texts(c)] + [t for t in extra_texts if t]
    for concept in concepts:
        for system, code, _ in codings(concept):
            for hit in valuesets.match_code(system, code):
                if hit.drug is None or valuesets.valueset_kind(hit.valueset) != "medication":
                    continue
                best = found.get(hit.drug)
                if best is None or _RANK[hit.matched_by] < _RANK[best]:
                    found[hit.drug] = hit.matched_by
    if not found:
        for hit in valuesets.match_names(all_texts, _MED_KIND):
            if hit.drug is not None:
                found[hit.drug] = "name"
    return {d: m for d, m in found.items() if not valuesets.excluded(d, all_texts)}


def _medication_concepts(
    medication: Json, parsed: Parsed, depth: int = 0
) -> tuple[list[Json | None], list[str]]:
    concepts: list[Json | None] = [get_map(medication, "code")]
    extra: list[str] = []
    for ingredient in maps(medication.get("ingredient")):
        concepts.append(get_map(ingredient, "itemCodeableConcept"))
        item_ref = get_map(ingredient, "itemReference")
        target = reference(item_ref)
        display = get_str(item_ref, "display")
        if display:
            extra.append(display)
        if target and target.startswith("Medication/") and depth == 0:
            inner = parsed.by_ref.get(target)
            if inner is not None:
                more, more_text = _medication_concepts(inner, parsed, depth + 1)
                concepts.extend(more)
                extra.extend(more_text)
    return concepts, extra


def identify(resource: Json, parsed: Parsed) -> list[DrugIdentity]:
    """The value-set drugs a MedicationRequest / Statement / Dispense (or an
    AllergyIntolerance-like concept holder) is for; empty when none is recognised."""
    concepts: list[Json | None] = []
    extra: list[str] = []
    cc = get_map(resource, "medicationCodeableConcept")
    if cc is not None:
        concepts.append(cc)
    med_ref = get_map(resource, "medicationReference")
    if med_ref is not None:
        target = reference(med_ref)
        display = get_str(med_ref, "display")
        if display:
            extra.append(display)
        medication = _referenced_medication(resource, target, parsed)
        if medication is not None:
            more, more_text = _medication_concepts(medication, parsed)
            concepts.extend(more)
            extra.extend(more_text)
    return to_identities(_identify_concepts(concepts, extra))


def _referenced_medication(resource: Json, target: str | None, parsed: Parsed) -> Json | None:
    """The Medication `target` names: contained (`#id`) or among the (valid) resources."""
    if target and target.startswith("#"):
        for contained in maps(resource.get("contained")):
            if contained.get("resourceType") == "Medication" and contained.get("id") == target[1:]:
                return contained
    elif target and target.startswith("Medication/"):
        return parsed.by_ref.get(target)
    return None


NOT_IDENTIFIED: Final = (
    "the drug of this order could not be identified (its Medication resource was neither "
    "sent nor readable from the EHR), so the policy could not be applied"
)
UNREADABLE_MEDICATION: Final = (
    "the drug of this order could not be identified (its Medication resource could not be "
    "read: see the data problems), so the policy could not be applied"
)
EMPTY_MEDICATION: Final = (
    "the drug of this order could not be identified (its Medication resource names no drug), "
    "so the policy could not be applied"
)
CODES_ONLY: Final = (
    "the drug of this order could not be identified (it is given only by codes the service "
    "does not know, with no name), so the policy could not be applied"
)

Unidentified = Literal["missing", "unreadable", "empty", "codes-only"]
"""Why a medication resource's drug cannot be told (see `unidentified`)."""

_ORDER_REASONS: Final[Mapping[Unidentified, str]] = {
    "missing": NOT_IDENTIFIED,
    "unreadable": UNREADABLE_MEDICATION,
    "empty": EMPTY_MEDICATION,
    "codes-only": CODES_ONLY,
}


def _named(concept: Json | None) -> bool:
    """The concept carries words a person can read: a text or a coding display."""
    return bool(get_str(concept, "text")) or any(display for _, _, display in codings(concept))


def _coded(concept: Json | None) -> bool:
    return any(code for _, code, _ in codings(concept))


def unidentified(resource: Json, parsed: Parsed) -> Unidentified | None:
    """Why the drug of a MedicationRequest / MedicationStatement / MedicationDispense cannot
    be told at all; None when it is identified (`identify` finds a value-set drug), named
    as another drug, or names no drug yet.

    Where the line is (a pharmacist reading the chart sees only what is written):
    - identified: any code of a medication value set or product file (ingredient, brand,
      SCD / SBD / pack, NDC, HCPCS), or a value-set name in a text / display;
    - another drug: no code the value sets know, but a readable name in the concept's
      text, a coding display, the reference's display, or the referenced Medication's code
      or ingredients ("lisinopril 10 MG Oral Tablet"): the name says what it is, and every
      drug of the policy's lists is in the value sets under its ingredient, brand and
      biosimilar names;
    - unidentified: only codes the value sets do not know and no name at all ("codes-only":
      an RxNorm or NDC product the data does not hold may be a biologic), a
      `medicationReference` with no display to a Medication that is neither contained, nor
      sent, nor fetched ("missing"), or is there but invalid ("unreadable"), or names nothing
      ("empty").
    A concept or reference with nothing in it names no drug yet (None)."""
    if identify(resource, parsed):
        return None
    concept = get_map(resource, "medicationCodeableConcept")
    if concept is not None:
        if _named(concept) or not _coded(concept):
            return None
        return "codes-only"
    med_ref = get_map(resource, "medicationReference")
    if med_ref is None or get_str(med_ref, "display"):
        return None  # no drug, or named: another drug (`identify` would have found ours)
    target = reference(med_ref)
    if target is None and get_map(med_ref, "identifier") is None:
        return None  # no drug chosen yet
    medication = _referenced_medication(resource, target, parsed)
    if medication is not None:
        concepts, extra = _medication_concepts(medication, parsed)
        if extra or any(_named(c) for c in concepts):
            return None
        return "codes-only" if any(_coded(c) for c in concepts) else "empty"
    if target and any(ref_of(m) == target for m in parsed.candidates("Medication")):
        return "unreadable"
    return "missing"


def unidentified_reason(order: Json, parsed: Parsed) -> str | None:
    """Why the drug of a MedicationRequest cannot be told at all (see `unidentified`), in
    words for the card; None when it is identified, named as another drug, or names no drug
    yet. Such an order may be for Kineret, so the caller reports it as not evaluated rather
    than passing over it in silence."""
    why = unidentified(order, parsed)
    return None if why is None else _ORDER_REASONS[why]


UNIDENTIFIED_DRUG: Final = "unidentified medication"
"""`MedicationRecord.drug` of a record whose drug cannot be told."""

_CURRENT_STATUSES: Final[Mapping[str, frozenset[str]]] = {
    # Records that may be current therapy; stopped / completed orders and statements,
    # cancelled / declined dispenses and entered-in-error records say nothing about now.
    "MedicationRequest": frozenset({"active", "on-hold", "draft", "unknown"}),
    "MedicationStatement": frozenset({"active", "on-hold", "intended", "unknown"}),
    "MedicationDispense": frozenset(
        {"completed", "in-progress", "preparation", "on-hold", "unknown"}
    ),
}


def days_supply(dispense: Json) -> float | None:
    """MedicationDispense.daysSupply in days as stated; None when absent or unreadable."""
    return supply_days(get_map(dispense, "daysSupply"))


_RECORD_KINDS: Final[tuple[ResourceKind, ...]] = (
    "MedicationRequest",
    "MedicationStatement",
    "MedicationDispense",
)


def _record_dates(kind: str, resource: Json) -> tuple[date | None, date | None, float | None]:
    """(start, end, days supply) of an unidentified record: what the record itself says,
    nothing derived (such records never enter therapy runs)."""
    if kind == "MedicationDispense":
        start = parse_date(resource.get("whenHandedOver")) or parse_date(
            resource.get("whenPrepared")
        )
        days = days_supply(resource)
        end = (
            start + timedelta(days=max(round(days), 1) - 1)
            if start is not None and days is not None
            else None
        )
        return start, end, days
    if kind == "MedicationStatement":
        start, end = _statement_range(resource)
        return start, end, None
    return parse_date(resource.get("authoredOn")), None, None


def unidentified_records(
    parsed: Parsed,
    *,
    evaluated_ref: Ref,
    draft_orders: Sequence[tuple[Ref, Json]],
) -> list[MedicationRecord]:
    """Records of medications whose drug cannot be told (`unidentified`) that may be
    current therapy: active / on-hold / draft / unknown orders, active / on-hold / intended
    / unknown statements, and dispenses not cancelled or declined (the concurrent-therapy
    check decides from the dates whether a dispense is current). Other draft orders of this
    request are among them. `unidentified=True`, no value sets, `drug` is
    `UNIDENTIFIED_DRUG`; they never enter therapy runs."""
    sources: list[tuple[Ref, ResourceKind, Json, bool]] = [
        (ref, "MedicationRequest", res, True) for ref, res in draft_orders if ref != evaluated_ref
    ]
    draft_refs = {ref for ref, _ in draft_orders}
    for kind in _RECORD_KINDS:
        for res in parsed.candidates(kind):
            ref = ref_of(res)
            if ref != evaluated_ref and ref not in draft_refs:
                sources.append((ref, kind, res, False))
    out: list[MedicationRecord] = []
    for ref, kind, candidate, is_draft in sources:
        status = "draft" if is_draft else (status_code(candidate, "status") or "unknown")
        if status not in _CURRENT_STATUSES[kind] or unidentified(candidate, parsed) is None:
            continue
        valid = candidate if is_draft else parsed.accept(candidate)
        if valid is None:
            continue
        start, end, days = _record_dates(kind, valid)
        out.append(
            MedicationRecord(
                ref=ref,
                resource_type=kind,
                drug=UNIDENTIFIED_DRUG,
                valuesets=frozenset(),
                matched_by="none",
                status=status,
                start=start,
                end=end,
                is_draft_order=is_draft,
                unidentified=True,
                days_supply=days,
            )
        )
    return out


def identify_concept(concept: Json | None) -> list[DrugIdentity]:
    """Drugs named by one CodeableConcept (e.g. AllergyIntolerance.code)."""
    return to_identities(_identify_concepts([concept], []))


def to_identities(found: Mapping[str, MatchedBy]) -> list[DrugIdentity]:
    return [
        DrugIdentity(drug, valuesets.drug_valuesets(drug), matched_by)
        for drug, matched_by in sorted(found.items())
    ]


def _request_range(resource: Json) -> tuple[date | None, date | None]:
    start = parse_date(resource.get("authoredOn"))
    request = get_map(resource, "dispenseRequest")
    supply = supply_days(get_map(request, "expectedSupplyDuration"))
    if start is not None and supply is not None:
        repeats = get_num(request, "numberOfRepeatsAllowed") or 0.0
        total = round(supply * (1 + max(repeats, 0.0)))
        return start, start + timedelta(days=max(total, 1) - 1)
    validity = get_map(request, "validityPeriod")
    if validity is not None:
        v_start = parse_date(validity.get("start")) or start
        v_end = parse_date(validity.get("end"), end=True)
        if v_start is not None and v_end is not None and v_end >= v_start:
            return v_start, v_end
    return start, None


def _statement_range(resource: Json) -> tuple[date | None, date | None]:
    period = get_map(resource, "effectivePeriod")
    if period is not None:
        return parse_date(period.get("start")), parse_date(period.get("end"), end=True)
    day = parse_date(resource.get("effectiveDateTime"))
    return day, day


def _dispense_range(resource: Json) -> tuple[date | None, date | None]:
    start = parse_date(resource.get("whenHandedOver")) or parse_date(resource.get("whenPrepared"))
    days = supply_days(get_map(resource, "daysSupply"))
    if start is not None and days is not None:
        return start, start + timedelta(days=max(round(days), 1) - 1)
    return start, start


ResourceKind = Literal["MedicationRequest", "MedicationStatement", "MedicationDispense"]


@dataclass(frozen=True)
class _Entry:
    record: MedicationRecord
    countable: bool
    open_ended: bool


def _dispenses_by_request(parsed: Parsed) -> dict[str, list[Json]]:
    """Unvalidated dispenses that count as handing a drug over, by the request they cite."""
    out: dict[str, list[Json]] = {}
    for dispense in parsed.candidates("MedicationDispense"):
        if status_code(dispense, "status") in {"completed", "in-progress", "unknown", None}:
            for auth in maps(dispense.get("authorizingPrescription")):
                target = reference(auth)
                if target:
                    out.setdefault(target, []).append(dispense)
    return out


def _countable(kind: ResourceKind, status: str, ref: str, dispensed: Callable[[str], bool]) -> bool:
    if kind == "MedicationStatement":
        return status in {"active", "completed", "stopped", "on-hold", "unknown"}
    if kind == "MedicationDispense":
        return status in {"completed", "in-progress", "unknown"}
    if status == "cancelled":
        return dispensed(ref)
    return status in {"active", "completed", "stopped", "on-hold", "unknown"}


def history(
    parsed: Parsed,
    *,
    evaluated_ref: Ref,
    draft_orders: Sequence[tuple[Ref, Json]],
    weight: WeightFact | None,
) -> tuple[list[MedicationRecord], list[_Entry]]:
    """Records for every medication resource of a value-set drug, except the evaluated
    order; draft orders of this request are records with `is_draft_order=True`."""
    by_request = _dispenses_by_request(parsed)

    def dispensed(request_ref: str) -> bool:
        """A valid dispense cites the request (validated only when asked: rarely)."""
        return any(parsed.accept(d) is not None for d in by_request.get(request_ref, ()))

    draft_refs = {ref for ref, _ in draft_orders}
    sources: list[tuple[Ref, ResourceKind, Json, bool]] = [
        (ref, "MedicationRequest", res, True) for ref, res in draft_orders if ref != evaluated_ref
    ]
    for kind in ("MedicationRequest", "MedicationStatement", "MedicationDispense"):
        # Unvalidated here: a record is validated only once it is known to be for a
        # value-set drug (see below).
        for res in parsed.candidates(kind):
            ref = ref_of(res)
            if ref == evaluated_ref or ref in draft_refs:
                continue
            sources.append((ref, kind, res, False))
    entries: list[_Entry] = []
    for ref, kind, candidate, is_draft in sources:
        status = status_code(candidate, "status") or "unknown"
        if status == "entered-in-error" or (
            kind == "MedicationStatement" and status == "not-taken"
        ):
            continue
        identities = identify(candidate, parsed)
        if not identities:
            continue
        # Validation keeps the fields read here as they are (it only drops unknown ones).
        valid = candidate if is_draft else parsed.accept(candidate)
        if valid is None:
            continue
        res = valid
        if kind == "MedicationRequest":
            start, end = _request_range(res)
        elif kind == "MedicationStatement":
            start, end = _statement_range(res)
        else:
            start, end = _dispense_range(res)
        open_ended = (
            kind == "MedicationStatement"
            and end is None
            and start is not None
            and status in {"active", "on-hold"}
        )
        for identity in identities:
            mg_per_day: float | None = None
            if identity.drug == "anakinra":
                dosages = list(
                    maps(
                        res.get("dosage" if kind == "MedicationStatement" else "dosageInstruction")
                    )
                )
                if dosages:
                    mg_per_day = compute_dose(dosages, weight).mg_per_day
            record = MedicationRecord(
                ref=ref,
                resource_type=kind,
                drug=identity.drug,
                valuesets=identity.valuesets,
                matched_by=identity.matched_by,
                status=status,
                start=start,
                end=end,
                is_draft_order=is_draft,
                mg_per_day=mg_per_day,
                days_supply=days_supply(res) if kind == "MedicationDispense" else None,
            )
            countable = not is_draft and _countable(kind, status, ref, dispensed)
            entries.append(_Entry(record, countable, open_ended))
    return [e.record for e in entries], entries


def therapy_runs(entries: Sequence[_Entry], as_of: date | None) -> list[TherapyRun]:
    """The longest run per drug (see the module docstring for the counting rules)."""
    by_drug: dict[str, list[tuple[date, date, MedicationRecord]]] = {}
    for entry in entries:
        rec = entry.record
        if not entry.countable or rec.start is None:
            continue
        if as_of is not None and rec.start > as_of:
            continue
        end = rec.end
        if end is None:
            end = as_of if entry.open_ended and as_of is not None else rec.start
        if as_of is not None and end > as_of:
            end = as_of
        end = max(end, rec.start)
        by_drug.setdefault(rec.drug, []).append((rec.start, end, rec))
    runs: list[TherapyRun] = []
    for drug, ranges in sorted(by_drug.items()):
        ranges.sort(key=lambda r: (r[0], r[1]))
        best: TherapyRun | None = None
        cur_start, cur_end, cur_recs = ranges[0][0], ranges[0][1], [ranges[0][2]]
        for start, end, rec in ranges[1:]:
            if (start - cur_end).days - 1 <= RunGapDays:
                cur_end = max(cur_end, end)
                cur_recs.append(rec)
            else:
                best = _better(best, drug, cur_start, cur_end, cur_recs)
                cur_start, cur_end, cur_recs = start, end, [rec]
        best = _better(best, drug, cur_start, cur_end, cur_recs)
        if best is not None:
            runs.append(best)
    return runs


def _better(
    best: TherapyRun | None,
    drug: str,
    start: date,
    end: date,
    records: Sequence[MedicationRecord],
) -> TherapyRun:
    days = (end - start).days + 1
    sets: frozenset[str] = frozenset().union(*(r.valuesets for r in records))
    refs = tuple(dict.fromkeys(r.ref for r in records))
    run = TherapyRun(drug=drug, valuesets=sets, start=start, end=end, days=days, refs=refs)
    if best is None or run.days >= best.days:
        return run
    return best
