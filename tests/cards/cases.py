"""Named card cases: (hook, evaluations) built directly from facts and decisions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cds_service.cards import Evaluation, NotEvaluated
from cds_service.policy.model import CriterionResult, Outcome, Status
from tests.cards.builders import RA_MET, criterion, decision, facts, medication_request, replace

Case = tuple[str, Sequence[Evaluation | NotEvaluated]]


def criteria_met() -> Case:
    return "order-sign", [
        Evaluation(facts(), decision(Outcome.CRITERIA_MET, approval_months=6)),
    ]


def documentation_needed() -> Case:
    criteria = replace(
        RA_MET,
        criterion(
            "I.A.4",
            Status.UNKNOWN,
            check="step-therapy",
            reason="No methotrexate history in the chart",
            documentation="Dates and doses of a methotrexate trial of at least 3 months, "
            "or the documented intolerance or contraindication",
        ),
        criterion(
            "I.A.6",
            Status.UNKNOWN,
            check="baseline-score",
            reason="No CDAI or RAPID3 score on or before the order date",
            documentation="A baseline CDAI or RAPID3 score",
        ),
    )
    return "order-sign", [
        Evaluation(facts(), decision(Outcome.DOCUMENTATION_NEEDED, criteria)),
    ]


def dose_over_ra() -> Case:
    resource = medication_request(dose_mg=200, dispense=(56, 28))
    criteria = replace(
        RA_MET,
        criterion(
            "I.A.8",
            Status.NOT_MET,
            check="dose-limit",
            reason="200 mg/day and 2 syringes/day ordered; the limit is 100 mg and 1 syringe a day",
            details={
                "ordered_mg_per_day": 200,
                "limit_mg_per_day": 100,
                "limit_syringes_per_day": 1,
            },
        ),
    )
    return "order-sign", [
        Evaluation(
            facts(resource, mg_per_day=200, administrations_per_day=1),
            decision(Outcome.CRITERIA_NOT_MET, criteria),
        ),
    ]


NOMID_CRITERIA = (
    criterion("I.B.1", check="diagnosis", reason="NOMID is recorded", evidence=("Condition/n1",)),
    criterion(
        "I.B.2", check="prescriber-specialty", reason="Ordered by a pediatric rheumatologist"
    ),
    criterion("I.B.3", check="no-concurrent-therapy", reason="No concurrent biologic"),
    criterion(
        "I.B.4",
        Status.NOT_MET,
        check="dose-limit",
        reason="10 mg/kg/day ordered at 20 kg; the limit is 8 mg/kg/day",
        evidence=("Observation/weight-1",),
        details={"limit_mg_per_kg_per_day": 8, "weight_kg": 20.0, "syringe_band_mg": 105},
    ),
    criterion("III.B", check="no-concurrent-therapy", reason="No concurrent biologic"),
)


def dose_over_nomid() -> Case:
    resource = medication_request("kineret-peds", dose_mg=100, frequency=2)
    return "order-sign", [
        Evaluation(
            facts(resource, mg_per_day=200, administrations_per_day=2, weight_kg=20.0),
            decision(
                Outcome.CRITERIA_NOT_MET,
                NOMID_CRITERIA,
                order_ref="MedicationRequest/kineret-peds",
                section="I.B",
                indication="nomid",
            ),
        ),
    ]


def _combination_criteria() -> tuple[CriterionResult, ...]:
    conflict = {
        "conflicts": [
            {"drug": "adalimumab", "ref": "MedicationRequest/humira-draft", "draft": True},
        ]
    }
    reason = "A draft order for adalimumab (a TNF blocker) is in this request"
    return replace(
        RA_MET,
        criterion(
            "I.A.7",
            Status.NOT_MET,
            check="no-concurrent-therapy",
            reason=reason,
            evidence=("MedicationRequest/humira-draft",),
            details=conflict,
        ),
        criterion(
            "III.B",
            Status.NOT_MET,
            check="no-concurrent-therapy",
            reason=reason,
            evidence=("MedicationRequest/humira-draft",),
            details=conflict,
        ),
    )


def combination_draft() -> Case:
    return "order-sign", [
        Evaluation(facts(), decision(Outcome.CRITERIA_NOT_MET, _combination_criteria())),
    ]


def order_select_clinical_only() -> Case:
    criteria = replace(
        _combination_criteria(),
        criterion(
            "I.A.6",
            Status.UNKNOWN,
            check="baseline-score",
            reason="No CDAI or RAPID3 score",
            documentation="A baseline CDAI or RAPID3 score",
        ),
    )
    return "order-select", [
        Evaluation(facts(coverage_refs=()), decision(Outcome.CRITERIA_NOT_MET, criteria)),
    ]


def hypersensitivity() -> Case:
    criteria = (
        *RA_MET,
        criterion(
            "IV.C",
            Status.NOT_MET,
            check="hypersensitivity",
            reason="Active allergy to E. coli-derived proteins (anaphylaxis)",
            evidence=("AllergyIntolerance/ecoli-1",),
            details={"substances": ["E. coli-derived proteins"]},
        ),
    )
    return "order-sign", [Evaluation(facts(), decision(Outcome.CRITERIA_NOT_MET, criteria))]


def covid_outpatient() -> Case:
    criteria = (
        criterion(
            "I.D.1",
            Status.NOT_MET,
            check="care-setting",
            reason="The encounter is ambulatory (AMB): outpatient initiation is not authorized",
            evidence=("Encounter/e1",),
        ),
    )
    return "order-sign", [
        Evaluation(
            facts(),
            decision(Outcome.CRITERIA_NOT_MET, criteria, section="I.D", indication="covid-19"),
        )
    ]


def other_not_met() -> Case:
    criteria = replace(
        RA_MET,
        criterion("I.A.3", Status.NOT_MET, check="age", reason="Age 16 on the order date"),
        criterion(
            "I.A.4",
            Status.NOT_MET,
            check="step-therapy",
            reason="Methotrexate taken for 45 days (fewer than 90) with no intolerance recorded",
            evidence=("MedicationStatement/mtx-1",),
        ),
    )
    return "order-sign", [Evaluation(facts(), decision(Outcome.CRITERIA_NOT_MET, criteria))]


def off_label() -> Case:
    criteria = (
        criterion(
            "I.E",
            Status.UNKNOWN,
            check="off-label",
            reason="Familial cold autoinflammatory syndrome is not an indication of this policy",
            evidence=("Condition/fcas-1",),
        ),
    )
    return "order-sign", [
        Evaluation(
            facts(),
            decision(
                Outcome.OFF_LABEL_REVIEW,
                criteria,
                section="I.E",
                indication="other",
                policy_references=("CP.PMN.53", "CP.PMN.255", "CP.PMN.16"),
            ),
        )
    ]


def not_evaluated() -> Case:
    return "order-sign", [
        NotEvaluated(
            "MedicationRequest/kineret-2", "the patient's medication list could not be read"
        ),
    ]


CASES: dict[str, Callable[[], Case]] = {
    "criteria_met": criteria_met,
    "documentation_needed": documentation_needed,
    "dose_over_ra": dose_over_ra,
    "dose_over_nomid": dose_over_nomid,
    "combination_draft": combination_draft,
    "order_select_clinical_only": order_select_clinical_only,
    "hypersensitivity": hypersensitivity,
    "covid_outpatient": covid_outpatient,
    "other_not_met": other_not_met,
    "off_label": off_label,
    "not_evaluated": not_evaluated,
}
