"""The policy's inputs: frozen, typed facts derived from FHIR R4 resources.

`PolicyFacts` is the only thing the policy engine reads. Every fact keeps the
`ResourceType/id` references of the resources it was derived from, so that a card
can say why. Coded facts carry the names of the value sets (files under
`fhir_mappings/valuesets/`) their codes matched, so that the policy data can speak
of value sets by name and never of FHIR codes.

Neutral values and the engine's view: the value types that say what a chart holds
(`Diagnosis`, `Intolerance`, `Measurement`, `GeneticResult`, `MedicationRecord`,
`ExposureSource`, `TherapyRun`, `Referral`, `EncounterFacts`, `WeightFact`) are also the
parts of the policy-neutral `record.PatientRecord`, built once per request. `PolicyFacts`,
`OrderFacts`, `PrescriberFacts` and `DoseFacts` (its unit counts) are the policy engine's
per-order view of that record (`fhir_mappings.order_view`), for an order routed to a policy
pack: the records other than the evaluated order, runs cut at its date, its prescriber.

Nothing here reads the clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from fhir_mappings.coverage import CoverageRecord
from fhir_mappings.product_unit import ProductUnit

if TYPE_CHECKING:
    from fhir_mappings.record import PatientRecord

Ref = str
"""A FHIR reference in `ResourceType/id` form (or `#id` for a contained resource).

A resource that came without an `id` is still read; it is named by an internal reference
`ResourceType (no id, #<8 hex digits>)`, the start of a SHA-256 of its body (see
`r4.local_ref`): the same body gives the same reference on every call and data path, and
nothing in FHIR can point to it (the space and the "#" keep it apart from `Type/id`)."""

MatchedBy = Literal["ingredient-code", "product-code", "ndc", "hcpcs", "name", "none"]
"""How a medication was recognised: by an RxNorm ingredient code, a known product
code (SCD / SBD / pack ...), an NDC, a HCPCS billing code (claims lines), or, as a
documented fallback, its name in display/text; "none" for an unidentified medication."""

EncounterSetting = Literal["inpatient", "ambulatory", "emergency", "unknown"]
"""Where an encounter takes place, from Encounter.class."""


@dataclass(frozen=True)
class Diagnosis:
    """One coded diagnosis, from a Condition or from the order's own reason."""

    valuesets: frozenset[str]
    """Value sets the code matched, e.g. {"rheumatoid-arthritis"}; empty when none."""
    system: str
    code: str
    display: str
    source: Literal["order-reason", "condition"]
    refs: tuple[Ref, ...]
    recorded: date | None = None
    verification: str = "confirmed"
    """The Condition's verificationStatus: "confirmed" (also when not stated, and for a
    coded order reason), or "provisional", "differential", "unconfirmed" (a working
    diagnosis: it claims the indication but does not establish it). Refuted and
    entered-in-error Conditions never become facts."""
    text_only: frozenset[str] = frozenset()
    """Value sets (of `valuesets`) matched only by words in the code's text / display, for
    sets that need a code (rheumatoid arthritis): the diagnosis is named but not coded."""

    def established(self, valuesets: frozenset[str]) -> bool:
        """Confirmed, and in one of `valuesets` by its code (or by name where the value set
        is matched by name by design, as DIRA)."""
        return self.verification == "confirmed" and bool(
            (self.valuesets - self.text_only) & valuesets
        )


@dataclass(frozen=True)
class Referral:
    """A ServiceRequest that refers the patient to a specialty in a value set."""

    valuesets: frozenset[str]
    authored: date | None
    refs: tuple[Ref, ...]


@dataclass(frozen=True)
class PrescriberFacts:
    """Who ordered, and which specialists take part in the patient's care."""

    requester_ref: Ref | None
    specialty_valuesets: frozenset[str]
    """Value sets matched by the requester's PractitionerRole specialties / codes."""
    specialty_codes: tuple[str, ...]
    """The specialty codes seen on the requester's roles (for the card's reason)."""
    has_role_data: bool
    """False when no PractitionerRole of the requester was available at all."""
    refs: tuple[Ref, ...]
    care_team: tuple[tuple[frozenset[str], Ref], ...] = ()
    """(value sets matched by a participant's role / specialty, CareTeam or
    PractitionerRole reference) for every CareTeam participant with a known role."""
    referrals: tuple[Referral, ...] = ()


@dataclass(frozen=True)
class WeightFact:
    kg: float
    effective: date | None
    ref: Ref


@dataclass(frozen=True)
class DoseLine:
    """One dosageInstruction line as read: mg per administration and administrations a day
    (None when unknown), its `sequence` and its `timing.repeat.count`."""

    mg: float | None
    per_day: float | None
    sequence: int | None = None
    count: int | None = None


