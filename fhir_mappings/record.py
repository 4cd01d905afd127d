"""One patient record per request, shared by every order and every policy.

    build_record(context, resources, *, as_of, unavailable) -> PatientRecord

The record is what the chart says, read once: nothing in it is named after a drug, a gene
test, a policy or a criterion, and nothing in it depends on which draft order is looked at.
The per-order questions ("which records are other than this order", "which runs had ended
by the order date", "who ordered this one") are answered from it by the caller
(`fhir_mappings.build_facts` builds the policy engine's per-order `PolicyFacts` view this
way); a policy reads the record through its value sets, which the readers below have
already matched (`valuesets`, `kind`, `drug` fields hold value-set names, never codes).

Neutral parts: everything in `PatientRecord` and `OrderedDrug`. `OrderedDrug.dose` is
worked out with the unit of the ordered product (a syringe, a vial), which the caller passes
as data (`units`: ingredient name -> `ProductUnit`, from each policy pack's drug.json); an
order of a drug with no unit given reads doses in mg, g, mcg and mg/kg only.

Each draft order becomes an `OrderedDrug`: what drug (every value-set drug it is for, and
how it was recognised, or why the drug cannot be told), the sig as dose facts, the
quantity and supply, the reasons, the requester. Routing an order to a policy is a lookup
on `OrderedDrug.identities`. Draft orders that fail validation are `UnreadableOrder`s (their
drug is still told from the unvalidated copy, so that an unreadable order of a checked drug
is reported rather than passed over).

Pure: no I/O, no clock (`as_of` is the caller's today). Validation is lazy (see
`r4.Parsed`): a resource is validated when a reader here needs it, and `problems` is taken
after every reader has run, so it is final for the request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from fhir_mappings import (
    budget,
    conditions,
    exposures,
    medications,
    observations,
    practitioner,
    r4,
)
from fhir_mappings.content_memo import WeightedMemo
from fhir_mappings.coverage import CoverageRecord, read_coverages
from fhir_mappings.dosing import compute_dose, supply_days
from fhir_mappings.facts import (
    ConditionRecord,
    Diagnosis,
    DoseFacts,
    EncounterFacts,
    GeneticResult,
    Intolerance,
    Measurement,
    MedicationRecord,
    Ref,
    TherapyRun,
    WeightFact,
)
from fhir_mappings.fields import get_map, get_num, get_str, maps, parse_date, reference
from fhir_mappings.medications import DrugIdentity
from fhir_mappings.practitioner import People, Role
from fhir_mappings.product_unit import ProductUnit

__all__ = [
    "DrugIdentity",
    "OrderedDrug",
    "PatientRecord",
    "People",
    "Role",
    "UnreadableOrder",
    "build_record",
]


@dataclass(frozen=True)
class OrderedDrug:
    """One readable draft MedicationRequest of the request, as a drug ordered."""

    ref: Ref
    """`MedicationRequest/<id>`, or `draftOrders[<n>]` for an order sent without an id."""
    resource_id: str
    authored_on: date | None
    status: str
    intent: str
    identities: tuple[DrugIdentity, ...]
    """Every value-set drug the order is for (ingredient name, its value sets, how it was
    recognised); empty when none is recognised."""
    unidentified: str | None
    """Why the drug cannot be told at all, in words for a card (`medications
    .unidentified_reason`); None when identified, named as another drug, or no drug yet."""
    weight: WeightFact | None
    """The latest body weight within 90 days before the order date."""
    dose: DoseFacts
    """The sig worked out at `weight` (`dosing.compute_dose`) with the unit of the ordered
    product: amounts, administrations per day, loading / maintenance doses and interval,
    units of the product, intended length."""
    quantity: float | None
    quantity_unit: str | None
    """`dispenseRequest.quantity` as stated (unit code, else unit text)."""
    expected_supply_days: float | None
    """`dispenseRequest.expectedSupplyDuration` in days."""
    refills: int
    """`dispenseRequest.numberOfRepeatsAllowed` (0 when absent)."""
    supply: exposures.Measured
    """How long the order's fills last as exposure (`exposures.measure_request`)."""
    reasons: tuple[Diagnosis, ...]
    """The order's reasonCode / reasonReference as diagnoses."""
    requester_ref: Ref | None
    requester_npi: str | None
    """The NPI the requester is named by (identifier or conditional reference), if any."""
    resource: Mapping[str, Any] = field(compare=False, hash=False, repr=False)
    """The draft MedicationRequest as received (never mutated; cards copy it)."""

    @property
    def order_date(self) -> date | None:
        """`authored_on`; None when the order states no date (callers use their today)."""
        return self.authored_on

    def is_for(self, drug: str) -> DrugIdentity | None:
        """The identity of `drug` (an ingredient name) among the order's, if it is one."""
        return next((i for i in self.identities if i.drug == drug), None)


