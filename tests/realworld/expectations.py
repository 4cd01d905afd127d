"""What a clinical pharmacist decides for a draft Kineret order on each public sample chart.

One `Case` per chart of `fhir-samples/` (and per scenario variant, see `variants.py`): the
order as the EHR writes it, the pathway, section and outcome, and every criterion of that
section with its status and the one-line reason a pharmacist would give. The expectations
come from the policy text and INTERPRETATION.md read against the chart, never from what the
service answers. Where the reading had to be chosen, the `why` says so.

`klass` names the class of issue 12 a criterion exercises (therapy length, dispenses,
medication identity, record identity, diagnoses, contraindications and roles, value shapes,
request shapes, care setting): a failing criterion points at the lane that owns its fix.

Choices written down here (the policy and INTERPRETATION are silent on them):
- A Condition whose clinicalStatus is resolved is not an active diagnosis: RA resolved years
  before the order is not a covered indication on file (I.E, off-label review).
- A chart with no diagnosis at all and an order with no reason is not an "other
  indication": the pharmacist asks for the diagnosis (documentation needed), not for an
  off-label review.
- An active methotrexate order with no quantity, supply duration, refills or dispenses says
  methotrexate was prescribed, not for how long it was taken: I.A.4 is unknown.
- A positive SARS-CoV-2 test Observation is not a COVID-19 diagnosis (INTERPRETATION reads
  the indication from Conditions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Final

from tests.realworld.charts import Json
from tests.realworld.ehr import OrderEdit, OrderSpec

# Classes of issue 12.
THERAPY_LENGTH: Final = "therapy-length"
RENEWALS: Final = "renewals"
DISPENSES: Final = "dispenses"
MEDICATION_IDENTITY: Final = "medication-identity"
RECORD_IDENTITY: Final = "record-identity"
DIAGNOSES: Final = "diagnoses"
CONTRAINDICATIONS: Final = "contraindications"
ROLES: Final = "roles"
VALUE_SHAPES: Final = "value-shapes"
REQUEST_SHAPES: Final = "request-shapes"
CARE_SETTING: Final = "care-setting"
CLASSES: Final = frozenset(
    {
        THERAPY_LENGTH,
        RENEWALS,
        DISPENSES,
        MEDICATION_IDENTITY,
        RECORD_IDENTITY,
        DIAGNOSES,
        CONTRAINDICATIONS,
        ROLES,
        VALUE_SHAPES,
        REQUEST_SHAPES,
        CARE_SETTING,
    }
)

NOT_EVALUATED: Final = "not-evaluated"
"""The order could not be checked: a card must say so (no section, no criteria)."""
OUTCOMES: Final = frozenset(
    {"criteria-met", "criteria-not-met", "documentation-needed", "off-label-review", NOT_EVALUATED}
)
STATUSES: Final = frozenset({"met", "not-met", "unknown"})


@dataclass(frozen=True)
class Expected:
    status: str
    why: str
    klass: str | None = None


def met(why: str, klass: str | None = None) -> Expected:
    return Expected("met", why, klass)


def not_met(why: str, klass: str | None = None) -> Expected:
    return Expected("not-met", why, klass)


def unknown(why: str, klass: str | None = None) -> Expected:
    return Expected("unknown", why, klass)


Transform = Callable[[list[Json]], list[Json]]


@dataclass(frozen=True)
class Case:
    name: str
    """The chart key (`folder/name`) or, for a variant, `variant/<name>`."""
    chart: str
    """The sample chart it is read from."""
    holds: str
    """What the chart holds that the policy cares about."""
    spec: OrderSpec
    section: str
    outcome: str
    why: str
    criteria: dict[str, Expected]
    pathway: str = "initial"
    transform: Transform | None = field(default=None, compare=False)
    """For a variant: the chart's resources in, the changed resources out."""
    edit_order: OrderEdit | None = field(default=None, compare=False)
    """For a variant: changes the draft order the EHR writes."""
    shape: str | None = None
    """The class of issue 12 the case exercises as a whole (a request shape), if any."""
    record_unreadable: bool = False
    """The EHR sends no prefetch and its FHIR server cannot be reached: the record beyond the
    draft order cannot be read."""
    null_authorization: bool = False
    """Send `"fhirAuthorization": null` (and `"fhirServer": null` with prefetch), as the
    Da Vinci CRD client does."""

    @property
    def is_variant(self) -> bool:
        return self.transform is not None or self.edit_order is not None

    @property
    def classes(self) -> frozenset[str]:
        """The classes of issue 12 this case exercises."""
        found = {e.klass for e in self.criteria.values() if e.klass is not None}
        if self.null_authorization or self.record_unreadable:
            found.add(REQUEST_SHAPES)
        if self.shape is not None:
            found.add(self.shape)
        return frozenset(found)


