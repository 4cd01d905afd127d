"""Which drug a medication resource is, and its history records.

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
never enter therapy runs. So are current records named only by a drug class a value set
lists in `class_names` ("Biologic injection per outside records", "TNF inhibitor"): the
class name says it may be one of the listed drugs.

History (`history`): a record for every MedicationRequest / Statement / Dispense, and every
Claim / ExplanationOfBenefit line, of a value-set drug. What counts as exposure, for how
long and how surely, and how records join into therapy runs is
`fhir_mappings.exposures`. Kept out of exposure: entered-in-error (no record at all),
draft orders, proposals, intended / not-taken statements, cancelled or declined
dispenses, and cancelled orders that were never dispensed (no completed dispense refers
to them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from fhir_mappings import exposures, valuesets
from fhir_mappings.content_memo import ContentMemo
from fhir_mappings.dosing import days_supplied
from fhir_mappings.facts import MatchedBy, MedicationRecord, Ref
from fhir_mappings.fields import (
    Json,
    codings,
    for_patient,
    get_map,
    get_str,
    maps,
    names_patient,
    parse_date,
    ref_of,
    reference,
    status_code,
    texts,
)
from fhir_mappings.r4 import Parsed

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


_IDENTIFIED: Final[ContentMemo[tuple[tuple[str, MatchedBy], ...]]] = ContentMemo(capacity=16_384)


def forget_readings() -> None:
    """Empty the readings kept per resource body (the benchmark's new-patient figures)."""
    _RECORDS.clear()


def forget_identified() -> None:
    """Empty the memo (the benchmark's first-sight figures)."""
    _IDENTIFIED.clear()
    _RECORDS.clear()


def _identify_concepts(
    concepts: Sequence[Json | None], extra_texts: Sequence[str]
) -> dict[str, MatchedBy]:
    """Drug -> how it was matched. Memoised by the concepts' and texts' content
    (`content_memo`): it depends on nothing else."""
    found = _IDENTIFIED.get(
        [concepts, extra_texts],
        lambda: tuple(_identify_concepts_now(concepts, extra_texts).items()),
    )
    return dict(found)


def _identify_concepts_now(
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
    # Several readers ask of the same record in one call (history, unidentified records).
    return list(parsed.remember("identify", resource, lambda: tuple(_identify(resource, parsed))))


def _identify(resource: Json, parsed: Parsed) -> list[DrugIdentity]:
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


def medication_of(resource: Json, parsed: Parsed) -> Json | None:
    """The Medication a record's `medicationReference` names (contained or among the
    resources), or None."""
    return _referenced_medication(resource, reference(resource.get("medicationReference")), parsed)


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
    yet. Such an order may be for a policy's drug, so the caller reports it as not evaluated
    rather than passing over it in silence."""
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
    return days_supplied(get_map(dispense, "daysSupply"))


_RECORD_KINDS: Final[tuple[ResourceKind, ...]] = (
    "MedicationRequest",
    "MedicationStatement",
    "MedicationDispense",
)


def _record_dates(kind: str, resource: Json) -> tuple[date | None, date | None, float | None]:
    """(start, end, days supply) of an unidentified record: what the record itself says,
    nothing derived (such records never enter therapy runs)."""
    if kind == "MedicationDispense":
        start = exposures.dispense_day(resource)
        days = days_supply(resource)
        end = exposures.supply_ending(start, days) if start and days is not None else None
        return start, end, days
    if kind == "MedicationStatement":
        measured = exposures.measure_statement(resource, status_code(resource, "status") or "")
        return measured.start, measured.end, None
    return parse_date(resource.get("authoredOn")), None, None


def _class_only(resource: Json, parsed: Parsed) -> bool:
    """The record names a drug class of the value sets ("biologic", "TNF inhibitor") and no
    value-set drug: it may be one of that class's drugs, so it is not "another drug"."""
    if identify(resource, parsed):
        return False
    words = texts(get_map(resource, "medicationCodeableConcept"))
    med_ref = get_map(resource, "medicationReference")
    display = get_str(med_ref, "display") if med_ref is not None else None
    if display:
        words.append(display)
    return valuesets.names_a_drug_class(words)


@dataclass(frozen=True)
class _RecordReading:
    """What the medication readers take from one MedicationRequest / Statement / Dispense
    before validation: its reference, the patient it names, its status, the value-set
    drugs it is for, and, when it is for none, why (`unidentified`) and whether it names
    only a drug class (`_class_only`)."""

    ref: Ref
    subject: Ref | None
    status: str | None
    identities: tuple[DrugIdentity, ...]
    unidentified: Unidentified | None
    class_only: bool


_RECORDS: Final[ContentMemo[_RecordReading]] = ContentMemo(capacity=20_000)
"""Readings of records that name their drug in the record itself (no `medicationReference`,
so nothing but the body decides), by the body's content key."""


def _read_record(resource: Json, parsed: Parsed) -> _RecordReading:
    identities = tuple(identify(resource, parsed))
    return _RecordReading(
        ref=ref_of(resource),
        subject=reference(resource.get("subject")),
        status=status_code(resource, "status"),
        identities=identities,
        unidentified=None if identities else unidentified(resource, parsed),
        class_only=False if identities else _class_only(resource, parsed),
    )


def _record_readings(
    parsed: Parsed, kind: ResourceKind, patient_ref: Ref | None
) -> list[tuple[Json, _RecordReading]]:
    """The records of `kind` that are the patient's (`for_patient`), each with its reading
    (kept across calls when only its body decides it; else for this call)."""
    out: list[tuple[Json, _RecordReading]] = []
    for resource, key in parsed.keyed_candidates(kind):
        if key is not None and "medicationReference" not in resource:
            reading = _RECORDS.get_keyed(key, lambda: _read_record(resource, parsed))  # noqa: B023
        else:
            reading = parsed.remember(
                "record",
                resource,
                lambda: _read_record(resource, parsed),  # noqa: B023
            )
        if names_patient(reading.subject, patient_ref):
            out.append((resource, reading))
    return out


def unidentified_records(
    parsed: Parsed,
    *,
    draft_orders: Sequence[tuple[Ref, Json]],
    patient_ref: Ref | None = None,
) -> list[MedicationRecord]:
    """Records of medications whose drug cannot be told (`unidentified`) that may be
    current therapy: active / on-hold / draft / unknown orders, active / on-hold / intended
    / unknown statements, and dispenses not cancelled or declined (the concurrent-therapy
    check decides from the dates whether a dispense is current). The draft orders of this
    request are among them (`is_draft_order`), and chart copies of them are not.
    `unidentified=True`, no value sets, `drug` is `UNIDENTIFIED_DRUG`; they never enter
    therapy runs."""
    sources: list[tuple[Ref, ResourceKind, Json, _RecordReading]] = [
        (ref, "MedicationRequest", res, _read_record(res, parsed)) for ref, res in draft_orders
    ]
    draft_refs = {ref for ref, _ in draft_orders}
    for kind in _RECORD_KINDS:
        for res, reading in _record_readings(parsed, kind, patient_ref):
            if reading.ref not in draft_refs:
                sources.append((reading.ref, kind, res, reading))
    out: list[MedicationRecord] = _unidentified_claim_lines(parsed, patient_ref)
    for index, (ref, kind, candidate, reading) in enumerate(sources):
        is_draft = index < len(draft_orders)
        status = "draft" if is_draft else (reading.status or "unknown")
        if status not in _CURRENT_STATUSES[kind]:
            continue
        if reading.unidentified is None and not reading.class_only:
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


_PRODUCT_SYSTEM_WORDS: Final = (
    "/ndc",
    "rxnorm",
    "2.16.840.1.113883.6.69",  # NDC
    "2.16.840.1.113883.6.88",  # RxNorm
)


def _product_coded(concept: Json) -> bool:
    """Coded by an NDC or RxNorm product: a drug, whatever it is (a HCPCS code may be a
    supply or a service)."""
    return any(
        code and system and any(w in system.lower() for w in _PRODUCT_SYSTEM_WORDS)
        for system, code, _ in codings(concept)
    )


def _unidentified_claim_lines(parsed: Parsed, patient_ref: Ref | None) -> list[MedicationRecord]:
    """Claim / ExplanationOfBenefit lines for a drug nobody here can name: an NDC or RxNorm
    product code no product file holds, and no display (CARIN Blue Button pharmacy claims
    are coded by NDC alone). Read like a dispense of an unidentified drug: a recent one
    leaves concurrent therapy unknown (an adalimumab pen billed by an NDC the product files
    lack may be one)."""
    out: list[MedicationRecord] = []
    for kind in _CLAIM_KINDS:
        for candidate in parsed.candidates(kind):
            if not for_patient(candidate, patient_ref, "patient") or not exposures.claim_counts(
                candidate
            ):
                continue
            lines = []
            for item in exposures.claim_items(candidate):
                concept = exposures.claim_drug_concept(item)
                if (
                    concept is not None
                    and _product_coded(concept)
                    and not _named(get_map(item, "productOrService"))
                    and not identify_concept(concept)
                ):
                    lines.append(item)
            if not lines:
                continue
            claim = parsed.accept(candidate)
            if claim is None:
                continue
            for item in lines:
                measured = exposures.measure_claim_item(claim, item)
                out.append(
                    MedicationRecord(
                        ref=ref_of(claim),
                        resource_type="Claim" if kind == "Claim" else "ExplanationOfBenefit",
                        drug=UNIDENTIFIED_DRUG,
                        valuesets=frozenset(),
                        matched_by="none",
                        status="completed",
                        start=measured.start,
                        end=measured.end or measured.start,
                        is_draft_order=False,
                        unidentified=True,
                        days_supply=exposures.claim_line_days(claim, item),
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


ResourceKind = Literal["MedicationRequest", "MedicationStatement", "MedicationDispense"]
_CLAIM_KINDS: Final = ("Claim", "ExplanationOfBenefit")
_NOT_ORDERS: Final = frozenset({"proposal", "option"})


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


def _countable(
    kind: ResourceKind, status: str, intent: str | None, ref: str, dispensed: Callable[[str], bool]
) -> bool:
    if kind == "MedicationStatement":
        return status in {"active", "completed", "stopped", "on-hold", "unknown"}
    if kind == "MedicationDispense":
        return status in {"completed", "in-progress", "unknown"}
    if intent in _NOT_ORDERS:
        return False  # a suggestion, not an order: nobody was told to take it
    if status == "cancelled":
        return dispensed(ref)
    return status in {"active", "completed", "stopped", "on-hold", "unknown"}


def _measure(kind: ResourceKind, res: Json, status: str, parsed: Parsed) -> exposures.Measured:
    medication = _referenced_medication(res, reference(res.get("medicationReference")), parsed)
    if kind == "MedicationRequest":
        return exposures.measure_request(res, medication)
    if kind == "MedicationDispense":
        return exposures.measure_dispense(res, medication)
    return exposures.measure_statement(res, status)


def _record_range(
    kind: ResourceKind, res: Json, measured: exposures.Measured
) -> tuple[date | None, date | None]:
    """The record's own start / end as the engine reads them (the pathway's "ended
    within 60 days"): a statement keeps its stated dates (one date: that day); a
    dispense ends on its last supplied day, or the day it was handed over; an order on
    the last day of all the fills it allows, or never (its length is unknown)."""
    if kind == "MedicationStatement":
        period = get_map(res, "effectivePeriod")
        if period is not None:
            return parse_date(period.get("start")), parse_date(period.get("end"), end=True)
        day = parse_date(res.get("effectiveDateTime"))
        return day, day
    if kind == "MedicationDispense":
        return measured.start, measured.end or measured.start
    return measured.start, measured.end


def history(
    parsed: Parsed,
    *,
    draft_orders: Sequence[tuple[Ref, Json]],
    patient_ref: Ref | None = None,
) -> tuple[list[MedicationRecord], list[exposures.Exposure]]:
    """Records for every medication resource (and claim line) of a value-set drug; the
    draft orders of this request are records with `is_draft_order=True` (a chart copy of
    one is not read again). The second list is what counts as exposure, measured (see
    `fhir_mappings.exposures`); draft orders are never exposure.

    Policy-neutral: `mg_per_day` is left None and each record keeps its sig as written
    (`MedicationRecord.dosages`); a caller that needs a daily dose at a body weight works
    it out (`dosing.compute_dose`)."""
    by_request = _dispenses_by_request(parsed)

    def dispensed(request_ref: str) -> bool:
        """A valid dispense cites the request (validated only when asked: rarely)."""
        return any(parsed.accept(d) is not None for d in by_request.get(request_ref, ()))

    draft_refs = {ref for ref, _ in draft_orders}
    sources: list[tuple[Ref, ResourceKind, Json, _RecordReading]] = [
        (ref, "MedicationRequest", res, _read_record(res, parsed)) for ref, res in draft_orders
    ]
    for kind in _RECORD_KINDS:
        # Unvalidated here: a record is validated only once it is known to be for a
        # value-set drug (see below).
        for res, reading in _record_readings(parsed, kind, patient_ref):
            if reading.ref not in draft_refs:
                sources.append((reading.ref, kind, res, reading))
    records: list[MedicationRecord] = []
    found: list[exposures.Exposure] = []
    for index, (ref, kind, candidate, reading) in enumerate(sources):
        is_draft = index < len(draft_orders)
        status = reading.status or "unknown"
        if status == "entered-in-error" or (
            kind == "MedicationStatement" and status == "not-taken"
        ):
            continue
        identities = reading.identities
        if not identities:
            continue
        # Validation keeps the fields read here as they are (it only drops unknown ones).
        valid = candidate if is_draft else parsed.accept(candidate)
        if valid is None:
            continue
        res = valid
        countable = not is_draft and _countable(
            kind, status, get_str(res, "intent"), ref, dispensed
        )
        measured = _measure(kind, res, status, parsed)
        start, end = _record_range(kind, res, measured)
        if kind == "MedicationRequest" and status == "stopped":
            measured = exposures.halted(measured)
        breaks = kind == "MedicationRequest" and exposures.renewal_breaks(res, status)
        dosages = tuple(
            maps(res.get("dosage" if kind == "MedicationStatement" else "dosageInstruction"))
        )
        for identity in identities:
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
                days_supply=days_supply(res) if kind == "MedicationDispense" else None,
                length=measured.certainty,
                dosages=dosages,
            )
            records.append(record)
            if countable:
                found.append(exposures.Exposure(record, measured, breaks))
    claim_records, claim_exposures = _claim_history(parsed, patient_ref)
    given = administration_records(parsed, patient_ref)
    return records + claim_records + given, found + claim_exposures


_ADMINISTERED: Final[Mapping[str, str]] = {
    "completed": "completed",
    "in-progress": "in-progress",
    "on-hold": "on-hold",
    # Halted before the whole dose went in: part of it was given.
    "stopped": "completed",
    "unknown": "unknown",
}


def _administration_day(resource: Json) -> date | None:
    """The day a dose was given: the end of its period (an infusion), else its start,
    else `effectiveDateTime`."""
    period = get_map(resource, "effectivePeriod")
    if period is not None:
        return parse_date(period.get("end"), end=True) or parse_date(period.get("start"))
    return parse_date(resource.get("effectiveDateTime"))


def administration_records(parsed: Parsed, patient_ref: Ref | None) -> list[MedicationRecord]:
    """MedicationAdministration records of value-set drugs: a dose given in a clinic, an
    infusion centre or a hospital (Epic, Oracle Health and Meditech send clinic-given
    biologics this way; the order behind them may be absent or long completed). Read as a
    clinical pharmacist reads a medication administration record: evidence that the drug is
    current therapy for as long as one dose lasts (the concurrent-therapy check reads them
    like a dispense with no days supply: an infliximab infusion 3 weeks ago is current) and,
    for the policy's own drug, that the patient is receiving it. A stopped administration
    gave part of the dose and counts as given; not-done and entered-in-error ones were not
    given. They are not trial evidence (one dose says nothing of how long the drug was
    taken), so they never enter therapy runs."""
    records: list[MedicationRecord] = []
    for candidate in parsed.candidates("MedicationAdministration"):
        status = _ADMINISTERED.get(status_code(candidate, "status") or "unknown")
        if status is None or not for_patient(candidate, patient_ref):
            continue
        identities = identify(candidate, parsed)
        if not identities:
            continue
        res = parsed.accept(candidate)
        if res is None:
            continue
        day = _administration_day(res)
        for identity in identities:
            records.append(
                MedicationRecord(
                    ref=ref_of(res),
                    resource_type="MedicationAdministration",
                    drug=identity.drug,
                    valuesets=identity.valuesets,
                    matched_by=identity.matched_by,
                    status=status,
                    start=day,
                    end=day,
                    is_draft_order=False,
                )
            )
    return records


def _claim_history(
    parsed: Parsed, patient_ref: Ref | None
) -> tuple[list[MedicationRecord], list[exposures.Exposure]]:
    """Claim / ExplanationOfBenefit lines whose product or service is a value-set drug:
    records like dispenses, with status "completed" (a billed fill or administration)."""
    records: list[MedicationRecord] = []
    found: list[exposures.Exposure] = []
    for kind in _CLAIM_KINDS:
        for candidate in parsed.candidates(kind):
            if not for_patient(candidate, patient_ref, "patient") or not exposures.claim_counts(
                candidate
            ):
                continue
            lines = [
                (item, identify_concept(exposures.claim_drug_concept(item)))
                for item in exposures.claim_items(candidate)
            ]
            if not any(identities for _, identities in lines):
                continue
            claim = parsed.accept(candidate)
            if claim is None:
                continue
            ref = ref_of(claim)
            for index, item in enumerate(exposures.claim_items(claim)):
                identities = lines[index][1] if index < len(lines) else []
                if not identities:
                    continue
                measured = exposures.measure_claim_item(claim, item)
                for identity in identities:
                    record = MedicationRecord(
                        ref=ref,
                        resource_type="Claim" if kind == "Claim" else "ExplanationOfBenefit",
                        drug=identity.drug,
                        valuesets=identity.valuesets,
                        matched_by=identity.matched_by,
                        status="completed",
                        start=measured.start,
                        end=measured.end or measured.start,
                        is_draft_order=False,
                        length=measured.certainty,
                        days_supply=exposures.claim_line_days(claim, item),
                    )
                    records.append(record)
                    found.append(exposures.Exposure(record, measured))
    return records, found