@dataclass(frozen=True)
class DoseFacts:
    """Dose arithmetic for one MedicationRequest. A value is None when it cannot be
    derived without guessing; `unknown_reasons` then says why."""

    mg_per_day: float | None
    administrations_per_day: float | None
    mg_per_administration: tuple[float, ...]
    """One entry per dosageInstruction line (after unit conversion)."""
    syringes_per_day: float | None
    """Units of the product a day: each administration takes ceil(dose / deliverable mg)."""
    weight_based_syringes_per_day: float | None
    """Units a day counted in a policy's bands, when the caller gave them (the dose
    arithmetic leaves it None: see `dosing.banded_units_per_day`)."""
    mg_per_kg_per_day: float | None
    weight: WeightFact | None
    """The latest body weight within 90 days of the order, when there is one."""
    dispense_syringes_per_day: float | None
    """dispenseRequest.quantity (in units of the product) / expectedSupplyDuration (days)."""
    duration_days: int | None
    """Intended treatment length (boundsDuration / boundsPeriod / count), if stated."""
    unknown_reasons: tuple[str, ...] = ()
    from_text: bool = False
    """True when the dose or the frequency was read from the text sig (dosageInstruction
    .text) because the coded fields left it out."""
    lines: tuple[DoseLine, ...] = ()
    unit: ProductUnit | None = None
    """The product's unit the arithmetic used (from the pack's drug.json), if known."""
    loading_mg: float | None = None
    """mg of the single loading dose, when the order starts with one (see `dosing`)."""
    maintenance_mg: float | None = None
    """mg per maintenance administration (the highest of the maintenance lines)."""
    interval_days: float | None = None
    """Days between maintenance administrations (once weekly = 7)."""
    schedule_reasons: tuple[str, ...] = ()
    """Why the loading dose, the maintenance dose or the interval is not known."""
    dispense_units: float | None = None
    """dispenseRequest.quantity in units of the product (over `dispense_days`)."""
    dispense_days: float | None = None
    """dispenseRequest.expectedSupplyDuration in days (with `dispense_units`)."""


@dataclass(frozen=True)
class OrderFacts:
    """The order being evaluated (one draft MedicationRequest of a policy pack's drug)."""

    ref: Ref
    resource_id: str
    authored_on: date | None
    status: str
    intent: str
    matched_by: MatchedBy
    reasons: tuple[Diagnosis, ...]
    """Diagnoses from the order's reasonCode / reasonReference."""
    dose: DoseFacts
    requester_ref: Ref | None
    resource: Mapping[str, Any] = field(compare=False, hash=False, repr=False)
    """The draft MedicationRequest as received (never mutated; cards copy it)."""


MedicationResourceType = Literal[
    "MedicationRequest",
    "MedicationStatement",
    "MedicationDispense",
    "MedicationAdministration",
    "Claim",
    "ExplanationOfBenefit",
]
"""The resources a medication record comes from (claims lines are records like dispenses)."""

Certainty = Literal["documented", "estimated", "unknown"]
"""How sure a length of exposure is: "documented" when a record states it (a supply
duration, an effective period, a days supply), "estimated" when it is worked out (quantity
over the daily dose, orders renewing each other), "unknown" when nothing says how long."""


@dataclass(frozen=True)
class MedicationRecord:
    """One MedicationRequest / MedicationStatement / MedicationDispense, or one Claim /
    ExplanationOfBenefit line, for a drug in any known value set (the ordered drug included),
    other than the evaluated order.

    A claim line's `status` is "completed" (a billed fill or administration); cancelled,
    draft, entered-in-error, pre-authorization and rejected claims are no records."""

    ref: Ref
    resource_type: MedicationResourceType
    drug: str
    """Normalised ingredient name, e.g. "methotrexate", "adalimumab"."""
    valuesets: frozenset[str]
    matched_by: MatchedBy
    status: str
    start: date | None
    end: date | None
    """The last day of exposure the record establishes (documented or estimated, see
    `length`); None when its length is unknown (never a prescription's validity window)."""
    is_draft_order: bool
    """True for another order in this request's draftOrders."""
    mg_per_day: float | None = None
    """Daily dose when derivable (used for the current dose of the ordered drug)."""
    unidentified: bool = False
    """The drug cannot be told (a reference to a Medication neither contained, sent nor
    fetched; only unknown codes and no name): `drug` is "unidentified medication" and
    `valuesets` is empty. Never part of a therapy run; concurrent therapy is unknown."""
    days_supply: float | None = None
    """MedicationDispense.daysSupply (days) as the record states it (a claims line's
    days supply likewise); None when not stated or not a dispense."""
    length: Certainty = "unknown"
    """How sure `start`..`end` is as a length of exposure."""
    dosages: tuple[Mapping[str, Any], ...] = field(
        default=(), compare=False, hash=False, repr=False
    )
    """The record's sig as written (`dosageInstruction`, or a statement's `dosage`), for a
    reader that works out a daily dose (the per-order view fills `mg_per_day` from it for
    the ordered drug, at the order's body weight)."""


