"""FHIR R4 resources -> one patient record per request -> the policy engine's facts.

    build_record(context, resources) -> PatientRecord   (policy-neutral, see `record`)
    build_facts(context, resources, drugs=...) -> MappingResult
                                                 (`PolicyFacts` per order of a routed drug)

`build_facts` builds the record once and, for every draft order routed to a policy by its
drug identity (its ingredient is one of `drugs`: the ingredient value set names the policy
packs decide, given by the caller), a per-order view `PolicyFacts` of it (`order_view`):
the records other than that order, the runs cut at its date, its prescriber. Which drugs
have a policy is the caller's knowledge: nothing here names one.

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

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from fhir_mappings import practitioner, r4
from fhir_mappings.dosing import compute_dose
from fhir_mappings.facts import MedicationRecord, OrderFacts, PolicyFacts, Ref, WeightFact
from fhir_mappings.medications import DrugIdentity
from fhir_mappings.product_unit import ProductUnit
from fhir_mappings.record import OrderedDrug, PatientRecord, build_record

__all__ = [
    "MappingResult",
    "PatientRecord",
    "build_facts",
    "build_record",
    "order_view",
    "routed_identity",
]


@dataclass(frozen=True)
class MappingResult:
    orders: tuple[PolicyFacts, ...]
    """One per order in context["draftOrders"] whose drug is a routed one."""
    failed_orders: tuple[tuple[str, str], ...]
    """(order ref, reason) for orders of a routed drug that could not be mapped at all, and
    for orders whose drug cannot be identified with all the data (a `medicationReference`
    to a Medication that is not there): either may be for a routed drug, so neither is
    ignored."""
    problems: tuple[str, ...]
    """Resources left out and why, e.g. "Observation/7: valueQuantity.value: not a number"."""
    other_draft_orders: int
    """Draft orders that are recognisably for no routed drug, or name no drug yet (ignored)."""
    record: PatientRecord | None = field(default=None, compare=False, repr=False)
    """The patient record the orders' facts were built from (one per call)."""
    order_drugs: tuple[str, ...] = ()
    """The routed ingredient of each of `orders`, in the same order."""
    failed_drugs: tuple[str | None, ...] = ()
    """For each of `failed_orders`: the routed ingredient the order names, None when its
    drug could not be told."""


def routed_identity(
    identities: Sequence[DrugIdentity], drugs: Collection[str]
) -> DrugIdentity | None:
    """The order's first identity whose drug is routed (in `drugs`), if any."""
    return next((i for i in identities if i.drug in drugs), None)


def _with_dose(
    record: MedicationRecord, weight: WeightFact | None, unit: ProductUnit | None
) -> MedicationRecord:
    if not record.dosages:
        return record
    dose = compute_dose(list(record.dosages), weight, product=unit)
    return replace(record, mg_per_day=dose.mg_per_day)


def order_view(record: PatientRecord, order: OrderedDrug, identity: DrugIdentity) -> PolicyFacts:
    """The policy engine's facts for one order, from the record: the chart's medication
    records other than this order (those of the ordered drug with a daily dose at the
    order's body weight), runs cut at the order date (the record's today when the order
    states none), and the prescriber of this order."""
    order_date = order.authored_on or record.as_of
    medications = tuple(
        _with_dose(r, order.weight, order.dose.unit) if r.drug == identity.drug else r
        for r in record.medications_besides(order.ref)
    )
    return PolicyFacts(
        order=OrderFacts(
            ref=order.ref,
            resource_id=order.resource_id,
            authored_on=order.authored_on,
            status=order.status,
            intent=order.intent,
            matched_by=identity.matched_by,
            reasons=order.reasons,
            dose=order.dose,
            requester_ref=order.requester_ref,
            resource=order.resource,
        ),
        patient_ref=record.patient_ref or "",
        birth_date=record.birth_date,
        earliest_birth_date=record.earliest_birth_date,
        diagnoses=record.diagnoses,
        conditions_on_file=record.conditions_on_file,
        prescriber=practitioner.prescriber(
            order.requester_ref,
            record.user_ref,
            record.people,
            order.requester_npi,
            as_of=order_date,
        ),
        medications=medications,
        therapy_runs=record.runs(order_date),
        intolerances=record.intolerances,
        measurements=record.measurements,
        genetic_results=record.genetic_results,
        encounter=practitioner.ended_before_order(record.encounter, order_date),
        coverage_refs=record.coverage_refs,
        unavailable=record.unavailable,
        problems=record.problems,
        record=record,
        condition_history=record.condition_history,
        coverages=record.coverages,
        other_conditions=record.other_conditions,
    )


def build_facts(
    context: Mapping[str, Any],
    resources: Sequence[Mapping[str, Any]],
    *,
    drugs: Collection[str],
    as_of: date | None = None,
    unavailable: frozenset[str] = frozenset(),
    units: Mapping[str, ProductUnit] | None = None,
    chart: r4.ChartKey | None = None,
) -> MappingResult:
    """Facts for every MedicationRequest in `context["draftOrders"]` whose drug is one of
    `drugs` (ingredient value set names); orders of such a drug that are unreadable, and
    orders whose drug cannot be told, go to `failed_orders`.

    `unavailable`: resource types the EHR could not give for this call; carried into every
    order's facts so that the policy never reads "not found" as "not there".
    `units`: each product's unit by ingredient name (the packs' drug.json), for the dose
    arithmetic (see `build_record`). `chart`: the resources' `r4.chart_key`, when the
    caller has it."""
    record = build_record(
        context, resources, as_of=as_of, unavailable=unavailable, units=units, chart=chart
    )
    failed: list[tuple[Ref, str]] = []
    failed_drugs: list[str | None] = []
    other = record.other_draft_resources
    for unreadable in record.unreadable_orders:
        routed = routed_identity(unreadable.identities, drugs)
        if routed is not None:
            fields = "; ".join(p.split(": ", 1)[-1] for p in unreadable.problems) or "invalid"
            failed.append((unreadable.ref, f"the order could not be read: {fields}"))
            failed_drugs.append(routed.drug)
        elif unreadable.unidentified is not None:
            failed.append((unreadable.ref, unreadable.unidentified))
            failed_drugs.append(None)
        else:
            other += 1
    orders: list[PolicyFacts] = []
    order_drugs: list[str] = []
    for order in record.orders:
        identity = routed_identity(order.identities, drugs)
        if identity is not None:
            orders.append(order_view(record, order, identity))
            order_drugs.append(identity.drug)
        elif order.unidentified is not None:
            failed.append((order.ref, order.unidentified))
            failed_drugs.append(None)
        else:
            other += 1
    return MappingResult(
        orders=tuple(orders),
        failed_orders=tuple(failed),
        problems=record.problems,
        other_draft_orders=other,
        record=record,
        order_drugs=tuple(order_drugs),
        failed_drugs=tuple(failed_drugs),
    )