# --- reasons a pharmacist gives, shared by many charts ------------------------------------------

NO_ROLE = "No prescriber specialty, CareTeam or referral on file: confirm rheumatology."
NO_PREFERRED = "No tocilizumab, adalimumab product or tofacitinib trial or intolerance on file."
NO_SCORE = "No CDAI or RAPID3 score on file."
NO_COMBINATION = "No active biologic DMARD, JAK inhibitor or listed immunosuppressant on file."
DOSE_OK = "100 mg once daily, 28 syringes for 28 days: 100 mg/day and 1 syringe/day."
NO_HYPERSENSITIVITY = "No allergy to anakinra or E. coli-derived proteins on file."
OFF_LABEL = "No covered indication among the active diagnoses: reviewed under CP.PMN.53."
NOT_LISTED = "The diagnoses on file are not among the section III uses; off-label policy decides."
NO_DIAGNOSIS = "No diagnosis on file and the order names no reason: the diagnosis must be sent."


def off_label_criteria(
    combination: str = NO_COMBINATION, hypersensitivity: str = NO_HYPERSENSITIVITY
) -> dict[str, Expected]:
    return {
        "I.E": unknown(OFF_LABEL),
        "III.A": unknown(NOT_LISTED),
        "III.B": met(combination),
        "IV.C": met(hypersensitivity),
    }


def no_diagnosis_criteria() -> dict[str, Expected]:
    return {
        "I.E": unknown(NO_DIAGNOSIS, DIAGNOSES),
        "III.A": unknown(NO_DIAGNOSIS, DIAGNOSES),
        "III.B": met(NO_COMBINATION),
        "IV.C": met(NO_HYPERSENSITIVITY),
    }


def ra_criteria(**changes: Expected) -> dict[str, Expected]:
    """I.A for an adult with active, confirmed RA and nothing else on file; `changes` by
    criterion id with `_` for `.` (I_A_4=...)."""
    base = {
        "I.A.1": met("Active, confirmed rheumatoid arthritis on the problem list."),
        "I.A.2": unknown(NO_ROLE),
        "I.A.3": met("Adult on the order date."),
        "I.A.4": unknown("No methotrexate on file."),
        "I.A.5": unknown(NO_PREFERRED),
        "I.A.6": unknown(NO_SCORE),
        "I.A.7": met(NO_COMBINATION),
        "I.A.8": met(DOSE_OK),
        "III.B": met(NO_COMBINATION),
        "IV.C": met(NO_HYPERSENSITIVITY),
    }
    for key, value in changes.items():
        base[key.replace("_", ".")] = value
    return base


def spec(
    day: str,
    requester: str | None,
    encounter: str | None = None,
    product: str = "rxnorm-sbd",
    user: str | None = None,
) -> OrderSpec:
    return OrderSpec(
        order_date=date.fromisoformat(day),
        product=product,
        requester=f"Practitioner/{requester}" if requester else None,
        encounter=encounter,
        user=user,
    )


MTX_NO_SUPPLY = (
    "Methotrexate 10 mg tablets ordered (still active) with no quantity, supply, refills or "
    "dispenses: how long it was taken is not documented."
)

# --- one case per sample chart ----------------------------------------------------------------