@dataclass(frozen=True)
class ExposureSource:
    """One record's part in a therapy run."""

    ref: Ref
    resource_type: MedicationResourceType
    start: date
    end: date
    """The last day the record establishes (its start when its length is unknown)."""
    certainty: Certainty
    basis: str
    """How its length was found, in plain words, e.g. "days supply 90",
    "quantity ordered lasts 30 days at the dose ordered, 3 refills", "no supply duration
    or quantity"."""
    open_ended: bool = False
    """Its exposure may have gone on after `end` (its length is unknown, or a lower
    bound)."""


@dataclass(frozen=True)
class TherapyRun:
    """The longest consecutive run of one drug (ingredient): records joined when the
    gap between them is at most 14 days, and orders renewing each other (see
    `fhir_mappings.exposures`).

    `start`..`end` (`days`, both ends counted) is what the records establish; when
    `open_ended`, the last part of the run has an unknown length and the exposure may
    have gone on after `end` (up to the order date): the run is then no proof that a
    trial was short."""

    drug: str
    valuesets: frozenset[str]
    start: date
    end: date
    days: int
    refs: tuple[Ref, ...]
    certainty: Certainty = "documented"
    """"documented" when every length in the run is stated by its records, "estimated"
    when any is worked out (quantity and dose, renewals), "unknown" when none of its
    records says how long it lasted."""
    open_ended: bool = False
    sources: tuple[ExposureSource, ...] = ()
    estimated_from: tuple[str, ...] = ()
    """For an estimated run: what the estimate rests on, in plain words
    ("the quantity and dose ordered", "renewed orders")."""
    began_earlier: bool = False
    """Its first record shows the drug taken on `start` without saying it began then (a
    medication statement with one date): the run may have begun before `start`, so the
    time to the order date is no limit on its length."""


@dataclass(frozen=True)
class Intolerance:
    """Intolerance, allergy or contraindication to a drug or substance."""

    valuesets: frozenset[str]
    """Value sets of the substance, e.g. {"methotrexate"}, {"e-coli-derived-proteins"}."""
    kind: Literal["allergy", "intolerance", "contraindication"]
    substance: str
    reason: str
    refs: tuple[Ref, ...]


@dataclass(frozen=True)
class Measurement:
    """One Observation value the policy can use."""

    kind: str
    """Value-set name of the Observation code: "cdai", "rapid3", "acr-2010-score",
    "acr-joints-large", "acr-joints-small", "rheumatoid-factor", "acpa", "crp",
    "esr", "symptom-duration-weeks", "body-weight", "alcohol-units-per-week",
    "treatment-response"."""
    value: float | None
    unit: str | None
    effective: date | None
    ref: Ref
    reference_high: float | None = None
    interpretation: str | None = None
    """Lower-case code or text: "high", "normal", "positive", "negative", "indeterminate",
    "improved", "worse", "unchanged"."""
    note: str | None = None
    """Why a value sent in another shape was not read, e.g. "valueString is a range, not
    one value; not read as a score" (never the value itself)."""
    reference_unit: str | None = None
    """The unit of `reference_high` as the result states it (referenceRange.high code or
    unit); None when not stated (then read in the value's unit)."""
    comparator: str | None = None
    """valueQuantity.comparator ("<", "<=", ">=", ">"): the value is a bound, not the
    result (a result under the assay's reporting limit, "< 3 mg/L", or over its measuring
    range, "> 160 mg/L"); None for an exact value."""


@dataclass(frozen=True)
class GeneticResult:
    gene: str
    finding: Literal["pathogenic", "likely-pathogenic", "uncertain", "benign", "no-variant"]
    effective: date | None
    refs: tuple[Ref, ...]


@dataclass(frozen=True)
class EncounterFacts:
    ref: Ref
    setting: EncounterSetting
    class_code: str | None
    found: bool = True
    """False when the request names the encounter but its Encounter resource was neither
    sent nor readable: the setting is then unknown, not guessed."""
    note: str | None = None
    """Why a found Encounter's class is not read as the setting (another patient's, cancelled,
    ended before the order date), in plain words; None when its class was read."""
    ended: date | None = None
    """The last day of a finished Encounter's period (for the order-date check)."""


