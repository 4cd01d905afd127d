"""Write the rilonacept (Arcalyst, IL1.RIL.01) scenario requests (this folder, *.json).

Run `python -m tests.scenarios.rilonacept.make_scenarios` from the repository root after
editing a scenario here. Each file is an order-sign request (a FHIR chart as prefetch and the
Arcalyst draft order) plus `_expect` (stripped before sending): the outcome, pathway, section,
per-criterion statuses and the most severe card indicator that the policy text (source.txt)
and the pack's INTERPRETATION.md call for, and `why` (the clause they rest on). They mirror
the pack's facts-in cases (cds_service/packs/IL1.RIL.01/cases), written the way an EHR and
its laboratories record the same facts. Expectations come from the documents, not from what
the service answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.scenarios.rilonacept import builder as b

Json = dict[str, Any]
Edit = Callable[[b.Chart], None]
OUT_DIR = Path(__file__).resolve().parent

CAPS_INITIAL = ("I.A.1", "I.A.2", "I.A.3", "I.A.4", "I.A.5", "I.A.6", "I.A.7", "III.C")
DIRA_INITIAL = ("I.B.1", "I.B.2", "I.B.3", "I.B.4", "I.B.5", "I.B.6", "I.B.7", "III.C")
RP_INITIAL = ("I.C.1", "I.C.2", "I.C.3", "I.C.4", "I.C.5", "I.C.6", "I.C.7", "III.C")
CONTINUED = ("II.A.1", "II.A.2", "II.A.3", "II.A.4")


# --- the section bases: charts on which every criterion is met --------------------------------


def caps_chart(chart: b.Chart) -> None:
    """A 41-year-old with Muckle-Wells syndrome, seen by an allergist / immunologist: CRP
    25 mg/L (range <= 10) two months ago, urticaria and bilateral sensorineural hearing loss
    on the problem list, negative QuantiFERON a month ago, 72 kg; Arcalyst 320 mg loading
    then 160 mg weekly, 5 vials for 28 days."""
    chart.conditions = [
        b.condition(
            "cond-caps",
            [b.CAPS_ICD, b.MWS_SCT],
            "Muckle-Wells syndrome",
            onset="2009-05-11",
        ),
        b.symptom(
            "cond-urticaria", [b.URTICARIA, b.URTICARIA_SCT], "Urticaria-like rash", "2009-05-11"
        ),
        b.symptom("cond-hearing", [b.HEARING_LOSS], "Sensorineural hearing loss", b.day(-400)),
    ]
    chart.observations = [
        b.crp("obs-crp-1", b.day(-60), 25, flag="H"),
        b.igra("obs-igra", b.day(-30), "negative"),
        b.weight("obs-wt", b.day(-30), 72),
    ]


def dira_chart(chart: b.Chart) -> None:
    """A 10-year-old, 30 kg, with DIRA (M04.8) and a pathogenic IL1RN variant, seen by a
    rheumatologist, in remission on Kineret (active order since 400 days, filled 20 days ago;
    CRP 2 mg/L), negative QuantiFERON; Arcalyst 132 mg (4.4 mg/kg) weekly, 4 vials / 28 days."""
    chart.patient = b.patient(b.years_before(10, -40))
    chart.specialty(b.RHEUMATOLOGY)
    chart.conditions = [
        b.condition(
            "cond-dira",
            [b.AUTOINFLAMMATORY_OTHER],
            "Deficiency of interleukin-1 receptor antagonist (DIRA)",
            onset="2016-11-02",
        )
    ]
    chart.observations = [
        b.il1rn_result("obs-il1rn", "2017-01-20", b.PATHOGENIC),
        b.crp("obs-crp-1", b.day(-20), 2),
        b.igra("obs-igra", b.day(-30), "negative"),
        b.weight("obs-wt", b.day(-10), 30),
    ]
    chart.requests = [
        b.med_request(
            "rx-kineret",
            b.KINERET_SBD,
            b.day(-400),
            supply_days=28,
            repeats=11,
            quantity=28,
            quantity_unit="syringe",
        )
    ]
    chart.dispenses = [
        b.med_dispense("md-kineret", b.KINERET_NDC, b.day(-20), 28, 28, unit="syringe")
    ]
    chart.drafts = [b.arcalyst_draft(dosage=b.only_weekly(132), quantity=4)]


def rp_chart(chart: b.Chart) -> None:
    """A 56-year-old seen by a cardiologist: a first pericarditis episode 300 days ago
    (encounter diagnosis, resolved 20 days later), a recurrence 60 days ago (active problem)
    that began after 190 days of colchicine (pharmacy fills every 90 days), ibuprofen 600 mg
    for 14 days during it, negative QuantiFERON; Arcalyst 320 mg loading then 160 mg weekly."""
    chart.patient = b.patient(b.years_before(56, -120), gender="male")
    chart.specialty(b.CARDIOLOGY)
    chart.conditions = [
        b.pericarditis_episode("cond-peri-1", b.day(-300), b.day(-280)),
        b.pericarditis_episode(
            "cond-peri-2",
            b.day(-60),
            category="problem-list-item",
            code=b.PERICARDITIS_IDIOPATHIC,
            text="Recurrent idiopathic pericarditis",
        ),
    ]
    chart.dispenses = [
        b.med_dispense(f"md-colch-{i}", b.COLCHICINE_TAB, b.day(offset), 90, 90)
        for i, offset in enumerate((-250, -160, -70), start=1)
    ]
    chart.statements = [b.med_statement("ms-ibuprofen", b.IBUPROFEN_TAB, b.day(-60), b.day(-46))]
    chart.observations = [
        b.igra("obs-igra", b.day(-30), "negative"),
        b.weight("obs-wt", b.day(-30), 84),
    ]


def _rilonacept_history(chart: b.Chart, start: int = -200) -> None:
    """Arcalyst ordered `start` days ago (active, weekly 160 mg) and filled every 28 days."""
    chart.requests.append(
        b.med_request(
            "rx-arcalyst",
            b.ARCALYST_SBD,
            b.day(start),
            supply_days=28,
            repeats=11,
            quantity=4,
            quantity_unit="vial",
            dosage=[b.loading(320), b.weekly(160)],
        )
    )
    fills = range(start, -13, 28)
    chart.dispenses.extend(
        b.med_dispense(f"md-arcalyst-{i}", b.ARCALYST_NDC, b.day(offset), 28, 4, unit="vial")
        for i, offset in enumerate(fills, start=1)
    )


def caps_continued_chart(chart: b.Chart) -> None:
    """Muckle-Wells on Arcalyst for 200 days: CRP 30 mg/L before it began, 4 mg/L ten days
    ago; 160 mg weekly, 4 vials / 28 days."""
    caps_chart(chart)
    _rilonacept_history(chart)
    chart.observations = [
        b.crp("obs-crp-0", b.day(-210), 30, flag="H"),
        b.crp("obs-crp-1", b.day(-10), 4, flag="N"),
        b.weight("obs-wt", b.day(-30), 72),
    ]
    chart.drafts = [b.arcalyst_draft(dosage=b.only_weekly(160), quantity=4)]


def dira_continued_chart(chart: b.Chart) -> None:
    """DIRA on Arcalyst for 200 days (Kineret stopped when it began): CRP 2 mg/L 20 days
    ago, 30 kg; 132 mg weekly."""
    dira_chart(chart)
    chart.requests = [
        b.med_request(
            "rx-kineret",
            b.KINERET_SBD,
            b.day(-600),
            status="stopped",
            supply_days=28,
            quantity=28,
            quantity_unit="syringe",
        )
    ]
    chart.dispenses = []
    _rilonacept_history(chart)


def rp_continued_chart(chart: b.Chart) -> None:
    """Recurrent pericarditis on Arcalyst for 200 days since the second episode resolved;
    no episode since; 160 mg weekly."""
    rp_chart(chart)
    chart.conditions[1] = b.pericarditis_episode(
        "cond-peri-2", b.day(-260), b.day(-230), category="problem-list-item"
    )
    chart.conditions[0] = b.pericarditis_episode("cond-peri-1", b.day(-500), b.day(-480))
    chart.conditions.append(
        b.condition(
            "cond-rp",
            [b.RECURRENT_PERICARDITIS_SCT],
            "Recurrent pericarditis, on rilonacept",
            onset=b.day(-260),
        )
    )
    _rilonacept_history(chart)
    chart.drafts = [b.arcalyst_draft(dosage=b.only_weekly(160), quantity=4)]


BASES: dict[str, tuple[Edit, str, str, tuple[str, ...]]] = {
    "caps": (caps_chart, "initial", "I.A", CAPS_INITIAL),
    "dira": (dira_chart, "initial", "I.B", DIRA_INITIAL),
    "rp": (rp_chart, "initial", "I.C", RP_INITIAL),
    "caps-continued": (caps_continued_chart, "continued", "II.A", CONTINUED),
    "dira-continued": (dira_continued_chart, "continued", "II.A", CONTINUED),
    "rp-continued": (rp_continued_chart, "continued", "II.A", CONTINUED),
}


@dataclass(frozen=True)
class Scenario:
    name: str
    base: str
    why: str
    edits: Sequence[Edit]
    outcome: str
    indicator: str
    changes: dict[str, str] = field(default_factory=dict)
    section: str | None = None
    pathway: str | None = None
    criteria: dict[str, str] | None = None
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    mentions: Sequence[str] = ()
    free: Sequence[str] = ()
    proposed_orders: Sequence[str] | None = None
    """The first code of each order the cards offer to add (policy.yaml `companions`), when
    the scenario is about them ([] = none offered)."""

    def expected_criteria(self) -> dict[str, str]:
        """Every criterion of the base met, with `changes` applied (or exactly `criteria`);
        the `free` ones are not compared (the scenario is not about them)."""
        if self.criteria is not None:
            return dict(self.criteria)
        out = {cid: "met" for cid in BASES[self.base][3]}
        out.update(self.changes)
        for cid in self.free:
            del out[cid]
        return out


# --- edits ------------------------------------------------------------------------------------


def nothing(chart: b.Chart) -> None:
    del chart


def born(years: int, offset_days: int = 0) -> Edit:
    def edit(chart: b.Chart) -> None:
        chart.patient = b.patient(b.years_before(years, offset_days))

    return edit


def no_birth_date(chart: b.Chart) -> None:
    chart.patient = b.patient(None)


def specialty(code: b.Code) -> Edit:
    def edit(chart: b.Chart) -> None:
        chart.specialty(code)

    return edit


def replace_observation(oid: str, new: Json | None) -> Edit:
    """Replaces (or with None removes) the observation `oid`; adds `new` when absent."""

    def edit(chart: b.Chart) -> None:
        kept = [o for o in chart.observations if o["id"] != oid]
        chart.observations = kept + ([new] if new is not None else [])

    return edit


def add_observation(*new: Json) -> Edit:
    def edit(chart: b.Chart) -> None:
        chart.observations.extend(new)

    return edit


def add_condition(*new: Json) -> Edit:
    def edit(chart: b.Chart) -> None:
        chart.conditions.extend(new)

    return edit


def drop_conditions(*ids: str) -> Edit:
    def edit(chart: b.Chart) -> None:
        chart.conditions = [c for c in chart.conditions if c["id"] not in ids]

    return edit


def set_conditions(*new: Json) -> Edit:
    def edit(chart: b.Chart) -> None:
        chart.conditions = list(new)

    return edit


def add_request(*new: Json) -> Edit:
    def edit(chart: b.Chart) -> None:
        chart.requests.extend(new)

    return edit


def add_allergy(*new: Json) -> Edit:
    def edit(chart: b.Chart) -> None:
        chart.allergies.extend(new)

    return edit


def draft(**kwargs: Any) -> Edit:
    def edit(chart: b.Chart) -> None:
        chart.drafts = [b.arcalyst_draft(**kwargs)]

    return edit


def response_assessment(word: str) -> Edit:
    """The prescriber's charted response to therapy (an exam Observation with the words)."""

    def edit(chart: b.Chart) -> None:
        chart.assessments.append(
            {
                "resourceType": "Observation",
                "id": "obs-response",
                "status": "final",
                "category": [b.concept(b.OBS_CATEGORY, "exam", "Exam")],
                "code": {"text": "Response to treatment"},
                "subject": b.PATIENT_REF,
                "effectiveDateTime": b.day(-10),
                "valueCodeableConcept": {"text": word},
                "note": [{"text": "Flares: 1 in the last 6 months (6 in the 6 months before)"}],
            }
        )

    return edit