CHART_CASES: Final[tuple[Case, ...]] = (
    Case(
        name="synthea-v2/Asa_Hermiston",
        chart="synthea-v2/Asa_Hermiston",
        holds=(
            "Male, born 1971. Rheumatoid arthritis (SNOMED 69896004) active since 2019-02; "
            "methotrexate 10 mg and naproxen orders active since then, no supply fields; "
            "cyclosporine 50 mg daily stopped 2017; allergies to nuts, dander, pollen."
        ),
        spec=spec(
            "2020-06-10",
            "6d705d81-8546-43b2-b336-31a282128f2d",
            "6eff6fb0-a484-4072-bdfd-d6200489a7fa",
        ),
        section="I.A",
        outcome="documentation-needed",
        why="RA documented; MTX trial length, rheumatology, preferred product, CDAI missing.",
        criteria=ra_criteria(I_A_4=unknown(MTX_NO_SUPPLY, THERAPY_LENGTH)),
    ),
    Case(
        name="synthea-v2/Francine_Veum",
        chart="synthea-v2/Francine_Veum",
        holds=(
            "Female, born 1988. Chronic pain, migraine, prediabetes, anemia; opioid and "
            "contraceptive orders; no rheumatic diagnosis. Last encounter inpatient."
        ),
        spec=spec(
            "2020-09-02",
            "30793bd7-6605-40fe-bc4f-f41957b72d53",
            "a78f6416-d411-44b9-b780-1f4f8bcd0693",
        ),
        section="I.E",
        outcome="off-label-review",
        why="Nothing on file is RA, NOMID, DIRA or COVID-19.",
        criteria=off_label_criteria(),
    ),
    Case(
        name="synthea-v2/Hershel_Marvin",
        chart="synthea-v2/Hershel_Marvin",
        holds=(
            "Male, born 1985. Rheumatoid arthritis (SNOMED) active since 2018-08; methotrexate "
            "10 mg and naproxen orders active since then, no supply fields, no dispenses."
        ),
        spec=spec(
            "2020-02-04",
            "de786289-dd70-4048-b126-b5fa2121471f",
            "2bf3d5f3-f56d-4ef8-8a32-4f864184c11b",
        ),
        section="I.A",
        outcome="documentation-needed",
        why="RA documented; MTX ordered 18 months ago but its length is not documented.",
        criteria=ra_criteria(I_A_4=unknown(MTX_NO_SUPPLY, THERAPY_LENGTH)),
    ),
    Case(
        name="synthea-v2/Laticia_Dibbert",
        chart="synthea-v2/Laticia_Dibbert",
        holds=(
            "Female, born 1948 (died 2013-06-02). Rheumatoid arthritis active since 1973, "
            "naproxen; heart failure, osteoporosis; no DMARD ever ordered."
        ),
        spec=spec(
            "2013-05-31",
            "ed34bab9-9639-452d-bf7a-b1cbace13733",
            "b5a6107a-a849-4b8c-86f4-452c09ff90cb",
        ),
        section="I.A",
        outcome="documentation-needed",
        why="RA documented; no methotrexate or other DMARD trial on file.",
        criteria=ra_criteria(),
    ),
    Case(
        name="synthea-v2/Randall_Stroman",
        chart="synthea-v2/Randall_Stroman",
        holds=(
            "Male, born 1956. Rheumatoid arthritis active since 1987 treated with naproxen "
            "only; yearly simvastatin orders; hyperlipidemia, prediabetes, anemia."
        ),
        spec=spec(
            "2020-11-17",
            "0e99785d-8f2a-45c7-848c-d6b31d1aa50e",
            "a2d00527-0fdc-49f3-99fb-7ccfe0af587d",
        ),
        section="I.A",
        outcome="documentation-needed",
        why="RA documented; no methotrexate trial on file.",
        criteria=ra_criteria(),
    ),
    Case(
        name="synthea-v2/Vito_Feeney",
        chart="synthea-v2/Vito_Feeney",
        holds=(
            "Male, born 1910 (died 1979). Diabetes with retinopathy and nephropathy, "
            "hypertension, metastatic prostate cancer; no rheumatic diagnosis."
        ),
        spec=spec(
            "1979-09-24",
            "e34619ed-fc04-401f-a94c-1cf43395f4b3",
            "10d052c8-126b-4b85-9600-3afc90a76b57",
        ),
        section="I.E",
        outcome="off-label-review",
        why="Nothing on file is a covered indication.",
        criteria=off_label_criteria(),
    ),
    Case(
        name="synthea-v2/Willy_Koepp",
        chart="synthea-v2/Willy_Koepp",
        holds=(
            "Male, born 1977. Rheumatoid arthritis recorded 2009, resolved 2014-02; "
            "methotrexate and naproxen orders stopped; no active rheumatic diagnosis."
        ),
        spec=spec(
            "2019-06-20",
            "e5136663-2491-4304-ae78-6696a1bae405",
            "7d4e27b5-cfaf-4100-91c0-53c1db4be529",
        ),
        section="I.E",
        outcome="off-label-review",
        why="The only RA record is resolved since 2014: no active covered indication.",
        criteria=off_label_criteria(),
    ),
    Case(
        name="synthea-v3/6a4160eb-a793-2f86-2302-378626f46cce",
        chart="synthea-v3/6a4160eb-a793-2f86-2302-378626f46cce",
        holds=(
            "Female, born 1963. Osteoarthritis of knee, hypertension (lisinopril and HCTZ "
            "renewed yearly); roles linked to practitioners by NPI; no rheumatic diagnosis."
        ),
        spec=spec(
            "2022-04-11",
            "434d1b72-48ce-3581-8b8a-96d49f9c52d8",
            "1a617816-6053-3d9b-dd83-88137dc1cad2",
            "rxnorm-scd",
        ),
        section="I.E",
        outcome="off-label-review",
        why="Osteoarthritis is not a covered indication.",
        criteria=off_label_criteria(),
    ),
    Case(
        name="synthea-v3/a5cb8ce9-cec6-6b23-0990-cbaf753578a4",
        chart="synthea-v3/a5cb8ce9-cec6-6b23-0990-cbaf753578a4",
        holds=(
            "Female, born 1927. Osteoporosis (alendronate renewed yearly), hyperlipidemia, "
            "mitral regurgitation; sulfamethoxazole/trimethoprim and tree-nut allergies."
        ),
        spec=spec(
            "2023-02-05",
            "1c86d0cd-7596-3f69-be02-90f3d4832a2f",
            "70530273-caad-c9fc-fb1c-6550b453d7f1",
            "rxnorm-scd",
        ),
        section="I.E",
        outcome="off-label-review",
        why="Nothing on file is a covered indication.",
        criteria=off_label_criteria(),
    ),
    Case(
        name="davinci-test-ehr/pat013",
        chart="davinci-test-ehr/pat013",
        holds="Male, born 1956. COPD, hypoxemia, type 2 diabetes (ICD-10-CM); oxygen orders.",
        spec=spec("2020-11-16", "pra1234", product="ndc"),
        section="I.E",
        outcome="off-label-review",
        why="Nothing on file is a covered indication.",
        criteria=off_label_criteria(),
    ),
    Case(
        name="davinci-test-ehr/pat014",
        chart="davinci-test-ehr/pat014",
        holds=(
            "Male, born 1946. COPD, Lyme meningitis, motor neuron disease, liver transplant "
            "history; methotrexate and azathioprine orders (quantity + refills, no supply "
            "duration) for lupus nephritis, statements and an azathioprine dispense."
        ),
        spec=spec("2020-11-16", "pra1234", product="ndc"),
        section="I.E",
        outcome="off-label-review",
        why="Lupus nephritis and the rest are not covered indications; MTX/AZA may be combined.",
        criteria=off_label_criteria(
            combination="Methotrexate and azathioprine are conventional DMARDs, not III.B drugs."
        ),
    ),
    Case(
        name="davinci-test-ehr/pat015",
        chart="davinci-test-ehr/pat015",
        holds="Male, born 2015. COPD, hypoxemia, early-onset Alzheimer's (test data).",
        spec=spec("2020-11-16", "pra1234", product="ndc11"),
        section="I.E",
        outcome="off-label-review",
        why="Nothing on file is a covered indication.",
        criteria=off_label_criteria(),
    ),
    Case(
        name="davinci-test-ehr/pat016",
        chart="davinci-test-ehr/pat016",
        holds="Female, born 1976. COPD, heart failure, lung disease; penicillin allergy.",
        spec=spec("2020-11-16", "pra1234", product="ndc11"),
        section="I.E",
        outcome="off-label-review",
        why="Nothing on file is a covered indication.",
        criteria=off_label_criteria(),
    ),
    Case(
        name="davinci-crd/medicationRequestPrefetch",
        chart="davinci-crd/medicationRequestPrefetch",
        holds=(
            "Male, born 1970; a Botox draft order, the prescriber's Practitioner and role "
            "(no specialty), a Part D coverage. No conditions, allergies or history."
        ),
        spec=spec("2021-01-15", "b02e3427-79cf-4f2e-9a1f-c4f77313b732"),
        section="I.E",
        outcome="documentation-needed",
        why="No diagnosis anywhere: ask for it; fhirAuthorization null means absent.",
        criteria=no_diagnosis_criteria(),
        null_authorization=True,
    ),
    Case(
        name="davinci-crd/requestWithHydratedPrefetchBundle",
        chart="davinci-crd/requestWithHydratedPrefetchBundle",
        holds="Male patient only (plus device orders in the original request); nothing else.",
        spec=spec("2021-01-15", None),
        section="I.E",
        outcome="documentation-needed",
        why="No diagnosis anywhere: ask for it.",
        criteria=no_diagnosis_criteria(),
        null_authorization=True,
    ),
    Case(
        name="cerner/nancy",
        chart="cerner/nancy",
        holds=(
            "Female, born 1990. Anemia (ICD-10-CM + SNOMED), resolved pregnancy and opioid "
            "abuse, an entered-in-error problem, a text-only COVID-19 worry; hepatitis B "
            "vaccine order; Penicillium allergy and an entered-in-error allergy."
        ),
        spec=spec("2023-10-30", "4122622"),
        section="I.E",
        outcome="off-label-review",
        why="Anemia is not a covered indication; the COVID-19 worry is not a diagnosis.",
        criteria=off_label_criteria(),
    ),
    Case(
        name="us-core/amy-shaw",
        chart="us-core/amy-shaw",
        holds=(
            "Female, born 1987. Duodenal ulcer, SDOH findings; nizatidine orders by code, by "
            "contained and by referenced Medication; a 2021 positive home COVID antigen test "
            "(no COVID-19 condition); sulfonamide, latex, peanut allergies; a general-"
            "practice PractitionerRole; CareTeam with a cardiologist (SNOMED role)."
        ),
        spec=spec("2025-09-02", "Practitioner-1011", product="rxnorm-scd"),
        section="I.E",
        outcome="off-label-review",
        why="Duodenal ulcer is not a covered indication; a 2021 antigen test is not a diagnosis.",
        criteria=off_label_criteria(),
    ),
)