@dataclass(frozen=True)
class UnreadableOrder:
    """A draft MedicationRequest that failed validation."""

    ref: Ref
    identities: tuple[DrugIdentity, ...]
    """The drugs its unvalidated copy names (so that it is reported, not passed over)."""
    unidentified: str | None
    problems: tuple[str, ...]
    """Its validation problems (`Type/id: field: what is wrong`, never a value)."""


@dataclass(frozen=True)
class PatientRecord:
    """What one request's chart holds, read once (see the module docstring)."""

    patient_ref: Ref | None
    """`Patient/<id>` from `context.patientId`; None when the context has none."""
    user_ref: Ref | None
    """`context.userId` when it is a reference (the user signing the orders)."""
    birth_date: date | None
    """The Patient's birthDate (a partial date read as its last possible day)."""
    earliest_birth_date: date | None
    """The first day a partial birthDate allows ("2008" is 2008-01-01); as `birth_date`
    for a full date."""
    as_of: date | None
    """The caller's today (used for orders that state no date)."""
    diagnoses: tuple[Diagnosis, ...]
    """Active Conditions in a diagnosis value set, confirmed or working, with their
    verification and whether the set is matched by words only (`Diagnosis`)."""
    conditions_on_file: int
    """Conditions of any code and status but entered-in-error."""
    intolerances: tuple[Intolerance, ...]
    """Allergies, intolerances and contraindications to value-set substances."""
    measurements: tuple[Measurement, ...]
    """Final Observations in a measurement value set, in normalised units."""
    genetic_results: tuple[GeneticResult, ...]
    medications: tuple[MedicationRecord, ...]
    """Every medication record of the chart for a value-set drug (orders, statements,
    dispenses, claim lines), then every record whose drug cannot be told that may be
    current (`unidentified`); the request's draft orders are among them with
    `is_draft_order`. `mg_per_day` is None here (see `MedicationRecord.dosages`)."""
    exposures: tuple[exposures.Exposure, ...]
    """The records that count as exposure, measured (`fhir_mappings.exposures`); never a
    draft order. Runs at a date: `runs`."""
    people: People
    """Every PractitionerRole, the Practitioners' NPIs, the care team and referrals."""
    encounter: EncounterFacts | None
    """The encounter of `context.encounterId` and its setting; None without one."""
    coverage_refs: tuple[Ref, ...]
    """Active Coverages of the patient."""
    orders: tuple[OrderedDrug, ...]
    """The readable draft MedicationRequests, in the order sent."""
    unreadable_orders: tuple[UnreadableOrder, ...]
    other_draft_resources: int
    """Draft orders that are not MedicationRequests (ignored)."""
    unavailable: frozenset[str]
    """Resource types the EHR could not give for this call: "none found" proves nothing."""
    problems: tuple[str, ...]
    """Resources left out or fields ignored, and why (never a value): the resources' own
    problems in input order, then the draft orders', then the measurements'."""
    condition_history: tuple[ConditionRecord, ...] = ()
    """Every Condition in a diagnosis value set of any clinical status (resolved ones too),
    with onset / abatement dates, encounter diagnoses, and findings recorded as
    Observations (`conditions.condition_history`)."""
    coverages: tuple[CoverageRecord, ...] = ()
    """The active Coverages of `coverage_refs` with their payors and classes
    (`fhir_mappings.coverage`)."""
    other_conditions: tuple[str, ...] = ()
    """Names of the standing, confirmed Conditions in no diagnosis value set
    (`conditions.other_condition_names`): words for a card, never evidence."""

    def runs(self, as_of: date | None) -> tuple[TherapyRun, ...]:
        """Therapy runs per ingredient, cut at `as_of` (an order's date)."""
        return tuple(exposures.therapy_runs(self.exposures, as_of))

    def medications_besides(self, order_ref: Ref) -> tuple[MedicationRecord, ...]:
        """`medications` without the records of one draft order."""
        return tuple(r for r in self.medications if r.ref != order_ref)


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