def draft_shape(shape: Callable[[Json], Json]) -> Edit:
    def edit(chart: b.Chart) -> None:
        chart.drafts = [shape(d) for d in chart.drafts]

    return edit


def coded_by_ndc_only(order: Json) -> Json:
    order["medicationCodeableConcept"] = b.concept(b.NDC, "73604091401", "ARCALYST 220MG VL")
    return order


def colchicine_prescribed(chart: b.Chart) -> None:
    """Colchicine as the prescription (0.6 mg twice daily, 90 days with 3 refills from 250
    days ago) instead of pharmacy fills."""
    no_colchicine(chart)
    chart.requests.append(
        b.med_request(
            "rx-colch",
            b.COLCHICINE_TAB,
            b.day(-250),
            supply_days=90,
            repeats=3,
            quantity=180,
            dosage=[b.daily_tablets(0.6, 2, "Take 0.6 mg by mouth twice daily")],
        )
    )


def rilonacept_statement_only(chart: b.Chart) -> None:
    """Arcalyst known only from the medication list: a patient-reported MedicationStatement
    (active, "taking") with no date, as reconciliation writes it."""
    chart.requests = [r for r in chart.requests if r["id"] != "rx-arcalyst"]
    chart.dispenses = [d for d in chart.dispenses if not d["id"].startswith("md-arcalyst")]
    statement = b.med_statement("ms-arcalyst", b.ARCALYST_SBD, b.day(-1), None, status="active")
    del statement["effectivePeriod"]
    statement["informationSource"] = b.PATIENT_REF
    chart.statements.append(statement)


