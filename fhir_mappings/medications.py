"""Which drug a medication resource is, and its history records.

Identity: `medicationCodeableConcept`, or `medicationReference` to a contained (`#id`)
Medication or a Medication among the resources (its code, then its ingredients'
itemCodeableConcept / itemReference). Each coding is matched against the medication value
sets (ingredient code > product code > NDC); only when no code matches, the names of the
value sets are looked for in `coding.display` / `text` / the reference's display.

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
from fhir_mappings.dosing import compute_dose
from fhir_mappings.facts import MatchedBy, MedicationRecord, Ref, WeightFact
from fhir_mappings.fields import (
    Json,
    codings,
    get_map,
    get_str,
    maps,
    parse_date,
    ref_of,
    reference,
    status_code,
    texts,
)
from fhir_mappings.r4 import Parsed

_RANK: Final[Mapping[str, int]] = {"ingredient-code": 0, "product-code": 1, "ndc": 2, "name": 3}
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


def _names_something(concept: Json | None) -> bool:
    return bool(get_str(concept, "text")) or any(
        code or display for _, code, display in codings(concept)
    )


def unidentified_reason(order: Json, parsed: Parsed) -> str | None:
    """Why the drug of a MedicationRequest that `identify` does not find to be anakinra
    cannot be told at all; None when the order is coded or named as another drug, or
    names no drug yet.

    Only a `medicationReference` can leave the drug unknown: to a Medication that is
    neither contained nor among the resources (or is there but invalid, or names
    nothing), with no display naming a drug. Such an order may be for Kineret, so the
    caller reports it as not evaluated rather than passing over it in silence."""
    med_ref = get_map(order, "medicationReference")
    if get_map(order, "medicationCodeableConcept") is not None or med_ref is None:
        return None
    if get_str(med_ref, "display"):
        return None  # named: another drug, or `identify` would have found anakinra
    target = reference(med_ref)
    if target is None and get_map(med_ref, "identifier") is None:
        return None  # no drug chosen yet
    medication = _referenced_medication(order, target, parsed)
    if medication is not None:
        concepts, extra = _medication_concepts(medication, parsed)
        if extra or any(_names_something(concept) for concept in concepts):
            return None
        return EMPTY_MEDICATION
    if target and any(ref_of(m) == target for m in parsed.candidates("Medication")):
        return UNREADABLE_MEDICATION
    return NOT_IDENTIFIED


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
    evaluated_ref: Ref,
    draft_orders: Sequence[tuple[Ref, Json]],
    weight: WeightFact | None,
) -> tuple[list[MedicationRecord], list[exposures.Exposure]]:
    """Records for every medication resource (and claim line) of a value-set drug,
    except the evaluated order; draft orders of this request are records with
    `is_draft_order=True`. The second list is what counts as exposure, measured (see
    `fhir_mappings.exposures`)."""
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
    records: list[MedicationRecord] = []
    found: list[exposures.Exposure] = []
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
        countable = not is_draft and _countable(
            kind, status, get_str(res, "intent"), ref, dispensed
        )
        measured = _measure(kind, res, status, parsed)
        start, end = _record_range(kind, res, measured)
        breaks = kind == "MedicationRequest" and exposures.renewal_breaks(res, status)
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
                length=measured.certainty,
            )
            records.append(record)
            if countable:
                found.append(exposures.Exposure(record, measured, breaks))
    claim_records, claim_exposures = _claim_history(parsed)
    return records + claim_records, found + claim_exposures


def _claim_history(
    parsed: Parsed,
) -> tuple[list[MedicationRecord], list[exposures.Exposure]]:
    """Claim / ExplanationOfBenefit lines whose product or service is a value-set drug:
    records like dispenses, with status "completed" (a billed fill or administration)."""
    records: list[MedicationRecord] = []
    found: list[exposures.Exposure] = []
    for kind in _CLAIM_KINDS:
        for candidate in parsed.candidates(kind):
            if not exposures.claim_counts(candidate):
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
                    )
                    records.append(record)
                    found.append(exposures.Exposure(record, measured))
    return records, found