def _ordered_drug(
    ref: Ref,
    data: Mapping[str, Any],
    original: Mapping[str, Any],
    parsed: r4.Parsed,
    found_measurements: Sequence[Measurement],
    as_of: date | None,
    units: Mapping[str, ProductUnit],
) -> OrderedDrug:
    authored = parse_date(data.get("authoredOn"))
    weight = observations.latest_weight(found_measurements, authored or as_of)
    request = get_map(data, "dispenseRequest")
    quantity = get_map(request, "quantity")
    requester = data.get("requester")
    identities = tuple(medications.identify(data, parsed))
    product = next((units[i.drug] for i in identities if i.drug in units), None)
    return OrderedDrug(
        ref=ref,
        resource_id=get_str(data, "id") or "",
        authored_on=authored,
        status=get_str(data, "status") or "",
        intent=get_str(data, "intent") or "",
        identities=identities,
        unidentified=medications.unidentified_reason(data, parsed),
        weight=weight,
        dose=compute_dose(list(maps(data.get("dosageInstruction"))), weight, request, product),
        quantity=get_num(quantity, "value"),
        quantity_unit=get_str(quantity, "code") or get_str(quantity, "unit"),
        expected_supply_days=supply_days(get_map(request, "expectedSupplyDuration")),
        refills=max(int(get_num(request, "numberOfRepeatsAllowed") or 0.0), 0),
        supply=exposures.measure_request(data, medications.medication_of(data, parsed)),
        reasons=tuple(conditions.order_reasons(data, ref, parsed)),
        requester_ref=reference(requester),
        requester_npi=practitioner.npi_of_reference(requester),
        resource=original,
    )


def build_record(
    context: Mapping[str, Any],
    resources: Sequence[Mapping[str, Any]],
    *,
    as_of: date | None = None,
    unavailable: frozenset[str] = frozenset(),
    units: Mapping[str, ProductUnit] | None = None,
    chart: r4.ChartKey | None = None,
) -> PatientRecord:
    """The patient record of one request: `context` (patientId, userId, encounterId,
    draftOrders) and every resource from prefetch / FHIR reads, flattened (duplicates keep
    the newest version, see `r4`). `units`: the unit of each product by ingredient name
    (drug.json `unit` of the policy packs), for the dose arithmetic of the draft orders.
    Nothing raises for bad FHIR data.

    The record of a chart sent again with the same orders (order-select, then each edit
    that leaves the order as it was, then order-sign; a retry) is the one read before
    (`_RECORDS`): the record depends on nothing but these arguments. `chart`: the
    resources' `r4.chart_key`, when the caller has it."""
    units = units or {}
    if chart is None:
        chart = r4.chart_key(resources)
    key = _record_key(chart, context, as_of, unavailable, units)
    if key is not None:
        kept = _RECORDS.get(key)
        if kept is not None:
            return kept
    record = _read_record(context, resources, chart, as_of, unavailable, units)
    if key is not None:
        _RECORDS.add(key, record, weight=max(len(resources), 1))
    return record


_RecordKey = tuple[
    bytes,
    tuple[str | None, ...],
    bytes,
    date | None,
    frozenset[str],
    tuple[tuple[str, ProductUnit], ...],
]

_RECORDS: Final[WeightedMemo[_RecordKey, PatientRecord]] = WeightedMemo(capacity=50_000)
"""Records read before, by their chart, the context fields read, the day, the resource
types the EHR could not give and the units (`_record_key`); at most 50,000 resources' worth
in all (the oldest records go first). Records are immutable, and every part of them is a
pure function of the key."""


def forget_records() -> None:
    """Empty `_RECORDS` (the benchmark's new-patient figures)."""
    _RECORDS.clear()


def _record_key(
    chart: r4.ChartKey | None,
    context: Mapping[str, Any],
    as_of: date | None,
    unavailable: frozenset[str],
    units: Mapping[str, ProductUnit],
) -> _RecordKey | None:
    """The key of a record in `_RECORDS`, or None when the chart or the context fields
    `build_record` reads cannot be told apart exactly by their text."""
    if chart is None or not chart.exact:
        return None
    ids = tuple(context.get(f) for f in ("patientId", "userId", "encounterId"))
    if not all(v is None or type(v) is str for v in ids):
        return None
    drafts = context.get("draftOrders")
    orders = r4.chart_key([] if drafts is None else [drafts])
    if orders is None or not orders.exact:
        return None
    return (chart.digest, ids, orders.digest, as_of, unavailable, tuple(sorted(units.items())))