def unidentified_medication(chart: b.Chart) -> None:
    """An active order for an injection the EHR names only in free text."""
    chart.requests.append(
        {
            "resourceType": "MedicationRequest",
            "id": "rx-outside",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "Biologic injection per outside records"},
            "subject": b.PATIENT_REF,
            "authoredOn": b.day(-20),
        }
    )


def no_kineret(chart: b.Chart) -> None:
    chart.requests = [r for r in chart.requests if r["id"] != "rx-kineret"]
    chart.dispenses = [d for d in chart.dispenses if d["id"] != "md-kineret"]


def second_kineret_draft(chart: b.Chart) -> None:
    chart.drafts.append(b.kineret_draft())


def colchicine_fills(*offsets: int) -> Edit:
    def edit(chart: b.Chart) -> None:
        kept = [d for d in chart.dispenses if not d["id"].startswith("md-colch")]
        chart.dispenses = kept + [
            b.med_dispense(f"md-colch-{i}", b.COLCHICINE_TAB, b.day(o), 30, 30)
            for i, o in enumerate(offsets, start=1)
        ]

    return edit


def no_nsaid(chart: b.Chart) -> None:
    chart.statements = [s for s in chart.statements if s["id"] != "ms-ibuprofen"]


def aspirin_instead(chart: b.Chart) -> None:
    no_nsaid(chart)
    chart.statements.append(b.med_statement("ms-aspirin", b.ASPIRIN_IN, b.day(-58), b.day(-44)))


def no_colchicine(chart: b.Chart) -> None:
    chart.dispenses = [d for d in chart.dispenses if not d["id"].startswith("md-colch")]


def rilonacept_started(offset: int) -> Edit:
    def edit(chart: b.Chart) -> None:
        chart.requests = [r for r in chart.requests if r["id"] != "rx-arcalyst"]
        chart.dispenses = [d for d in chart.dispenses if not d["id"].startswith("md-arcalyst")]
        chart.requests.append(
            b.med_request(
                "rx-arcalyst",
                b.ARCALYST_SBD,
                b.day(offset),
                supply_days=28,
                repeats=11,
                quantity=5,
                quantity_unit="vial",
                dosage=[b.loading(320), b.weekly(160)],
            )
        )

    return edit


ACTIVE_KINERET = b.med_request(
    "rx-kineret-cur",
    b.KINERET_SBD,
    b.day(-40),
    supply_days=28,
    repeats=5,
    quantity=28,
    quantity_unit="syringe",
)
ACTIVE_ILARIS = b.med_request(
    "rx-ilaris", b.ILARIS, b.day(-35), supply_days=56, repeats=2, quantity=1, quantity_unit="vial"
)
ACTIVE_ACTEMRA = b.med_request(
    "rx-actemra",
    b.ACTEMRA,
    b.day(-20),
    supply_days=28,
    repeats=5,
    quantity=4,
    quantity_unit="syringe",
)
ISONIAZID = b.med_request(
    "rx-inh",
    b.ISONIAZID_TAB,
    b.day(-200),
    status="completed",
    supply_days=90,
    repeats=2,
    quantity=90,
)
PNEUMONIA = b.condition(
    "cond-pneumonia",
    [b.PNEUMONIA],
    "Community-acquired pneumonia",
    onset=b.day(-5),
    category="encounter-diagnosis",
)

# --- the scenarios ----------------------------------------------------------------------------

