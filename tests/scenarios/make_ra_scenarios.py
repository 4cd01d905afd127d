"""Write the rheumatoid arthritis scenario requests (tests/scenarios/ra/*.json).

Run `python -m tests.scenarios.make_ra_scenarios` from the repository root after editing a
scenario here. Each file is an order-sign request plus `_expect` (stripped before sending):
the outcome, the pathway / section, per-criterion statuses and the card indicator the policy
text and INTERPRETATION.md call for, and `why` (the clause they rest on). Expectations come
from the documents, not from what the service answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.scenarios import ra_builder as b

Json = dict[str, Any]
OUT_DIR = Path(__file__).resolve().parent / "ra"

ALL_INITIAL = ("I.A.1", "I.A.2", "I.A.3", "I.A.4", "I.A.5", "I.A.6", "I.A.7", "I.A.8")


@dataclass(frozen=True)
class Scenario:
    name: str
    why: str
    edit: Callable[[b.Chart], None]
    outcome: str
    criteria: dict[str, str]
    indicator: str
    pathway: str = "initial"
    section: str = "I.A"
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    proposed_orders: list[str] | None = None
    """The first code of each order the cards offer instead or in addition (policy.yaml
    `alternates`), when the scenario is about them ([] = none offered)."""


def met_except(**changes: str) -> dict[str, str]:
    """Every I.A criterion met, except the ones given (I_A_4="not-met")."""
    out = {cid: "met" for cid in ALL_INITIAL}
    out["III.B"] = "met"
    out["IV.C"] = "met"
    for key, status in changes.items():
        out[key.replace("_", ".")] = status
    return out


def nothing(chart: b.Chart) -> None:
    del chart


def no_mtx(chart: b.Chart) -> None:
    chart.requests = [r for r in chart.requests if r["id"] != "rx-mtx"]


def _dose(*lines: Json, quantity: float | None = 28, days: int | None = 28) -> Callable[..., None]:
    def edit(chart: b.Chart) -> None:
        chart.drafts = [
            b.kineret_draft(
                dosage=list(lines), quantity=quantity, supply_days=days, reason=b.RA_REASON
            )
        ]

    return edit


# ---------------------------------------------------------------- I.A.1 / reasonCode
def dx_polyarthropathy_only(chart: b.Chart) -> None:
    code = (b.ICD10, "M06.4", "Inflammatory polyarthropathy")
    chart.conditions = [b.condition("cond-poly", [code], "Inflammatory polyarthropathy")]
    chart.drafts = [b.kineret_draft(reason=[b.concept(*code)])]


def dx_ra_refuted(chart: b.Chart) -> None:
    chart.conditions = [
        b.condition("cond-ra", b.RA_CODINGS, "Rheumatoid arthritis", verification="refuted")
    ]
    chart.drafts = [b.kineret_draft()]


def dx_acr_below_six(chart: b.Chart) -> None:
    chart.observations.append(
        b.observation(
            "obs-acr",
            {"text": "2010 ACR/EULAR rheumatoid arthritis classification score"},
            b.day(-200),
            4,
            "{score}",
            "{score}",
            category="exam",
        )
    )


def reason_picks_ra_over_covid(chart: b.Chart) -> None:
    chart.conditions.append(
        b.condition(
            "cond-covid",
            [(b.ICD10, "U07.1", "COVID-19"), (b.SCT, "840539006", "COVID-19")],
            "COVID-19",
            onset=b.day(-4),
        )
    )


def reason_reference_ra_over_caps(chart: b.Chart) -> None:
    chart.conditions.append(
        b.condition(
            "cond-caps",
            [(b.ICD10, "M04.2", "Cryopyrin-associated periodic syndromes")],
            "Cryopyrin-associated periodic syndrome",
        )
    )
    chart.drafts = [b.kineret_draft(reason_reference="Condition/cond-ra")]


def reason_still_disease_over_ra(chart: b.Chart) -> None:
    still = (b.ICD10, "M06.1", "Adult-onset Still's disease")
    chart.conditions.append(b.condition("cond-still", [still], "Adult-onset Still's disease"))
    chart.drafts = [b.kineret_draft(reason=[b.concept(*still)])]


# ---------------------------------------------------------------- I.A.2
def prescriber_family_medicine(chart: b.Chart) -> None:
    chart.roles = [b.role("prrole-fm", b.FAMILY_MEDICINE)]
    chart.user = "PractitionerRole/prrole-fm"
    for draft in chart.drafts:
        draft["requester"] = {"reference": "PractitionerRole/prrole-fm"}


def _referral(authored: str) -> Json:
    return {
        "resourceType": "ServiceRequest",
        "id": "sr-rheum",
        "status": "completed",
        "intent": "order",
        "category": [b.concept(b.SCT, "3457005", "Patient referral")],
        "code": b.concept(b.SCT, "3457005", "Patient referral", text="Referral to rheumatology"),
        "subject": b.PATIENT_REF,
        "authoredOn": authored,
        "requester": {"reference": "PractitionerRole/prrole-fm"},
        "performerType": b.concept(*b.RHEUM),
    }


def referral_recent(chart: b.Chart) -> None:
    prescriber_family_medicine(chart)
    chart.referrals = [_referral("2026-03-02")]


def referral_stale(chart: b.Chart) -> None:
    prescriber_family_medicine(chart)
    chart.referrals = [_referral("2025-10-14")]


def care_team_rheumatologist(chart: b.Chart) -> None:
    prescriber_family_medicine(chart)
    chart.care_teams = [
        {
            "resourceType": "CareTeam",
            "id": "ct-ra",
            "status": "active",
            "subject": b.PATIENT_REF,
            "participant": [
                {
                    "role": [b.concept(*b.RHEUM)],
                    "member": {"reference": "Practitioner/pr-rheum-consult"},
                },
                {
                    "role": [b.concept(*b.FAMILY_MEDICINE)],
                    "member": {"reference": "Practitioner/pr-prrole-fm"},
                },
            ],
        }
    ]


# ---------------------------------------------------------------- I.A.3
def born(birth: str | None) -> Callable[[b.Chart], None]:
    def edit(chart: b.Chart) -> None:
        chart.patient = b.patient(birth)

    return edit


# ---------------------------------------------------------------- I.A.4 methotrexate
def mtx_short_request(chart: b.Chart) -> None:
    chart.requests = [b.med_request("rx-mtx", b.MTX_TAB, "2025-02-01", supply_days=30, repeats=1)]


def _mtx_dispenses(*fills: tuple[str, int]) -> Callable[[b.Chart], None]:
    def edit(chart: b.Chart) -> None:
        no_mtx(chart)
        chart.dispenses = [
            b.med_dispense(f"md-mtx-{i}", b.MTX_TAB, when, days, 24)
            for i, (when, days) in enumerate(fills, start=1)
        ]

    return edit


def _mtx_statement(start: str, end: str) -> Callable[[b.Chart], None]:
    def edit(chart: b.Chart) -> None:
        no_mtx(chart)
        chart.statements.append(
            b.med_statement("ms-mtx", b.MTX_IN, start, end, reason="Inadequate response")
        )

    return edit


def mtx_single_90_day_fill(chart: b.Chart) -> None:
    chart.requests = [
        b.med_request("rx-mtx", b.MTX_TAB, "2025-04-01", supply_days=90, repeats=0, quantity=72)
    ]


def mtx_request_entered_in_error(chart: b.Chart) -> None:
    chart.requests = [
        b.med_request(
            "rx-mtx", b.MTX_TAB, "2024-01-10", status="entered-in-error", supply_days=28, repeats=3
        )
    ]


def _mtx_allergy() -> Json:
    return b.allergy("ai-mtx", b.concept(*b.MTX_IN), reaction="Transaminitis (ALT 4x ULN)")


def mtx_intolerance_sulfasalazine(chart: b.Chart) -> None:
    chart.requests = [b.med_request("rx-mtx", b.MTX_TAB, "2024-01-10", supply_days=28, repeats=0)]
    chart.allergies = [_mtx_allergy()]
    chart.statements.append(
        b.med_statement("ms-ssz", b.SULFASALAZINE, "2024-02-15", "2024-06-30", reason="Failure")
    )


def mtx_intolerance_no_conventional(chart: b.Chart) -> None:
    chart.requests = [b.med_request("rx-mtx", b.MTX_TAB, "2024-01-10", supply_days=28, repeats=0)]
    chart.allergies = [_mtx_allergy()]


def mtx_intolerance_short_hcq(chart: b.Chart) -> None:
    mtx_intolerance_no_conventional(chart)
    chart.statements.append(
        b.med_statement("ms-hcq", b.HYDROXYCHLOROQUINE, "2024-02-15", "2024-03-30")
    )


def _leflunomide_trial(chart: b.Chart) -> None:
    no_mtx(chart)
    chart.statements.append(
        b.med_statement("ms-lef", b.LEFLUNOMIDE, "2024-01-05", "2024-05-20", reason="Failure")
    )


def _alcohol(value: float, unit: str, code: Json) -> Json:
    return b.observation(
        "obs-alcohol", code, b.day(-30), value, unit, None, category="social-history"
    )


def alcohol_over_14(chart: b.Chart) -> None:
    _leflunomide_trial(chart)
    chart.assessments = [_alcohol(20, "drinks/week", {"text": "Alcoholic drinks per week"})]


def alcohol_exactly_14(chart: b.Chart) -> None:
    _leflunomide_trial(chart)
    chart.assessments = [_alcohol(14, "drinks/week", {"text": "Alcoholic drinks per week"})]


def alcohol_per_day_loinc(chart: b.Chart) -> None:
    _leflunomide_trial(chart)
    code = b.concept(b.LOINC, "74013-4", "Alcoholic drinks per day")
    chart.assessments = [_alcohol(3, "drinks/day", code)]


def childbearing_potential(chart: b.Chart) -> None:
    chart.patient = b.patient("1995-02-11")
    chart.requests = [b.med_request("rx-mtx", b.MTX_TAB, "2024-01-10", supply_days=30, repeats=0)]
    chart.conditions.append(
        b.condition(
            "cond-cbp",
            [
                (
                    b.ICD10,
                    "Z30.09",
                    "Encounter for other general counseling and advice on contraception",
                )
            ],
            "Woman of child-bearing potential; methotrexate stopped for that reason",
        )
    )
    chart.statements.append(
        b.med_statement("ms-ssz", b.SULFASALAZINE, "2024-02-15", "2024-06-30", reason="Failure")
    )


def pregnancy_contraindication(chart: b.Chart) -> None:
    no_mtx(chart)
    chart.conditions.append(
        b.condition(
            "cond-preg",
            [(b.ICD10, "Z33.1", "Pregnant state, incidental")],
            "Pregnant",
            onset=b.day(-60),
        )
    )
    chart.statements.append(
        b.med_statement("ms-ssz", b.SULFASALAZINE, "2025-11-01", "2026-04-30", reason="Failure")
    )


# ---------------------------------------------------------------- I.A.5 preferred products
def no_preferred(chart: b.Chart) -> None:
    chart.statements = [s for s in chart.statements if s["id"] != "ms-hadlima"]


def preferred_intolerance(chart: b.Chart) -> None:
    no_preferred(chart)
    chart.allergies = [
        b.allergy(
            "ai-humira",
            b.concept(*b.HUMIRA),
            kind="allergy",
            reaction="Injection-site reaction with generalized urticaria",
        )
    ]


def preferred_tofacitinib_dispenses(chart: b.Chart) -> None:
    no_preferred(chart)
    chart.dispenses = [
        b.med_dispense("md-xel-1", b.XELJANZ, "2025-03-01", 30, 60),
        b.med_dispense("md-xel-2", b.XELJANZ, "2025-04-03", 30, 60),
        b.med_dispense("md-xel-3", b.XELJANZ, "2025-05-06", 30, 60),
    ]


def preferred_short_tocilizumab(chart: b.Chart) -> None:
    no_preferred(chart)
    chart.statements.append(b.med_statement("ms-actemra", b.ACTEMRA, "2025-01-10", "2025-03-10"))


def preferred_etanercept_only(chart: b.Chart) -> None:
    no_preferred(chart)
    chart.statements.append(
        b.med_statement("ms-enbrel", b.ENBREL, "2024-06-01", "2025-06-01", status="stopped")
    )


# ---------------------------------------------------------------- I.A.6 scores
def scores(*obs: Json) -> Callable[[b.Chart], None]:
    def edit(chart: b.Chart) -> None:
        chart.observations = list(obs)

    return edit


# ---------------------------------------------------------------- I.A.7 / III.B
def concurrent(*resources: Json) -> Callable[[b.Chart], None]:
    def edit(chart: b.Chart) -> None:
        for resource in resources:
            if resource["resourceType"] == "MedicationRequest":
                chart.requests.append(resource)
            else:
                chart.statements.append(resource)

    return edit


def concurrent_draft_actemra(chart: b.Chart) -> None:
    chart.drafts.append(
        {
            "resourceType": "MedicationRequest",
            "id": "draft-actemra",
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": b.med_concept(b.ACTEMRA, "Actemra 162 mg/0.9 mL syringe"),
            "subject": b.PATIENT_REF,
            "authoredOn": b.ORDER_DATE.isoformat(),
            "requester": {"reference": "PractitionerRole/prrole-rheum"},
        }
    )


def hypersensitivity_e_coli(chart: b.Chart) -> None:
    chart.allergies = [
        b.allergy(
            "ai-ecoli",
            {"text": "E. coli-derived proteins"},
            category="biologic",
            kind="allergy",
            reaction="Anaphylaxis",
        )
    ]


# ---------------------------------------------------------------- continued therapy
def _kineret_current(start: str = "2026-05-01", status: str = "active", mg: float = 100) -> Json:
    return b.med_request(
        "rx-kineret",
        b.KINERET_SCD,
        start,
        status=status,
        supply_days=28,
        repeats=5,
        quantity=28,
        quantity_unit="syringe",
        dosage=[b.dose_line(mg, "mg", "mg", text=f"Inject {mg:g} mg subcutaneously daily")],
    )


def continued(
    *obs: Json, current: Json | None = None, extra: Callable[[b.Chart], None] | None = None
) -> Callable[[b.Chart], None]:
    def edit(chart: b.Chart) -> None:
        chart.requests.append(current if current is not None else _kineret_current())
        chart.observations = list(obs)
        if extra is not None:
            extra(chart)

    return edit


def continued_statement_ended_50_days(chart: b.Chart) -> None:
    chart.statements.append(
        b.med_statement("ms-kineret", b.KINERET_SBD, "2026-04-01", "2026-10-01", status="completed")
    )
    chart.observations = [
        b.cdai("obs-cdai-0", "2026-03-20", 30),
        b.cdai("obs-cdai-1", "2026-09-25", 14),
    ]


def kineret_ended_80_days(chart: b.Chart) -> None:
    chart.statements.append(
        b.med_statement("ms-kineret", b.KINERET_SBD, "2026-03-01", "2026-09-01", status="completed")
    )


def dose_increase(chart: b.Chart) -> None:
    chart.drafts = [
        b.kineret_draft(
            dosage=[b.dose_line(100, "mg", "mg", 2, 1, "d", text="Inject 100 mg twice daily")],
            quantity=56,
            reason=b.RA_REASON,
        )
    ]


def also_active_hadlima(chart: b.Chart) -> None:
    chart.requests.append(
        b.med_request("rx-hadlima-active", b.HADLIMA, "2026-10-01", status="active", supply_days=28)
    )


def kineret_statement_active(chart: b.Chart) -> None:
    chart.statements.append(
        b.med_statement("ms-kineret", b.KINERET_SBD, "2026-05-01", None, status="active")
    )
    chart.observations = [
        b.rapid3("obs-rapid3-0", "2026-04-25", 15),
        b.rapid3("obs-rapid3-1", b.day(-10), 9),
    ]


def mtx_ongoing_statement(chart: b.Chart) -> None:
    no_mtx(chart)
    chart.statements.append(
        b.med_statement("ms-mtx", b.MTX_IN, "2026-06-01", None, status="active")
    )


BASELINE_CDAI = b.cdai("obs-cdai-0", "2026-04-20", 30)

SCENARIOS: list[Scenario] = [
    Scenario(
        "ia_all_met_mtx_refills",
        "I.A all met; MTX 28 d x (1 + 3 refills) = 112 d >= 90 (INTERPRETATION I.A.4 a); "
        "Hadlima 9 months (I.A.5); CDAI 28 (I.A.6)",
        nothing,
        "criteria-met",
        met_except(),
        "info",
        details={"I.A.6": {"band": "high disease activity"}},
    ),
    Scenario(
        "ia1_polyarthropathy_m06_4_off_label",
        "M06.4 is not RA (INTERPRETATION Indication): I.E off-label review",
        dx_polyarthropathy_only,
        "off-label-review",
        {},
        "warning",  # off-label: not covered until reviewed (docs/cards.md)
        section="I.E",
    ),
    Scenario(
        "ia1_ra_refuted_off_label",
        "a refuted Condition does not count (INTERPRETATION Indication 2); no reasonCode",
        dx_ra_refuted,
        "off-label-review",
        {},
        "warning",  # off-label: not covered until reviewed (docs/cards.md)
        section="I.E",
    ),
    Scenario(
        "ia1_acr_score_below_6",
        "INTERPRETATION I.A.1: an ACR 2010 score < 6 makes it not-met",
        dx_acr_below_six,
        "criteria-not-met",
        met_except(I_A_1="not-met"),
        "warning",
    ),
    Scenario(
        "indication_reasoncode_ra_over_covid",
        "INTERPRETATION Indication 1: the order's reasonCode (RA) decides over an active COVID-19",
        reason_picks_ra_over_covid,
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "indication_reasonreference_ra_over_caps",
        "INTERPRETATION Indication 1: reasonReference to the RA Condition decides over M04.2",
        reason_reference_ra_over_caps,
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "indication_reasoncode_still_over_ra",
        "reasonCode M06.1 (adult-onset Still's, not RA) decides: I.E although RA is charted",
        reason_still_disease_over_ra,
        "off-label-review",
        {},
        "warning",  # off-label: not covered until reviewed (docs/cards.md)
        section="I.E",
    ),
    Scenario(
        "ia2_family_medicine_no_consult",
        "INTERPRETATION I.A.2: no rheumatology role, CareTeam or referral: unknown",
        prescriber_family_medicine,
        "documentation-needed",
        met_except(I_A_2="unknown"),
        "warning",
    ),
    Scenario(
        "ia2_referral_within_12_months",
        "INTERPRETATION I.A.2: referral to rheumatology within 12 months",
        referral_recent,
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia2_referral_13_months_ago",
        "INTERPRETATION I.A.2: a referral older than 12 months does not count: unknown",
        referral_stale,
        "documentation-needed",
        met_except(I_A_2="unknown"),
        "warning",
    ),
    Scenario(
        "ia2_care_team_rheumatologist",
        "INTERPRETATION I.A.2: rheumatologist on the patient's active CareTeam",
        care_team_rheumatologist,
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia3_turns_18_tomorrow",
        "I.A.3 age >= 18 on the order date; born 2008-11-21 is 17 on 2026-11-20",
        born("2008-11-21"),
        "criteria-not-met",
        met_except(I_A_3="not-met"),
        "warning",
    ),
    Scenario(
        "ia3_18th_birthday_on_order_date",
        "I.A.3: the 18th birthday itself counts (policy yaml note)",
        born("2008-11-20"),
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia3_no_birth_date",
        "INTERPRETATION I.A.3: no birthDate: unknown",
        born(None),
        "documentation-needed",
        met_except(I_A_3="unknown"),
        "warning",
    ),
    Scenario(
        "ia4_mtx_60_days_no_intolerance",
        "INTERPRETATION I.A.4: 30 d x (1 + 1 refill) = 60 d, no intolerance: not-met",
        mtx_short_request,
        "criteria-not-met",
        met_except(I_A_4="not-met"),
        "warning",
    ),
    Scenario(
        "ia4_mtx_dispenses_gaps_joined",
        "INTERPRETATION I.A.4: dispenses 30 d each, gaps 12 and 6 days (<= 14) joined: 108 d",
        _mtx_dispenses(("2025-01-01", 30), ("2025-02-12", 30), ("2025-03-20", 30)),
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia4_mtx_dispenses_gap_20_days",
        "INTERPRETATION I.A.4: a 20-day gap breaks the run: longest 60 d < 90: not-met",
        _mtx_dispenses(("2025-01-01", 30), ("2025-02-20", 30), ("2025-03-22", 30)),
        "criteria-not-met",
        met_except(I_A_4="not-met"),
        "warning",
    ),
    Scenario(
        "ia4_mtx_statement_exactly_90_days",
        "MedicationStatement 2025-02-01..2025-05-01 = 90 days inclusive, 3 calendar months: met",
        _mtx_statement("2025-02-01", "2025-05-01"),
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia4_mtx_statement_89_days",
        "MedicationStatement 2025-06-01..2025-08-28 = 89 days < 90: not-met",
        _mtx_statement("2025-06-01", "2025-08-28"),
        "criteria-not-met",
        met_except(I_A_4="not-met"),
        "warning",
    ),
    Scenario(
        "ia4_mtx_ongoing_statement",
        "active MTX statement since 2026-06-01, open end runs to the order date: 173 d; "
        "MTX is not a III.B drug (Kineret may be used with DMARDs other than TNF blockers)",
        mtx_ongoing_statement,
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia4_mtx_single_90_day_fill",
        "one 90-day fill, no refills: 90 d x (1 + 0) = 90 d: met",
        mtx_single_90_day_fill,
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia4_mtx_only_entered_in_error",
        "entered-in-error is no record: no MTX history: unknown (INTERPRETATION I.A.4)",
        mtx_request_entered_in_error,
        "documentation-needed",
        met_except(I_A_4="unknown"),
        "warning",
    ),
    Scenario(
        "ia4b_mtx_intolerance_sulfasalazine_trial",
        "I.A.4 b: AllergyIntolerance to MTX + sulfasalazine 137 days",
        mtx_intolerance_sulfasalazine,
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia4b_mtx_intolerance_no_conventional",
        "I.A.4 b: MTX intolerance but no conventional DMARD trial: unknown (yaml I.A.4 note)",
        mtx_intolerance_no_conventional,
        "documentation-needed",
        met_except(I_A_4="unknown"),
        "warning",
    ),
    Scenario(
        "ia4b_mtx_intolerance_hcq_44_days",
        "I.A.4 b: conventional trial 44 days, no adverse effect: not-met (yaml I.A.4 note)",
        mtx_intolerance_short_hcq,
        "criteria-not-met",
        met_except(I_A_4="not-met"),
        "warning",
    ),
    Scenario(
        "ia4b_alcohol_20_units_leflunomide",
        "Appendix D: > 14 units/week contraindicates MTX; leflunomide 137 days: met",
        alcohol_over_14,
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia4b_alcohol_14_units_not_contraindication",
        "Appendix D: 14 units/week is social use, not a contraindication; no MTX: unknown",
        alcohol_exactly_14,
        "documentation-needed",
        met_except(I_A_4="unknown"),
        "warning",
    ),
    Scenario(
        "ia4b_alcohol_3_drinks_per_day_loinc",
        "Appendix D: LOINC 74013-4 3 drinks/day = 21/week > 14 contraindicates MTX; "
        "leflunomide 137 days: met",
        alcohol_per_day_loinc,
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia4_childbearing_potential_not_contraindication",
        "Appendix D: child-bearing age is not an MTX contraindication: 30-day MTX trial "
        "is not-met even with a sulfasalazine trial",
        childbearing_potential,
        "criteria-not-met",
        met_except(I_A_4="not-met"),
        "warning",
    ),
    Scenario(
        "ia4b_pregnancy_contraindication_sulfasalazine",
        "pregnancy (Z33.1) contraindicates MTX (INTERPRETATION I.A.4 b); sulfasalazine 181 d",
        pregnancy_contraindication,
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia5_no_preferred_product",
        "INTERPRETATION I.A.5: none found: unknown",
        no_preferred,
        "documentation-needed",
        met_except(I_A_5="unknown"),
        "warning",
        # No trial of a preferred product at all: the card offers to replace the order with
        # one (Appendix B products whose codes are verified: Xeljanz, Xeljanz XR, Actemra).
        proposed_orders=["1357547", "1741049", "1441530"],
    ),
    Scenario(
        "ia5_humira_intolerance",
        "I.A.5 'unless clinically significant adverse effects': documented Humira allergy",
        preferred_intolerance,
        "criteria-met",
        met_except(),
        "info",
        proposed_orders=[],
    ),
    Scenario(
        "ia5_tofacitinib_dispenses_joined",
        "I.A.5: Xeljanz dispenses 30 d, gaps 3 days: 96 d; dispenses are history, not "
        "concurrent use (III.B note)",
        preferred_tofacitinib_dispenses,
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia5_tocilizumab_60_days",
        "I.A.5: short preferred trial with no adverse effect stays unknown (yaml I.A.5 note)",
        preferred_short_tocilizumab,
        "documentation-needed",
        met_except(I_A_5="unknown"),
        "warning",
        # A trial is on file (its length decides): no other product is proposed.
        proposed_orders=[],
    ),
    Scenario(
        "ia5_etanercept_is_not_preferred",
        "Appendix B preferred = tocilizumab, adalimumab, tofacitinib; etanercept is not one",
        preferred_etanercept_only,
        "documentation-needed",
        met_except(I_A_5="unknown"),
        "warning",
    ),
    Scenario(
        "ia6_no_score",
        "INTERPRETATION I.A.6: no CDAI / RAPID3: unknown",
        scores(),
        "documentation-needed",
        met_except(I_A_6="unknown"),
        "warning",
    ),
    Scenario(
        "ia6_rapid3_high",
        "I.A.6 b: RAPID3 14 > 12: high (Appendix H)",
        scores(b.rapid3("obs-rapid3", b.day(-10), 14)),
        "criteria-met",
        met_except(),
        "info",
        details={"I.A.6": {"band": "high disease activity", "kind": "rapid3"}},
    ),
    Scenario(
        "ia6_cdai_22_moderate",
        "Appendix G: CDAI 22 is moderate (> 10 to <= 22)",
        scores(b.cdai("obs-cdai", b.day(-10), 22)),
        "criteria-met",
        met_except(),
        "info",
        details={"I.A.6": {"band": "moderate disease activity", "kind": "cdai"}},
    ),
    Scenario(
        "ia6_cdai_only_after_order",
        "INTERPRETATION I.A.6: a CDAI on or before the order date; one dated after: unknown",
        scores(b.cdai("obs-cdai", b.day(5), 30)),
        "documentation-needed",
        met_except(I_A_6="unknown"),
        "warning",
    ),
    Scenario(
        "ia7_hadlima_active_request",
        "I.A.7 / III.B: an active adalimumab (TNF) order: not-met, critical",
        concurrent(b.med_request("rx-hadlima-now", b.HADLIMA, b.day(-20), status="active")),
        "criteria-not-met",
        met_except(I_A_7="not-met", III_B="not-met"),
        "critical",
    ),
    Scenario(
        "ia7_rinvoq_on_hold",
        "INTERPRETATION I.A.7: on-hold counts; upadacitinib is a JAK inhibitor",
        concurrent(b.med_request("rx-rinvoq", b.RINVOQ, b.day(-40), status="on-hold")),
        "criteria-not-met",
        met_except(I_A_7="not-met", III_B="not-met"),
        "critical",
    ),
    Scenario(
        "ia7_orencia_statement_active",
        "I.A.7: active MedicationStatement for abatacept (co-stimulation modulator)",
        concurrent(b.med_statement("ms-orencia", b.ORENCIA, "2026-06-01", None, status="active")),
        "criteria-not-met",
        met_except(I_A_7="not-met", III_B="not-met"),
        "critical",
    ),
    Scenario(
        "ia7_rituxan_active",
        "III.B anti-CD20: an active rituximab order",
        concurrent(b.med_request("rx-rituxan", b.RITUXAN, b.day(-60), status="active")),
        "criteria-not-met",
        met_except(I_A_7="not-met", III_B="not-met"),
        "critical",
    ),
    Scenario(
        "ia7_past_biologics_do_not_count",
        "INTERPRETATION I.A.7: stopped, completed, entered-in-error do not count",
        concurrent(
            b.med_request("rx-enbrel-old", b.ENBREL, "2023-01-05", status="stopped"),
            b.med_request("rx-xeljanz-old", b.XELJANZ, "2023-09-01", status="completed"),
            b.med_request("rx-olumiant-eie", b.OLUMIANT, b.day(-3), status="entered-in-error"),
            b.med_statement("ms-actemra-old", b.ACTEMRA, "2022-01-01", "2022-08-01"),
        ),
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia7_actemra_second_draft_order",
        "INTERPRETATION I.A.7: another draft order for a listed drug conflicts",
        concurrent_draft_actemra,
        "criteria-not-met",
        met_except(I_A_7="not-met", III_B="not-met"),
        "critical",
    ),
    Scenario(
        "ia8_dose_0_67_ml_daily",
        "INTERPRETATION dose: 0.67 mL = 100 mg; once daily: met",
        _dose(b.dose_line(0.67, "mL", "mL", text="Inject 0.67 mL subcutaneously once daily")),
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia8_dose_1_syringe_daily_ndc",
        "1 syringe (100 mg) daily, order coded by Kineret NDC: met",
        lambda chart: setattr(
            chart,
            "drafts",
            [
                b.kineret_draft(
                    med=b.KINERET_NDC,
                    dosage=[b.dose_line(1, "syringe", "{syringe}", text="Inject 1 syringe daily")],
                    reason=b.RA_REASON,
                )
            ],
        ),
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia8_dose_bid_timing_code",
        "100 mg BID = 200 mg/day, 2 syringes/day > limits: not-met warning",
        _dose(
            b.dose_line(100, "mg", "mg", None, None, None, timing_code="BID", text="100 mg BID"),
            quantity=56,
        ),
        "criteria-not-met",
        met_except(I_A_8="not-met"),
        "warning",
    ),
    Scenario(
        "ia8_dose_every_other_day",
        "100 mg every 2 days = 50 mg/day; 14 syringes / 28 days: met",
        _dose(b.dose_line(100, "mg", "mg", 1, 2, "d", text="100 mg every other day"), quantity=14),
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia8_dose_1_34_ml_daily",
        "1.34 mL = 200 mg daily: not-met",
        _dose(b.dose_line(1.34, "mL", "mL", text="Inject 1.34 mL daily"), quantity=56),
        "criteria-not-met",
        met_except(I_A_8="not-met"),
        "warning",
    ),
    Scenario(
        "ia8_dose_split_50_mg_twice",
        "two dosageInstruction lines of 50 mg: 100 mg/day but 2 syringes/day > 1: not-met",
        _dose(
            b.dose_line(50, "mg", "mg", text="50 mg in the morning"),
            b.dose_line(50, "mg", "mg", text="50 mg in the evening"),
            quantity=56,
        ),
        "criteria-not-met",
        met_except(I_A_8="not-met"),
        "warning",
    ),
    Scenario(
        "ia8_dispense_exceeds_supply",
        "100 mg daily but 56 syringes for 28 days = 2 syringes/day dispensed: not-met",
        _dose(b.dose_line(100, "mg", "mg"), quantity=56, days=28),
        "criteria-not-met",
        met_except(I_A_8="not-met"),
        "warning",
    ),
    Scenario(
        "ia8_dose_weekly",
        "100 mg once weekly: within 100 mg/day and 1 syringe/day",
        _dose(b.dose_line(100, "mg", "mg", 1, 1, "wk", text="100 mg weekly"), quantity=4),
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "ia8_dose_without_timing",
        "INTERPRETATION dose: unknown timing is unknown, never a guess",
        _dose(
            b.dose_line(100, "mg", "mg", None, None, None, text="100 mg SC"),
            quantity=None,
            days=None,
        ),
        "documentation-needed",
        met_except(I_A_8="unknown"),
        "warning",
    ),
    Scenario(
        "ivc_e_coli_protein_allergy",
        "Appendix C: hypersensitivity to E. coli-derived proteins: not-met, critical",
        hypersensitivity_e_coli,
        "criteria-not-met",
        met_except(IV_C="not-met"),
        "critical",
    ),
    # ------------------------------------------------------------ continued therapy
    Scenario(
        "iia_cdai_decrease",
        "II.A: active Kineret order; CDAI 30 before first anakinra (2026-05-01) -> 12 now",
        continued(BASELINE_CDAI, b.cdai("obs-cdai-1", b.day(-10), 12)),
        "criteria-met",
        {"II.A.1": "met", "II.A.2": "met", "II.A.3": "met", "II.A.4": "met"},
        "info",
        pathway="continued",
        section="II.A",
    ),
    Scenario(
        "iia_cdai_increase",
        "II.A.2 a i: CDAI 20 -> 26 is no decrease: not-met",
        continued(b.cdai("obs-cdai-0", "2026-04-20", 20), b.cdai("obs-cdai-1", b.day(-10), 26)),
        "criteria-not-met",
        {"II.A.1": "met", "II.A.2": "not-met", "II.A.3": "met", "II.A.4": "met"},
        "warning",
        pathway="continued",
        section="II.A",
    ),
    Scenario(
        "iia_cdai_unchanged",
        "II.A.2: an equal CDAI is not a decrease (yaml II.A.2 note)",
        continued(b.cdai("obs-cdai-0", "2026-04-20", 18), b.cdai("obs-cdai-1", b.day(-10), 18)),
        "criteria-not-met",
        {"II.A.2": "not-met"},
        "warning",
        pathway="continued",
        section="II.A",
    ),
    Scenario(
        "iia_active_statement_rapid3_pair_decrease",
        "Pathway: active Kineret MedicationStatement; II.A.2 a i: RAPID3 15 -> 9 is a decrease",
        kineret_statement_active,
        "criteria-met",
        {"II.A.1": "met", "II.A.2": "met", "II.A.3": "met", "II.A.4": "met"},
        "info",
        pathway="continued",
        section="II.A",
    ),
    Scenario(
        "iia_rapid3_same_band_as_baseline_cdai",
        "II.A.2 a ii: no CDAI re-assessment; RAPID3 13 (high) vs baseline CDAI 30 (high)",
        continued(BASELINE_CDAI, b.rapid3("obs-rapid3-1", b.day(-10), 13)),
        "criteria-met",
        {"II.A.2": "met"},
        "info",
        pathway="continued",
        section="II.A",
    ),
    Scenario(
        "iia_rapid3_worse_band_than_baseline_cdai",
        "II.A.2 a ii: baseline CDAI 8 (low), RAPID3 13 (high) now: not-met",
        continued(b.cdai("obs-cdai-0", "2026-04-20", 8), b.rapid3("obs-rapid3-1", b.day(-10), 13)),
        "criteria-not-met",
        {"II.A.2": "not-met"},
        "warning",
        pathway="continued",
        section="II.A",
    ),
    Scenario(
        "iia_no_baseline_score",
        "II.A.2: no score before the first anakinra date: unknown",
        continued(b.cdai("obs-cdai-1", b.day(-10), 12)),
        "documentation-needed",
        {"II.A.1": "met", "II.A.2": "unknown"},
        "warning",
        pathway="continued",
        section="II.A",
    ),
    Scenario(
        "iia_statement_ended_50_days_ago",
        "INTERPRETATION Pathway: a Kineret statement that ended 50 days ago is continued",
        continued_statement_ended_50_days,
        "criteria-met",
        {"II.A.1": "met", "II.A.2": "met", "II.A.3": "met", "II.A.4": "met"},
        "info",
        pathway="continued",
        section="II.A",
    ),
    Scenario(
        "iia_kineret_ended_80_days_ago_is_initial",
        "INTERPRETATION Pathway: ended more than 60 days ago: initial (I.A) again",
        kineret_ended_80_days,
        "criteria-met",
        met_except(),
        "info",
    ),
    Scenario(
        "iia4_dose_increase_to_200_mg",
        "II.A.4: current 100 mg/day, new 100 mg BID = 200 mg/day > 100: not-met",
        continued(BASELINE_CDAI, b.cdai("obs-cdai-1", b.day(-10), 12), extra=dose_increase),
        "criteria-not-met",
        {"II.A.2": "met", "II.A.4": "not-met"},
        "warning",
        pathway="continued",
        section="II.A",
    ),
    Scenario(
        "iia3_concurrent_adalimumab",
        "II.A.3: an active adalimumab order with continued Kineret: not-met, critical",
        continued(BASELINE_CDAI, b.cdai("obs-cdai-1", b.day(-10), 12), extra=also_active_hadlima),
        "criteria-not-met",
        {"II.A.2": "met", "II.A.3": "not-met", "III.B": "not-met"},
        "critical",
        pathway="continued",
        section="II.A",
    ),
]


def build(scenario: Scenario) -> Json:
    chart = b.Chart()
    scenario.edit(chart)
    request = chart.request(f"scn-ra-{scenario.name}")
    expect: Json = {
        "outcome": scenario.outcome,
        "pathway": scenario.pathway,
        "section": scenario.section,
        "criteria": scenario.criteria,
        "indicator": scenario.indicator,
        "why": scenario.why,
    }
    if scenario.details:
        expect["details"] = scenario.details
    if scenario.proposed_orders is not None:
        expect["proposed_orders"] = scenario.proposed_orders
    return {"_expect": expect, **request}


def main() -> None:
    OUT_DIR.mkdir(exist_ok=True)
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