def _read_record(
    context: Mapping[str, Any],
    resources: Sequence[Mapping[str, Any]],
    chart: r4.ChartKey | None,
    as_of: date | None,
    unavailable: frozenset[str],
    units: Mapping[str, ProductUnit],
) -> PatientRecord:
    """`build_record` without its memo."""
    parsed = r4.parse_charted(resources, chart)
    problems: list[str] = []  # the resources' own problems are added at the end
    patient_ref = _patient_ref(context)

    drafts: list[tuple[Ref, Mapping[str, Any], Mapping[str, Any]]] = []  # ref, data, original
    unreadable: list[UnreadableOrder] = []
    other = 0
    for index, resource in enumerate(_draft_entries(context)):
        if not isinstance(resource, Mapping) or resource.get("resourceType") != (
            "MedicationRequest"
        ):
            other += 1
            continue
        rid = resource.get("id")
        ref = (
            f"MedicationRequest/{rid}" if isinstance(rid, str) and rid else f"draftOrders[{index}]"
        )
        valid, found = r4.validate(resource)
        problems.extend(found)
        if valid is None:
            normalised = r4.normalise(resource)
            unreadable.append(
                UnreadableOrder(
                    ref=ref,
                    identities=tuple(medications.identify(normalised, parsed)),
                    unidentified=medications.unidentified_reason(normalised, parsed),
                    problems=tuple(found),
                )
            )
            continue
        drafts.append((ref, valid, resource))

    budget.check()
    found_measurements, genetics, obs_problems = observations.measurements(parsed, patient_ref)
    problems.extend(obs_problems)
    patient = parsed.by_ref.get(patient_ref) if patient_ref else None
    encounter_id = context.get("encounterId")
    draft_pairs = [(ref, data) for ref, data, _ in drafts]
    budget.check()
    records, exposed = medications.history(
        parsed, draft_orders=draft_pairs, patient_ref=patient_ref
    )
    # Medications whose drug cannot be told: concurrent therapy is unknown; never runs.
    records += medications.unidentified_records(
        parsed, draft_orders=draft_pairs, patient_ref=patient_ref
    )
    orders = tuple(
        _ordered_drug(ref, data, original, parsed, found_measurements, as_of, units)
        for ref, data, original in drafts
    )
    budget.check()
    diagnoses = tuple(conditions.diagnoses(parsed, patient_ref))
    budget.check()
    history = tuple(conditions.condition_history(parsed, patient_ref))
    conditions_on_file = conditions.conditions_on_file(parsed, patient_ref)
    other_conditions = tuple(conditions.other_condition_names(parsed, patient_ref))
    budget.check()
    intolerances = tuple(conditions.intolerances(parsed, patient_ref))
    people = practitioner.people(parsed, patient_ref)
    encounter = practitioner.encounter(
        encounter_id if isinstance(encounter_id, str) else None, parsed, patient_ref
    )
    coverage = practitioner.coverage_refs(parsed, patient_ref)
    return PatientRecord(
        patient_ref=patient_ref,
        user_ref=_user_ref(context),
        birth_date=parse_date(patient.get("birthDate"), end=True) if patient else None,
        earliest_birth_date=parse_date(patient.get("birthDate")) if patient else None,
        as_of=as_of,
        diagnoses=diagnoses,
        conditions_on_file=conditions_on_file,
        intolerances=intolerances,
        measurements=tuple(found_measurements),
        genetic_results=tuple(genetics),
        medications=tuple(records),
        exposures=tuple(exposed),
        people=people,
        encounter=encounter,
        coverage_refs=coverage,
        orders=orders,
        unreadable_orders=tuple(unreadable),
        other_draft_resources=other,
        unavailable=unavailable,
        # Resources are validated as they are read (above): their problems are known now.
        problems=(*parsed.problems, *problems),
        condition_history=history,
        other_conditions=other_conditions,
        coverages=read_coverages(resources, patient_ref),
    )