ConditionSource = Literal["problem-list", "encounter-diagnosis", "condition", "observation"]
"""Where a recorded condition comes from: a Condition on the problem list, a Condition
recorded as an encounter diagnosis (its category, or named by an Encounter.diagnosis), a
Condition of another or no category, or an Observation whose code or value is a finding
(a symptom recorded as an observation)."""


@dataclass(frozen=True)
class ConditionRecord:
    """One recorded condition in a diagnosis value set, whatever its clinical status:
    active, recurrence, relapse, remission, inactive or resolved (a past episode). Refuted
    and entered-in-error Conditions are never records. The history of a recurring
    condition is read from these (episodes, findings)."""

    valuesets: frozenset[str]
    system: str
    code: str
    display: str
    ref: Ref
    source: ConditionSource
    onset: date | None
    """The first day the onset allows (onsetDateTime, onsetPeriod.start; a partial date
    "2024-03" is 2024-03-01); for an encounter diagnosis with no onset, the encounter's
    first day. None when not stated as a date."""
    onset_latest: date | None
    """The last day the onset allows ("2024-03" is 2024-03-31); as `onset` for a full date."""
    abatement: date | None
    """The last day the abatement allows (abatementDateTime, abatementPeriod end or start);
    None when not stated as a date."""
    abatement_earliest: date | None
    """The first day the abatement allows; as `abatement` for a full date."""
    abated: bool
    """An abatement is recorded (a date, or only words / true / an age): the condition
    ended, even when `abatement` cannot say when."""
    clinical_status: str | None
    """Lower-case clinicalStatus code ("active", "resolved", ...); None when not stated."""
    verification: str = "confirmed"
    """As `Diagnosis.verification`."""
    recorded: date | None = None
    """recordedDate (for an Observation: its effective date)."""

    @property
    def standing(self) -> bool:
        """Still stands: active, recurrence or relapse, or no status and not abated."""
        if self.clinical_status is not None:
            return self.clinical_status in ("active", "recurrence", "relapse")
        return not self.abated


@dataclass(frozen=True)
class PolicyFacts:
    """Everything the policy engine may read for one routed order: a per-order view of
    the request's `PatientRecord` (`record`)."""

    order: OrderFacts
    patient_ref: Ref
    birth_date: date | None
    """The latest day the recorded birthDate allows (a year-only "2008" is 2008-12-31), so
    an age computed from it is never more than the patient's age."""
    diagnoses: tuple[Diagnosis, ...]
    """The patient's active Conditions in a diagnosis value set, confirmed or working
    (provisional / differential / unconfirmed, see `Diagnosis.verification`); refuted and
    entered-in-error ones are left out."""
    prescriber: PrescriberFacts
    medications: tuple[MedicationRecord, ...]
    therapy_runs: tuple[TherapyRun, ...]
    intolerances: tuple[Intolerance, ...]
    measurements: tuple[Measurement, ...]
    genetic_results: tuple[GeneticResult, ...]
    encounter: EncounterFacts | None
    coverage_refs: tuple[Ref, ...]
    problems: tuple[str, ...] = ()
    """Resources left out and why, e.g. "Observation/7: valueQuantity.value not a number"."""
    unavailable: frozenset[str] = frozenset()
    """Resource types the EHR could not give for this call (a prefetch key it answered
    with an OperationOutcome, an incomplete Bundle, or a FHIR read that failed): "nothing
    of that type was found" proves nothing, so answers resting on it are unknown."""
    conditions_on_file: int = 0
    """Conditions in the patient's record, of any code and status but entered-in-error:
    none at all means the chart names no use for the drug, which is a diagnosis to ask for
    rather than an off-label use (a refuted or resolved diagnosis was looked at, so a chart
    holding only those is still read as off-label)."""
    earliest_birth_date: date | None = None
    """The earliest day the recorded birthDate allows (a year-only "2008" is 2008-01-01);
    the same as `birth_date` for a full date."""
    record: PatientRecord | None = field(default=None, compare=False, hash=False, repr=False)
    """The policy-neutral patient record these facts are a view of (shared by every order
    of the call); None for facts built by hand."""
    condition_history: tuple[ConditionRecord, ...] = ()
    """Every recorded condition in a diagnosis value set, of any clinical status (resolved
    and inactive ones too), with onset and abatement dates: problem-list Conditions,
    encounter diagnoses and findings recorded as Observations (`ConditionRecord`)."""
    coverages: tuple[CoverageRecord, ...] = ()
    """The active Coverages of `coverage_refs` with their payors (the CRD layer picks the
    plan's own among them); empty for facts built by hand."""
    other_conditions: tuple[str, ...] = ()
    """The recorded names of the patient's standing, confirmed Conditions that are in no
    diagnosis value set (e.g. a use no policy lists): for a card to name the diagnosis of
    an off-label order; no check reads them."""