SCENARIOS: list[Scenario] = [
    # ================================================================ I.A CAPS
    Scenario(
        "caps_initial_met",
        "caps",
        "I.A: Muckle-Wells, allergist / immunologist, CRP above range before treatment, two "
        "symptoms, negative IGRA, 320 mg loading then 160 mg weekly, 5 vials / 28 days: met",
        [nothing],
        "criteria-met",
        "info",
        proposed_orders=[],
    ),
    Scenario(
        "caps_loading_in_vials",
        "caps",
        "I.A.7 / Appendix C: 2 vials once then 1 vial weekly is 320 mg then 160 mg: met",
        [draft(dosage=[b.loading(2, "vial", "{vial}"), b.weekly(1, "vial", "{vial}")])],
        "criteria-met",
        "info",
    ),
    Scenario(
        "caps_fcas_snomed",
        "caps",
        "I.A.1: SNOMED CT familial cold autoinflammatory syndrome: the FCAS phenotype, met",
        [
            set_conditions(
                b.condition("cond-caps", [b.FCAS_SCT], "Familial cold autoinflammatory syndrome"),
                b.symptom(
                    "cond-urticaria", [b.URTICARIA], "Cold urticaria-like rash", "2010-01-01"
                ),
                b.symptom("cond-arthralgia", [b.ARTHRALGIA], "Arthralgia", "2012-01-01"),
            )
        ],
        "criteria-met",
        "info",
    ),
    Scenario(
        "caps_ia1_m04_2_only_phenotype_unknown",
        "caps",
        "I.A.1: M04.2 alone names the whole CAPS family: phenotype unknown, never met",
        [
            set_conditions(
                b.condition("cond-caps", [b.CAPS_ICD], "Cryopyrin-associated periodic syndrome"),
                b.symptom("cond-urticaria", [b.URTICARIA], "Urticaria", "2009-05-11"),
                b.symptom(
                    "cond-hearing", [b.HEARING_LOSS], "Sensorineural hearing loss", b.day(-400)
                ),
            )
        ],
        "documentation-needed",
        "warning",
        {"I.A.1": "unknown"},
    ),
    Scenario(
        "caps_ia2_family_physician_unknown",
        "caps",
        "I.A.2: a family physician with no consultation on file: unknown (never not-met)",
        [specialty(b.FAMILY_MEDICINE)],
        "documentation-needed",
        "warning",
        {"I.A.2": "unknown"},
    ),
    Scenario(
        "caps_ia2_dermatologist",
        "caps",
        "I.A.2: a dermatologist is one of the four specialties: met",
        [specialty(b.DERMATOLOGY)],
        "criteria-met",
        "info",
    ),
    Scenario(
        "caps_ia3_age_11",
        "caps",
        "I.A.3: 11 years old on the order date: not-met",
        [born(11, 30)],
        "criteria-not-met",
        "warning",
        {"I.A.3": "not-met", "I.A.7": "not-met"},
    ),
    Scenario(
        "caps_ia3_no_birth_date",
        "caps",
        "I.A.3: no birth date: unknown",
        [no_birth_date],
        "documentation-needed",
        "warning",
        {"I.A.3": "unknown", "I.A.7": "unknown"},
    ),
    Scenario(
        "caps_ia4_normal_crp",
        "caps",
        "I.A.4.a: the only CRP (4 mg/L) is within its range (<= 10 mg/L): not-met",
        [replace_observation("obs-crp-1", b.crp("obs-crp-1", b.day(-60), 4, flag="N"))],
        "criteria-not-met",
        "warning",
        {"I.A.4": "not-met"},
    ),
    Scenario(
        "caps_ia4_no_marker",
        "caps",
        "I.A.4.a: no CRP or SAA result: unknown",
        [replace_observation("obs-crp-1", None)],
        "documentation-needed",
        "warning",
        {"I.A.4": "unknown"},
    ),
    Scenario(
        "caps_ia4_saa_high_mg_dl",
        "caps",
        "I.A.4.a / Appendix E: SAA 0.9 mg/dL above its range (<= 0.64 mg/dL), CRP normal: met",
        [
            replace_observation("obs-crp-1", b.crp("obs-crp-1", b.day(-60), 4, flag="N")),
            add_observation(b.saa("obs-saa", b.day(-60), 0.9, "mg/dL", flag="H")),
        ],
        "criteria-met",
        "info",
    ),
    Scenario(
        "caps_ia4_crp_mg_dl_over_default",
        "caps",
        "I.A.4.a / Appendix E: CRP 1.8 mg/dL with no reference range is above 1.0 mg/dL: met",
        [
            replace_observation(
                "obs-crp-1", b.crp("obs-crp-1", b.day(-60), 1.8, "mg/dL", ref_high=None)
            )
        ],
        "criteria-met",
        "info",
    ),
    Scenario(
        "caps_ia4_one_symptom",
        "caps",
        "I.A.4.b: one typical symptom recorded: unknown (absent symptoms are rarely coded)",
        [drop_conditions("cond-hearing")],
        "documentation-needed",
        "warning",
        {"I.A.4": "unknown"},
    ),
    Scenario(
        "caps_ia5_igra_indeterminate",
        "caps",
        "I.A.5 / Appendix E: an indeterminate IGRA is not negative: unknown",
        [replace_observation("obs-igra", b.igra("obs-igra", b.day(-30), "indeterminate"))],
        "documentation-needed",
        "warning",
        {"I.A.5": "unknown"},
        # A result is on file: the card asks for a repeat test, no order is proposed.
        proposed_orders=[],
    ),
    Scenario(
        "caps_ia5_no_tb_screen",
        "caps",
        "I.A.5: no TST / IGRA and no latent TB treatment on file: unknown; the card offers "
        "an IGRA or a tuberculin skin test order (companions)",
        [replace_observation("obs-igra", None)],
        "documentation-needed",
        "warning",
        {"I.A.5": "unknown"},
        proposed_orders=["71773-6", "28163009"],
    ),
    Scenario(
        "caps_ia5_igra_positive_untreated",
        "caps",
        "I.A.5: positive IGRA, no latent TB treatment: not-met",
        [replace_observation("obs-igra", b.igra("obs-igra", b.day(-30), "positive"))],
        "criteria-not-met",
        "warning",
        {"I.A.5": "not-met"},
    ),
    Scenario(
        "caps_ia5_igra_positive_treated",
        "caps",
        "I.A.5: positive IGRA and isoniazid for latent TB: met",
        [
            replace_observation("obs-igra", b.igra("obs-igra", b.day(-250), "positive")),
            add_request(ISONIAZID),
        ],
        "criteria-met",
        "info",
    ),
    Scenario(
        "caps_ia5_skin_test_0_mm",
        "caps",
        "I.A.5: tuberculin skin test read 0 mm, negative: met",
        [replace_observation("obs-igra", b.skin_test("obs-tst", b.day(-40), 0, "N"))],
        "criteria-met",
        "info",
    ),
    Scenario(
        "caps_ia5_skin_test_10_mm_uninterpreted",
        "caps",
        "I.A.5: skin test 10 mm with no interpretation (between 5 and 15 mm): unknown",
        [replace_observation("obs-igra", b.skin_test("obs-tst", b.day(-40), 10))],
        "documentation-needed",
        "warning",
        {"I.A.5": "unknown"},
    ),
    Scenario(
        "caps_ia5_igra_older_than_12_months",
        "caps",
        "I.A.5: the only IGRA is 14 months old: unknown",
        [replace_observation("obs-igra", b.igra("obs-igra", b.day(-425), "negative"))],
        "documentation-needed",
        "warning",
        {"I.A.5": "unknown"},
        # Nothing within the 12 months: the screening orders are offered.
        proposed_orders=["71773-6", "28163009"],
    ),
    Scenario(
        "caps_ia6_canakinumab_active",
        "caps",
        "I.A.6 / III.A: an active Ilaris (canakinumab) order is a combination: not-met, critical",
        [add_request(ACTIVE_ILARIS)],
        "criteria-not-met",
        "critical",
        {"I.A.6": "not-met"},
    ),
    Scenario(
        "caps_ia6_anakinra_current_is_combination",
        "caps",
        "I.A.6 / III.A: on the CAPS path a current Kineret order is another IL-1 blocker "
        "(the switch of I.B.6 is DIRA only): not-met, critical",
        [add_request(ACTIVE_KINERET)],
        "criteria-not-met",
        "critical",
        {"I.A.6": "not-met"},
    ),
    Scenario(
        "caps_ia6_unidentified_medication",
        "caps",
        "I.A.6: an active order for a medication named only 'Biologic injection per outside "
        "records' could be a biologic: unknown, never met",
        [unidentified_medication],
        "documentation-needed",
        "warning",
        {"I.A.6": "unknown"},
    ),
    Scenario(
        "caps_ia7_maintenance_320_weekly",
        "caps",
        "I.A.7.a: 320 mg weekly after the loading dose is over 160 mg: not-met",
        [draft(dosage=[b.loading(320), b.weekly(320)], quantity=8)],
        "criteria-not-met",
        "warning",
        {"I.A.7": "not-met"},
    ),
    Scenario(
        "caps_ia7_160_twice_weekly",
        "caps",
        "I.A.7 / Appendix C: 160 mg twice weekly is more often than once a week: not-met",
        [draft(dosage=[b.loading(320), b.twice_weekly(160)], quantity=9)],
        "criteria-not-met",
        "warning",
        {"I.A.7": "not-met"},
    ),
    Scenario(
        "caps_ia7_8_vials_per_28_days",
        "caps",
        "Appendix C: 8 vials for 28 days, over 2 in the first week and 4 per 28 days: not-met",
        [draft(quantity=8)],
        "criteria-not-met",
        "warning",
        {"I.A.7": "not-met"},
    ),
    Scenario(
        "caps_ia7_teen_within_mg_per_kg",
        "caps",
        "I.A.7.b: 14 years, 40 kg: 176 mg (4.4 mg/kg) loading then 88 mg (2.2 mg/kg) weekly: met",
        [
            born(14, -60),
            replace_observation("obs-wt", b.weight("obs-wt", b.day(-20), 40)),
            draft(dosage=[b.loading(176), b.weekly(88)], quantity=4),
        ],
        "criteria-met",
        "info",
    ),
    Scenario(
        "caps_ia7_teen_no_weight",
        "caps",
        "I.A.7.b: 14 years with no body weight within 90 days: unknown",
        [
            born(14, -60),
            replace_observation("obs-wt", b.weight("obs-wt", b.day(-200), 40)),
            draft(dosage=[b.loading(176), b.weekly(88)], quantity=4),
        ],
        "documentation-needed",
        "warning",
        {"I.A.7": "unknown"},
    ),
    Scenario(
        "caps_iiic_pneumonia_active",
        "caps",
        "III.C: initiation during a confirmed active pneumonia: not-met, critical",
        [add_condition(PNEUMONIA)],
        "criteria-not-met",
        "critical",
        {"III.C": "not-met"},
        mentions=["Do not start Arcalyst during an active serious infection", "Pneumonia"],
    ),
    Scenario(
        "caps_iiic_pneumonia_provisional",
        "caps",
        "III.C: a provisional pneumonia: unknown",
        [
            add_condition(
                b.condition(
                    "cond-pneumonia",
                    [b.PNEUMONIA],
                    "Pneumonia?",
                    verification="provisional",
                    onset=b.day(-3),
                    category="encounter-diagnosis",
                )
            )
        ],
        "documentation-needed",
        "warning",
        {"III.C": "unknown"},
    ),
    Scenario(
        "caps_iiic_pneumonia_resolved",
        "caps",
        "III.C: a pneumonia resolved last year is not active: met",
        [
            add_condition(
                b.condition(
                    "cond-pneumonia",
                    [b.PNEUMONIA],
                    "Pneumonia",
                    clinical="resolved",
                    onset=b.day(-400),
                    abatement=b.day(-380),
                    category="encounter-diagnosis",
                )
            )
        ],
        "criteria-met",
        "info",
    ),
    Scenario(
        "caps_iiic_sepsis_active",
        "caps",
        "III.C: active sepsis: not-met, critical",
        [
            add_condition(
                b.condition(
                    "cond-sepsis",
                    [b.SEPSIS],
                    "Sepsis",
                    onset=b.day(-2),
                    category="encounter-diagnosis",
                )
            )
        ],
        "criteria-not-met",
        "critical",
        {"III.C": "not-met"},
        mentions=["Do not start Arcalyst during an active serious infection", "Sepsis"],
    ),
    # ================================================================ NOMID (III.B)
    Scenario(
        "nomid_not_covered",
        "caps",
        "III.B: CAPS with the NOMID / CINCA phenotype is not an Arcalyst indication: section "
        "I.E, not-met; a coverage answer (warning, consider anakinra), not a clinical danger",
        [
            set_conditions(
                b.condition("cond-caps", [b.CAPS_ICD, b.NOMID_SCT], "NOMID / CINCA syndrome"),
                b.symptom("cond-urticaria", [b.URTICARIA], "Urticaria", "2009-05-11"),
            )
        ],
        "criteria-not-met",
        "warning",
        section="I.E",
        criteria={"III.B": "not-met", "III.A": "met", "III.C": "met"},
    ),
    Scenario(
        "nomid_continued_not_covered",
        "caps-continued",
        "II.C / III.B: NOMID on continued Arcalyst is still not covered (warning)",
        [
            set_conditions(
                b.condition(
                    "cond-caps",
                    [b.CAPS_ICD],
                    "Neonatal-onset multisystem inflammatory disease (NOMID)",
                ),
            )
        ],
        "criteria-not-met",
        "warning",
        section="II.C",
        criteria={"II.C": "not-met"},
    ),
    # ================================================================ I.B DIRA
    Scenario(
        "dira_initial_met",
        "dira",
        "I.B: DIRA with a pathogenic IL1RN variant, rheumatologist, 30 kg, in remission on "
        "Kineret (CRP 2 mg/L), 132 mg weekly: met; the Kineret is the switch, not a combination",
        [nothing],
        "criteria-met",
        "info",
        mentions=("stop anakinra",),
    ),
    Scenario(
        "dira_ib1_il1rn_benign",
        "dira",
        "I.B.1: the IL1RN variant is benign: not-met",
        [replace_observation("obs-il1rn", b.il1rn_result("obs-il1rn", "2017-01-20", b.BENIGN))],
        "criteria-not-met",
        "warning",
        {"I.B.1": "not-met"},
    ),
    Scenario(
        "dira_ib1_il1rn_uncertain",
        "dira",
        "I.B.1: a variant of uncertain significance: unknown",
        [replace_observation("obs-il1rn", b.il1rn_result("obs-il1rn", "2017-01-20", b.UNCERTAIN))],
        "documentation-needed",
        "warning",
        {"I.B.1": "unknown"},
    ),
    Scenario(
        "dira_ib1_no_genetic_result",
        "dira",
        "I.B.1: DIRA named but no IL1RN result: unknown",
        [replace_observation("obs-il1rn", None)],
        "documentation-needed",
        "warning",
        {"I.B.1": "unknown"},
    ),
    Scenario(
        "dira_ib2_immunologist",
        "dira",
        "I.B.2: an allergist-immunologist (NUCC 207K00000X) is an immunologist: met",
        [specialty(b.ALLERGY_IMMUNOLOGY)],
        "criteria-met",
        "info",
    ),
    Scenario(
        "dira_ib2_dermatologist_unknown",
        "dira",
        "I.B.2: a dermatologist is not on the DIRA list: unknown",
        [specialty(b.DERMATOLOGY)],
        "documentation-needed",
        "warning",
        {"I.B.2": "unknown"},
    ),
    Scenario(
        "dira_ib3_weight_8_kg",
        "dira",
        "I.B.3: 8 kg is under 10 kg: not-met",
        [
            replace_observation("obs-wt", b.weight("obs-wt", b.day(-10), 8)),
            draft(dosage=b.only_weekly(35), quantity=4),
        ],
        "criteria-not-met",
        "warning",
        {"I.B.3": "not-met"},
    ),
    Scenario(
        "dira_ib3_weight_too_old",
        "dira",
        "I.B.3: the last weight is 120 days old: unknown",
        [replace_observation("obs-wt", b.weight("obs-wt", b.day(-120), 30))],
        "documentation-needed",
        "warning",
        {"I.B.3": "unknown", "I.B.7": "unknown"},
        # No weight within 90 days: a body-weight order is offered (the TB screen is on file).
        proposed_orders=["29463-7"],
    ),
    Scenario(
        "dira_ib4_crp_not_in_remission",
        "dira",
        "I.B.4: latest CRP 8 mg/L is not below 5 mg/L: not-met",
        [replace_observation("obs-crp-1", b.crp("obs-crp-1", b.day(-20), 8))],
        "criteria-not-met",
        "warning",
        {"I.B.4": "not-met"},
    ),
    Scenario(
        "dira_ib4_crp_0_4_mg_dl",
        "dira",
        "I.B.4: CRP 0.4 mg/dL is below 0.5 mg/dL: met",
        [replace_observation("obs-crp-1", b.crp("obs-crp-1", b.day(-20), 0.4, "mg/dL"))],
        "criteria-met",
        "info",
    ),
    Scenario(
        "dira_ib4_no_anakinra_record",
        "dira",
        "I.B.4: the medication records were sent and show no anakinra ordered or dispensed "
        "within 90 days: not-met (INTERPRETATION I.B.4; the policy's own words)",
        [no_kineret],
        "criteria-not-met",
        "warning",
        {"I.B.4": "not-met"},
    ),
    Scenario(
        "dira_ib5_igra_positive",
        "dira",
        "I.B.5: positive IGRA, untreated: not-met",
        [replace_observation("obs-igra", b.igra("obs-igra", b.day(-30), "positive"))],
        "criteria-not-met",
        "warning",
        {"I.B.5": "not-met"},
    ),
    Scenario(
        "dira_ib6_second_kineret_draft",
        "dira",
        "I.B.6: a new Kineret draft signed with the Arcalyst one is a combination: not-met",
        [second_kineret_draft],
        "criteria-not-met",
        "critical",
        {"I.B.6": "not-met"},
    ),
    Scenario(
        "dira_ib6_tocilizumab_active",
        "dira",
        "I.B.6: an active Actemra order besides the Kineret being switched: not-met",
        [add_request(ACTIVE_ACTEMRA)],
        "criteria-not-met",
        "critical",
        {"I.B.6": "not-met"},
    ),
    Scenario(
        "dira_ib7_adult_320_weekly",
        "dira",
        "I.B.7.a: an adult, 320 mg weekly with no loading dose, 8 vials / 28 days: met",
        [
            born(24),
            replace_observation("obs-wt", b.weight("obs-wt", b.day(-10), 61)),
            draft(dosage=b.only_weekly(320), quantity=8),
        ],
        "criteria-met",
        "info",
    ),
    Scenario(
        "dira_ib7_5_mg_per_kg",
        "dira",
        "I.B.7.b: 150 mg weekly at 30 kg is 5 mg/kg, over 4.4 mg/kg (132 mg): not-met",
        [draft(dosage=b.only_weekly(150), quantity=4)],
        "criteria-not-met",
        "warning",
        {"I.B.7": "not-met"},
    ),
    Scenario(
        "dira_ib7_10_vials",
        "dira",
        "Appendix C: DIRA allows 8 vials per 28 days; 10 ordered: not-met",
        [
            born(24),
            replace_observation("obs-wt", b.weight("obs-wt", b.day(-10), 61)),
            draft(dosage=b.only_weekly(320), quantity=10),
        ],
        "criteria-not-met",
        "warning",
        {"I.B.7": "not-met"},
    ),
    Scenario(
        "dira_ib7_loading_dose_not_allowed",
        "dira",
        "I.B.7 / Section V: no loading dose for DIRA: a 264 mg first dose at 30 kg is over "
        "the 132 mg weekly limit: not-met",
        [draft(dosage=[b.loading(264), b.weekly(132)], quantity=5)],
        "criteria-not-met",
        "warning",
        {"I.B.7": "not-met"},
    ),
    # ================================================================ I.C recurrent pericarditis
    Scenario(
        "rp_initial_met",
        "rp",
        "I.C: two episodes 4+ weeks apart (one an encounter diagnosis, resolved), recurrence "
        "after 190 days of colchicine, ibuprofen 14 days during it, cardiologist: met",
        [nothing],
        "criteria-met",
        "info",
    ),
    Scenario(
        "rp_initial_between_episodes",
        "rp",
        "I.C between episodes: both pericarditis episodes resolved (no active pericarditis "
        "Condition); the resolved episodes claim recurrent pericarditis (claim_from_history) "
        "and I.C.1 counts them: met, not off-label",
        [
            drop_conditions("cond-peri-2"),
            add_condition(
                b.pericarditis_episode(
                    "cond-peri-2",
                    b.day(-60),
                    b.day(-40),
                    category="problem-list-item",
                    code=b.PERICARDITIS_IDIOPATHIC,
                    text="Recurrent idiopathic pericarditis",
                )
            ),
        ],
        "criteria-met",
        "info",
    ),
    Scenario(
        "rp_ic1_one_episode",
        "rp",
        "I.C.1: a single dated episode: not-met",
        [drop_conditions("cond-peri-1")],
        "criteria-not-met",
        "warning",
        {"I.C.1": "not-met"},
        free=("I.C.4",),
    ),
    Scenario(
        "rp_ic1_second_record_within_4_weeks",
        "rp",
        "I.C.1 / Appendix D: the second record began 20 days after the first ended: one "
        "episode, not-met",
        [
            set_conditions(
                b.pericarditis_episode("cond-peri-1", b.day(-100), b.day(-80)),
                b.pericarditis_episode("cond-peri-2", b.day(-60), category="problem-list-item"),
            )
        ],
        "criteria-not-met",
        "warning",
        {"I.C.1": "not-met"},
        free=("I.C.4",),
    ),
    Scenario(
        "rp_ic1_stated_recurrent_no_dates",
        "rp",
        "I.C.1: 'recurrent pericarditis' stated with no dated episodes: unknown (dates asked)",
        [
            set_conditions(
                b.condition(
                    "cond-rp",
                    [b.RECURRENT_PERICARDITIS_SCT],
                    "Idiopathic recurrent pericarditis",
                    onset=None,
                )
            )
        ],
        "documentation-needed",
        "warning",
        {"I.C.1": "unknown"},
        free=("I.C.4",),
    ),
    Scenario(
        "rp_ic2_internist_unknown",
        "rp",
        "I.C.2: an internist with no cardiology / rheumatology consultation: unknown",
        [specialty(b.INTERNAL_MEDICINE)],
        "documentation-needed",
        "warning",
        {"I.C.2": "unknown"},
    ),
    Scenario(
        "rp_ic2_rheumatologist",
        "rp",
        "I.C.2: a rheumatologist: met",
        [specialty(b.RHEUMATOLOGY)],
        "criteria-met",
        "info",
    ),
    Scenario(
        "rp_ic3_age_10",
        "rp",
        "I.C.3: 10 years old: not-met",
        [born(10, -30), replace_observation("obs-wt", b.weight("obs-wt", b.day(-10), 32))],
        "criteria-not-met",
        "warning",
        {"I.C.3": "not-met", "I.C.7": "not-met"},
    ),
    Scenario(
        "rp_ic4_colchicine_60_days",
        "rp",
        "I.C.4: the recurrence began after only 60 days of colchicine ((a) not met) and no "
        "intolerance is recorded ((b) may be in the notes): unknown, never met",
        [colchicine_fills(-120, -90)],
        "documentation-needed",
        "warning",
        {"I.C.4": "unknown"},
    ),
    Scenario(
        "rp_ic4_no_nsaid_course",
        "rp",
        "I.C.4.a: colchicine failure but no NSAID / aspirin course on file: unknown",
        [no_nsaid],
        "documentation-needed",
        "warning",
        {"I.C.4": "unknown"},
    ),
    Scenario(
        "rp_ic4_aspirin_course",
        "rp",
        "I.C.4.a: aspirin for 14 days during the recurrence counts as the NSAID / aspirin: met",
        [aspirin_instead],
        "criteria-met",
        "info",
    ),
    Scenario(
        "rp_ic4_colchicine_intolerance",
        "rp",
        "I.C.4.b: colchicine intolerance recorded (no colchicine run): met",
        [
            no_colchicine,
            no_nsaid,
            add_allergy(b.allergy("al-colch", b.COLCHICINE_IN, "Severe diarrhea")),
        ],
        "criteria-met",
        "info",
    ),
    Scenario(
        "rp_ic5_igra_positive",
        "rp",
        "I.C.5: positive IGRA, untreated: not-met",
        [replace_observation("obs-igra", b.igra("obs-igra", b.day(-30), "positive"))],
        "criteria-not-met",
        "warning",
        {"I.C.5": "not-met"},
    ),
    Scenario(
        "rp_iiic_active_tuberculosis",
        "rp",
        "III.C: active pulmonary tuberculosis on the problem list: not-met, critical",
        [
            add_condition(
                b.condition("cond-tb", [b.PULMONARY_TB], "Pulmonary tuberculosis", onset=b.day(-15))
            )
        ],
        "criteria-not-met",
        "critical",
        {"III.C": "not-met"},
        mentions=[
            "Do not start Arcalyst during an active serious infection",
            "Tuberculosis of lung",
        ],
    ),
    Scenario(
        "rp_iiic_latent_tb_is_not_active",
        "rp",
        "III.C: latent tuberculosis (Z22.7) is not an active infection: met",
        [add_condition(b.condition("cond-ltbi", [b.LATENT_TB], "Latent tuberculosis"))],
        "criteria-met",
        "info",
    ),
    Scenario(
        "rp_ic6_tocilizumab_active",
        "rp",
        "I.C.6: an active Actemra order: not-met, critical",
        [add_request(ACTIVE_ACTEMRA)],
        "criteria-not-met",
        "critical",
        {"I.C.6": "not-met"},
    ),
    Scenario(
        "rp_ic7_loading_480",
        "rp",
        "I.C.7: a 480 mg loading dose is over 320 mg: not-met",
        [draft(dosage=[b.loading(480), b.weekly(160)], quantity=6)],
        "criteria-not-met",
        "warning",
        {"I.C.7": "not-met"},
    ),
    Scenario(
        "rp_ic7_dose_in_ml",
        "rp",
        "I.C.7: 4 mL once then 2 mL weekly at 80 mg/mL is 320 mg then 160 mg: met",
        [draft(dosage=[b.loading(4, "mL", "mL"), b.weekly(2, "mL", "mL")])],
        "criteria-met",
        "info",
    ),
    # ================================================================ record shapes
    Scenario(
        "shape_draft_coded_by_ndc_only",
        "caps",
        "Routing: an Arcalyst draft coded only by its 11-digit NDC is decided by IL1.RIL.01",
        [draft_shape(coded_by_ndc_only)],
        "criteria-met",
        "info",
    ),
    Scenario(
        "shape_draft_contained_medication",
        "caps",
        "Routing: a draft that references a contained Medication (RxNorm SCD) is decided by "
        "IL1.RIL.01",
        [draft_shape(lambda d: b.contained_medication(d, b.ARCALYST_SCD))],
        "criteria-met",
        "info",
    ),
    Scenario(
        "shape_igra_value_string",
        "caps",
        "I.A.5: an IGRA sent as the printed word 'Negative' (valueString): met",
        [replace_observation("obs-igra", b.igra_text("obs-igra", b.day(-30), "Negative"))],
        "criteria-met",
        "info",
    ),
    Scenario(
        "shape_crp_range_as_text_only",
        "caps",
        "I.A.4.a / Appendix E: CRP 8 mg/L whose range is printed only as text '<=5.0 mg/L': "
        "above the range on the result, met",
        [
            replace_observation(
                "obs-crp-1",
                b.with_range_text(b.crp("obs-crp-1", b.day(-60), 8, ref_high=None), "<=5.0 mg/L"),
            )
        ],
        "criteria-met",
        "info",
    ),
    Scenario(
        "shape_teen_weight_in_pounds",
        "caps",
        "I.A.7.b: 14 years, weight sent as 88.2 lb (40 kg): 176 mg then 88 mg weekly, met",
        [
            born(14, -60),
            replace_observation("obs-wt", b.weight("obs-wt", b.day(-20), 88.2, "[lb_av]")),
            draft(dosage=[b.loading(176), b.weekly(88)], quantity=4),
        ],
        "criteria-met",
        "info",
    ),
    Scenario(
        "shape_dira_crp_below_reporting_limit",
        "dira",
        "I.B.4: CRP reported as '< 3 mg/L' (comparator): below 5 mg/L, met",
        [
            replace_observation(
                "obs-crp-1", b.below_detection("obs-crp-1", b.CRP, b.day(-20), 3, "mg/L")
            )
        ],
        "criteria-met",
        "info",
    ),
    Scenario(
        "shape_colchicine_prescription_with_refills",
        "rp",
        "I.C.4.a: colchicine charted as one prescription with refills (no fills): the "
        "recurrence 60 days ago began on day 190 of it, met",
        [colchicine_prescribed],
        "criteria-met",
        "info",
    ),
    # ================================================================ I.D other
    Scenario(
        "other_gout_off_label",
        "caps",
        "I.D: gout is no indication of this policy: off-label review (CP.PMN.53)",
        [set_conditions(b.condition("cond-gout", [b.GOUT], "Gout"))],
        "off-label-review",
        "warning",  # off-label: not covered until reviewed (docs/cards.md)
        section="I.D",
        criteria={"I.D": "unknown"},
        mentions=("CP.PMN.53",),
    ),
    Scenario(
        "other_gout_off_label_with_biologic",
        "caps",
        "I.D with III.A: the combination found on the way is still reported: not-met",
        [set_conditions(b.condition("cond-gout", [b.GOUT], "Gout")), add_request(ACTIVE_ACTEMRA)],
        "criteria-not-met",
        "critical",
        section="I.D",
        criteria={"I.D": "unknown", "III.A": "not-met"},
    ),
    Scenario(
        "other_continued_off_label",
        "caps-continued",
        "II.B: gout on continued Arcalyst: off-label review",
        [set_conditions(b.condition("cond-gout", [b.GOUT], "Gout"))],
        "off-label-review",
        "warning",  # off-label: not covered until reviewed (docs/cards.md)
        section="II.B",
        criteria={"II.B": "unknown"},
    ),
    # ================================================================ II.A continued
    Scenario(
        "caps_continued_met",
        "caps-continued",
        "II.A: Muckle-Wells on Arcalyst 200 days, CRP 30 -> 4 mg/L, 160 mg weekly: met, 12 months",
        [nothing],
        "criteria-met",
        "info",
    ),
    Scenario(
        "caps_continued_iia1_started_2_weeks_ago",
        "caps-continued",
        "II.A.1: Arcalyst first ordered 14 days ago, not yet 4 weeks: not-met",
        [rilonacept_started(-14)],
        "criteria-not-met",
        "warning",
        criteria={"II.A.1": "not-met"},
    ),
    Scenario(
        "caps_continued_iia2_crp_higher_flares_not_stated",
        "caps-continued",
        "II.A.2.a: CRP 35 mg/L now vs 30 before Arcalyst, but the policy's other branch "
        "(fewer flares) is not documented either way: unknown, asking for the flare counts",
        [replace_observation("obs-crp-1", b.crp("obs-crp-1", b.day(-10), 35, flag="H"))],
        "documentation-needed",
        "warning",
        {"II.A.2": "unknown"},
    ),
    Scenario(
        "caps_continued_iia2_crp_higher_response_unchanged",
        "caps-continued",
        "II.A.2.a: CRP higher than before Arcalyst and the response charted as unchanged "
        "(no fewer flares): not-met",
        [
            replace_observation("obs-crp-1", b.crp("obs-crp-1", b.day(-10), 35, flag="H")),
            response_assessment("Unchanged"),
        ],
        "criteria-not-met",
        "warning",
        {"II.A.2": "not-met"},
    ),
    Scenario(
        "caps_continued_iia2_response_improved_no_labs",
        "caps-continued",
        "II.A.2.a: no CRP / SAA since Arcalyst, fewer flares charted (response improved): met",
        [replace_observation("obs-crp-1", None), response_assessment("Improved")],
        "criteria-met",
        "info",
    ),
    Scenario(
        "caps_continued_iia2_no_baseline",
        "caps-continued",
        "II.A.2.a: no CRP / SAA before Arcalyst started: unknown",
        [replace_observation("obs-crp-0", None)],
        "documentation-needed",
        "warning",
        {"II.A.2": "unknown"},
    ),
    Scenario(
        "caps_continued_iia2_saa_lower",
        "caps-continued",
        "II.A.2.a: SAA 40 mg/L before, 5 mg/L now (CRP only before): met",
        [
            replace_observation("obs-crp-1", None),
            add_observation(
                b.saa("obs-saa-0", b.day(-215), 40, flag="H"),
                b.saa("obs-saa-1", b.day(-12), 5, flag="N"),
            ),
        ],
        "criteria-met",
        "info",
    ),
    Scenario(
        "caps_continued_iia3_anakinra_current",
        "caps-continued",
        "II.A.3: on continued therapy a current Kineret order is a combination: not-met",
        [add_request(ACTIVE_KINERET)],
        "criteria-not-met",
        "critical",
        {"II.A.3": "not-met"},
    ),
    Scenario(
        "caps_continued_iia4_new_loading_dose",
        "caps-continued",
        "II.A.4: a new 320 mg loading dose on continued therapy: not-met",
        [draft(dosage=[b.loading(320), b.weekly(160)], quantity=5)],
        "criteria-not-met",
        "warning",
        {"II.A.4": "not-met"},
    ),
    Scenario(
        "caps_continued_iia4_5_vials",
        "caps-continued",
        "II.A.4 / Appendix C: 160 mg weekly but 6 vials for 28 days (4 allowed): not-met",
        [draft(dosage=b.only_weekly(160), quantity=6)],
        "criteria-not-met",
        "warning",
        {"II.A.4": "not-met"},
    ),
    Scenario(
        "dira_continued_met",
        "dira-continued",
        "II.A: DIRA on Arcalyst 200 days, CRP 2 mg/L, 132 mg weekly at 30 kg: met",
        [nothing],
        "criteria-met",
        "info",
    ),
    Scenario(
        "dira_continued_iia3_anakinra_still_active",
        "dira-continued",
        "II.A.3: on continued Arcalyst the switch is over; Kineret still active is a "
        "combination: not-met, critical",
        [add_request(ACTIVE_KINERET)],
        "criteria-not-met",
        "critical",
        {"II.A.3": "not-met"},
    ),
    Scenario(
        "caps_continued_iia1_statement_without_date",
        "caps-continued",
        "II.A.1: Arcalyst known only from an undated patient-reported statement: continued "
        "(an active record), but since when is unknown",
        [rilonacept_statement_only],
        "documentation-needed",
        "warning",
        criteria={"II.A.1": "unknown"},
    ),
    Scenario(
        "dira_continued_iia2_crp_high",
        "dira-continued",
        "II.A.2.b: latest CRP 12 mg/L is not below 5 mg/L: not-met",
        [replace_observation("obs-crp-1", b.crp("obs-crp-1", b.day(-20), 12))],
        "criteria-not-met",
        "warning",
        {"II.A.2": "not-met"},
    ),
    Scenario(
        "dira_continued_iia2_no_crp",
        "dira-continued",
        "II.A.2.b: no CRP within 90 days: unknown",
        [replace_observation("obs-crp-1", b.crp("obs-crp-1", b.day(-120), 2))],
        "documentation-needed",
        "warning",
        {"II.A.2": "unknown"},
    ),
    Scenario(
        "dira_continued_iia4_over_mg_per_kg",
        "dira-continued",
        "II.A.4: 160 mg weekly at 30 kg is over 4.4 mg/kg (132 mg): not-met",
        [draft(dosage=b.only_weekly(160), quantity=4)],
        "criteria-not-met",
        "warning",
        {"II.A.4": "not-met"},
    ),
    Scenario(
        "rp_continued_met",
        "rp-continued",
        "II.A: recurrent pericarditis on Arcalyst 200 days, no episode since: met",
        [nothing],
        "criteria-met",
        "info",
    ),
    Scenario(
        "rp_continued_remission_all_resolved",
        "rp-continued",
        "II.A: recurrent pericarditis in remission on Arcalyst, every pericarditis Condition "
        "resolved (abatement recorded) and no recurrent pericarditis problem (a problem with "
        "clinicalStatus remission already counts as active); the resolved episodes claim the "
        "indication (claim_from_history): II.A met, not off-label (II.B)",
        [drop_conditions("cond-rp")],
        "criteria-met",
        "info",
    ),
    Scenario(
        "rp_continued_iia2_new_episode",
        "rp-continued",
        "II.A.2.c: a pericarditis episode began 30 days ago, after the first Arcalyst dose: "
        "not-met",
        [add_condition(b.pericarditis_episode("cond-peri-3", b.day(-30)))],
        "criteria-not-met",
        "warning",
        {"II.A.2": "not-met"},
    ),
    Scenario(
        "rp_continued_iia4_twice_weekly",
        "rp-continued",
        "II.A.4: 160 mg twice weekly: not-met",
        [draft(dosage=[b.twice_weekly(160)], quantity=8)],
        "criteria-not-met",
        "warning",
        {"II.A.4": "not-met"},
    ),
]


