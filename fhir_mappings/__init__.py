"""FHIR R4 resources -> the policy's facts (`PolicyFacts`), one per anakinra draft order.

    build_facts(context, resources) -> MappingResult

Pure: no I/O, no clock. `resources` is every resource from prefetch / FHIR reads, flattened;
duplicates (same type/id) keep the newest version (id-less resources are read too, see
`facts.Ref`); types the policy does not use are ignored; a
resource that fails validation is left out and reported in `problems` (type/id and field,
never a value). Nothing raises out of `build_facts` for bad FHIR data.

Dates: the order date is the draft order's `authoredOn`. When it is missing, `as_of` (the
caller's today) is used for the date-relative facts (weight within 90 days, runs cut at the
order date, open-ended statements); `OrderFacts.authored_on` stays None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from fhir_mappings import conditions, exposures, medications, observations, practitioner, r4
from fhir_mappings.dosing import compute_dose
from fhir_mappings.facts import OrderFacts, PolicyFacts, Ref
from fhir_mappings.fields import get_map, get_str, maps, parse_date, reference

__all__ = ["MappingResult", "build_facts"]


@dataclass(frozen=True)
class MappingResult:
    orders: tuple[PolicyFacts, ...]
    """One per anakinra order in context["draftOrders"]."""
    failed_orders: tuple[tuple[str, str], ...]
    """(order ref, reason) for anakinra orders that could not be mapped at all, and for
    orders whose drug cannot be identified with all the data (a `medicationReference` to a
    Medication that is not there): either may be for Kineret, so neither is ignored."""
    problems: tuple[str, ...]
    """Resources left out and why, e.g. "Observation/7: valueQuantity.value: not a number"."""
    other_draft_orders: int
    """Draft orders that are recognisably not anakinra, or name no drug yet (ignored)."""


def _draft_entries(context: Mapping[str, Any]) -> list[Any]:
    draft = context.get("draftOrders")
    if isinstance(draft, Mapping):
        return [entry.get("resource") for entry in maps(draft.get("entry"))]
    if isinstance(draft, list):
        return list(draft)
    return []


def _patient_ref(context: Mapping[str, Any]) -> Ref | None:
    patient_id = context.get("patientId")
    if not isinstance(patient_id, str) or not patient_id:
        return None
    return patient_id if patient_id.startswith("Patient/") else f"Patient/{patient_id}"


def _user_ref(context: Mapping[str, Any]) -> Ref | None:
    user = context.get("userId")
    return user if isinstance(user, str) and "/" in user else None


def _is_anakinra(resource: Mapping[str, Any], parsed: r4.Parsed) -> medications.DrugIdentity | None:
    for identity in medications.identify(resource, parsed):
        if identity.drug == "anakinra":
            return identity
    return None


def build_facts(
    context: Mapping[str, Any],
    resources: Sequence[Mapping[str, Any]],
    *,
    as_of: date | None = None,
    unavailable: frozenset[str] = frozenset(),
) -> MappingResult:
    """Facts for every anakinra MedicationRequest in `context["draftOrders"]`; orders that
    are anakinra but unreadable, or whose drug cannot be told, go to `failed_orders`.

    `unavailable`: resource types the EHR could not give for this call; carried into every
    order's facts so that the policy never reads "not found" as "not there"."""
    parsed = r4.parse_resources(resources)
    problems: list[str] = []  # the resources' own problems are added at the end
    patient_ref = _patient_ref(context)
    user_ref = _user_ref(context)

    drafts: list[tuple[Ref, Mapping[str, Any], Mapping[str, Any]]] = []  # ref, data, original
    failed: list[tuple[str, str]] = []
    other = 0
    for index, resource in enumerate(_draft_entries(context)):
        if not isinstance(resource, Mapping) or resource.get("resourceType") != (
            "MedicationRequest"
        ):
            other += 1
            continue
        rid = resource.get("id")
        ref = (
            f"MedicationRequest/{rid}"
            if isinstance(rid, str) and rid
            else (f"draftOrders[{index}]")
        )
        valid, found = r4.validate(resource)
        problems.extend(found)
        if valid is None:
            normalised = r4.normalise(resource)
            unknown = medications.unidentified_reason(normalised, parsed)
            if _is_anakinra(normalised, parsed) is not None:
                fields = "; ".join(p.split(": ", 1)[-1] for p in found) or "invalid"
                failed.append((ref, f"the order could not be read: {fields}"))
            elif unknown is not None:
                failed.append((ref, unknown))
            else:
                other += 1
            continue
        drafts.append((ref, valid, resource))

    found_measurements, genetics, obs_problems = observations.measurements(parsed, patient_ref)
    problems.extend(obs_problems)
    diagnoses = tuple(conditions.diagnoses(parsed, patient_ref))
    conditions_on_file = conditions.conditions_on_file(parsed, patient_ref)
    patient = parsed.by_ref.get(patient_ref) if patient_ref else None
    birth_date = parse_date(patient.get("birthDate"), end=True) if patient else None
    earliest_birth_date = parse_date(patient.get("birthDate")) if patient else None
    encounter_id = context.get("encounterId")
    coverage = practitioner.coverage_refs(parsed, patient_ref)
    draft_pairs = [(ref, data) for ref, data, _ in drafts]

    orders: list[PolicyFacts] = []
    for ref, data, original in drafts:
        identity = _is_anakinra(data, parsed)
        if identity is None:
            unknown = medications.unidentified_reason(data, parsed)
            if unknown is not None:
                failed.append((ref, unknown))
            else:
                other += 1
            continue
        authored = parse_date(data.get("authoredOn"))
        order_date = authored or as_of
        encounter = practitioner.encounter(
            encounter_id if isinstance(encounter_id, str) else None,
            parsed,
            patient_ref,
            order_date,
        )
        weight = observations.latest_weight(found_measurements, order_date)
        dose = compute_dose(
            list(maps(data.get("dosageInstruction"))), weight, get_map(data, "dispenseRequest")
        )
        requester = reference(data.get("requester"))
        records, exposed = medications.history(
            parsed,
            evaluated_ref=ref,
            draft_orders=draft_pairs,
            weight=weight,
            patient_ref=patient_ref,
        )
        # Medications whose drug cannot be told: concurrent therapy is unknown; never runs.
        records = [
            *records,
            *medications.unidentified_records(
                parsed, evaluated_ref=ref, draft_orders=draft_pairs, patient_ref=patient_ref
            ),
        ]
        order = OrderFacts(
            ref=ref,
            resource_id=get_str(data, "id") or "",
            authored_on=authored,
            status=get_str(data, "status") or "",
            intent=get_str(data, "intent") or "",
            matched_by=identity.matched_by,
            reasons=tuple(conditions.order_reasons(data, ref, parsed)),
            dose=dose,
            requester_ref=requester,
            resource=original,
        )
        orders.append(
            PolicyFacts(
                order=order,
                patient_ref=patient_ref or "",
                birth_date=birth_date,
                earliest_birth_date=earliest_birth_date,
                diagnoses=diagnoses,
                conditions_on_file=conditions_on_file,
                prescriber=practitioner.prescriber(
                    requester,
                    user_ref,
                    parsed,
                    patient_ref,
                    data.get("requester"),
                    as_of=order_date,
                ),
                medications=tuple(records),
                therapy_runs=tuple(exposures.therapy_runs(exposed, order_date)),
                intolerances=tuple(conditions.intolerances(parsed, patient_ref)),
                measurements=tuple(found_measurements),
                genetic_results=tuple(genetics),
                encounter=encounter,
                coverage_refs=coverage,
                unavailable=unavailable,
            )
        )
    # Resources are validated as they are read: their problems are known only now.
    all_problems = (*parsed.problems, *problems)
    return MappingResult(
        orders=tuple(replace(facts, problems=all_problems) for facts in orders),
        failed_orders=tuple(failed),
        problems=all_problems,
        other_draft_orders=other,
    )