def build(scenario: Scenario) -> Json:
    chart = b.Chart()
    base, pathway, section, _ = BASES[scenario.base]
    base(chart)
    for edit in scenario.edits:
        edit(chart)
    request = chart.request(f"scn-ril-{scenario.name}")
    expect: Json = {
        "outcome": scenario.outcome,
        "pathway": scenario.pathway or pathway,
        "section": scenario.section or section,
        "criteria": scenario.expected_criteria(),
        "indicator": scenario.indicator,
        "why": scenario.why,
    }
    if scenario.details:
        expect["details"] = scenario.details
    if scenario.mentions:
        expect["mentions"] = list(scenario.mentions)
    if scenario.proposed_orders is not None:
        expect["proposed_orders"] = list(scenario.proposed_orders)
    return {"_expect": expect, **request}


def main() -> None:
    names = [s.name for s in SCENARIOS]
    if len(names) != len(set(names)):
        raise SystemExit("duplicate scenario names")
    for old in OUT_DIR.glob("*.json"):
        old.unlink()
    for scenario in SCENARIOS:
        path = OUT_DIR / f"{scenario.name}.json"
        path.write_text(json.dumps(build(scenario), indent=2) + "\n", "utf-8")
    print(f"{len(SCENARIOS)} scenarios written to {OUT_DIR}")


if __name__ == "__main__":
    main()
