"""Record checks (a drug received lately, findings on file, an active condition, an
intolerance, an uncovered use), switch_from on no-concurrent-therapy, and the combinators."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.policy.checks import CHECKS
from cds_service.policy.model import Status
from tests.policy.check_helpers import run, status

MET, NOT_MET, UNKNOWN = Status.MET, Status.NOT_MET, Status.UNKNOWN

RECENT = {"valuesets": ["anakinra"], "within_days": 90, "min_days": 28}


def anakinra(**over: Any) -> dict[str, Any]:
    return {
        "drug": "anakinra",
        "type": "MedicationDispense",
        "status": "completed",
        "start": -20,
        **over,
    }


@pytest.mark.parametrize(
    ("meds", "expected"),
    [
        ([anakinra(start=-60), anakinra(start=-20)], MET),
        ([anakinra(start=-200), anakinra(start=-20)], NOT_MET),  # a gap, no run joins them
        ([anakinra(start=-20)], NOT_MET),  # first received 20 days ago: needs 28
        ([anakinra(start=-200, end=-150)], NOT_MET),  # nothing in the last 90 days
        ([anakinra(start=-20, status="entered-in-error")], NOT_MET),
        ([], NOT_MET),
    ],
)
def test_drug_received_recently(meds, expected):
    assert status("drug-received-recently", RECENT, {"medications": meds}) is expected


def test_active_order_begun_long_ago_runs_into_the_window():
    meds = [anakinra(type="MedicationRequest", status="active", start=-300)]
    assert status("drug-received-recently", RECENT, {"medications": meds}) is MET


def test_received_recently_without_a_length_requirement():
    assert (
        status(
            "drug-received-recently",
            {"valuesets": ["anakinra"], "within_days": 90},
            {"medications": [anakinra()]},
        )
        is MET
    )


SYMPTOMS = {
    "valuesets": ["rash", "cold-triggered", "hearing-loss"],
    "min": 2,
    "label": "typical symptoms",
}


def test_two_distinct_findings_of_any_status_are_met():
    facts = {
        "condition_history": [
            {"valuesets": ["rash"], "onset": -400, "status": "resolved"},
            {"valuesets": ["hearing-loss"], "onset": -30, "source": "observation"},
        ]
    }
    verdict = run("findings-count", SYMPTOMS, facts)
    assert verdict.status is MET
    assert "2 typical symptoms" in verdict.reason


def test_two_codes_of_one_finding_count_once_and_are_unknown_not_not_met():
    facts = {
        "condition_history": [
            {"valuesets": ["rash"], "code": "1", "onset": -400},
            {"valuesets": ["rash"], "code": "2", "onset": -300},
        ]
    }
    verdict = run("findings-count", SYMPTOMS, facts)
    assert verdict.status is UNKNOWN
    assert verdict.documentation
    assert status("findings-count", {**SYMPTOMS, "count_by": "code"}, facts) is MET
    assert status("findings-count", SYMPTOMS, {}) is UNKNOWN


INFECTION = {"valuesets": ["serious-infection"], "label": "serious infection"}


def test_no_active_condition():
    assert status("no-active-condition", INFECTION, {}) is MET
    resolved = {
        "condition_history": [
            {
                "valuesets": ["serious-infection"],
                "onset": -100,
                "abatement": -80,
                "status": "resolved",
            }
        ]
    }
    assert status("no-active-condition", INFECTION, resolved) is MET
    active = {"diagnoses": [{"valuesets": ["serious-infection"]}]}
    assert status("no-active-condition", INFECTION, active) is NOT_MET
    working = {"diagnoses": [{"valuesets": ["serious-infection"], "verification": "provisional"}]}
    assert status("no-active-condition", INFECTION, working) is UNKNOWN


def test_intolerance_documented():
    params = {"valuesets": ["colchicine"]}
    found = {
        "intolerances": [
            {"substance": "colchicine", "valuesets": ["colchicine"], "kind": "intolerance"}
        ]
    }
    assert status("intolerance-documented", params, found) is MET
    assert status("intolerance-documented", params, {}) is UNKNOWN
    assert status("intolerance-documented", {**params, "absent_status": "not-met"}, {}) is NOT_MET
    assert CHECKS["intolerance-documented"].statuses_for(params) == {MET, UNKNOWN}


def test_not_covered_is_always_not_met_with_its_reason():
    verdict = run("not-covered", {"reason": "NOMID is not an indication of this drug."}, {})
    assert verdict.status is NOT_MET
    assert verdict.reason == "NOMID is not an indication of this drug."


# --------------------------------------------------------------------------- switch_from

CONCURRENT = {
    "valuesets": ["biologic-dmard-or-jak-inhibitor", "anakinra"],
    "statuses": ["active", "on-hold"],
}


def test_switch_from_the_replaced_drug_is_no_combination_and_says_to_stop_it():
    meds = {
        "medications": [
            {"drug": "anakinra", "type": "MedicationRequest", "status": "active", "start": -200}
        ]
    }
    assert status("no-concurrent-therapy", CONCURRENT, meds) is NOT_MET
    verdict = run("no-concurrent-therapy", {**CONCURRENT, "switch_from": ["anakinra"]}, meds)
    assert verdict.status is MET
    assert "stop anakinra" in verdict.reason
    assert "next dose" in verdict.reason
    assert verdict.details["switch_from"][0]["drug"] == "anakinra"


def test_switch_from_does_not_excuse_another_biologic_or_a_draft_of_the_replaced_drug():
    meds = {
        "medications": [
            {"drug": "anakinra", "type": "MedicationRequest", "status": "active", "start": -200},
            {"drug": "adalimumab", "type": "MedicationRequest", "status": "active", "start": -20},
        ]
    }
    assert (
        status("no-concurrent-therapy", {**CONCURRENT, "switch_from": ["anakinra"]}, meds)
        is NOT_MET
    )
    draft = {
        "medications": [
            {"drug": "anakinra", "type": "MedicationRequest", "status": "draft", "draft": True}
        ]
    }
    assert (
        status("no-concurrent-therapy", {**CONCURRENT, "switch_from": ["anakinra"]}, draft)
        is NOT_MET
    )


# --------------------------------------------------------------------------- combinators

ABOVE = {
    "check": "lab-threshold",
    "params": {
        "kinds": ["crp"],
        "direction": "above",
        "thresholds": {"crp": {"value": 10, "unit": "mg/L"}},
    },
}
WEIGHT = {"check": "minimum-weight", "params": {"kg": 10, "within_days": 90}}
CRP_HIGH = {"kind": "crp", "value": 20, "unit": "mg/L", "date": -5}
CRP_LOW = {"kind": "crp", "value": 2, "unit": "mg/L", "date": -5}
HEAVY = {"kind": "body-weight", "value": 30, "unit": "kg", "date": -5}
LIGHT = {"kind": "body-weight", "value": 8, "unit": "kg", "date": -5}


@pytest.mark.parametrize(
    ("measurements", "any_of", "all_of"),
    [
        ([CRP_HIGH, HEAVY], MET, MET),
        ([CRP_HIGH, LIGHT], MET, NOT_MET),
        ([CRP_LOW, LIGHT], NOT_MET, NOT_MET),
        ([CRP_LOW], UNKNOWN, NOT_MET),
        ([HEAVY], MET, UNKNOWN),
        ([], UNKNOWN, UNKNOWN),
    ],
)
def test_any_of_and_all_of(measurements, any_of, all_of):
    facts = {"measurements": measurements}
    params = {"checks": [ABOVE, WEIGHT]}
    assert status("any-of", params, facts) is any_of
    assert status("all-of", params, facts) is all_of


def test_unknown_combination_carries_the_sub_checks_documentation():
    verdict = run("any-of", {"checks": [ABOVE, WEIGHT], "label": "Either"}, {})
    assert verdict.reason.startswith("Either: ")
    assert verdict.documentation
    assert "body weight" in verdict.documentation


def test_sub_check_resting_on_missing_ehr_data_is_unknown_inside_a_combinator():
    sub = {"check": "no-active-condition", "params": INFECTION}
    params = {"checks": [sub]}
    assert status("any-of", params, {}) is MET
    assert status("any-of", params, {"unavailable": ["Condition"]}) is UNKNOWN


def test_combinator_statuses_follow_their_sub_checks():
    never_met = {"check": "not-covered", "params": {"reason": "x"}}
    assert CHECKS["all-of"].statuses_for({"checks": [never_met, WEIGHT]}) == {NOT_MET, UNKNOWN}
    assert CHECKS["any-of"].statuses_for({"checks": [never_met]}) == {NOT_MET}
    findings = {"check": "findings-count", "params": SYMPTOMS}
    assert CHECKS["any-of"].statuses_for({"checks": [findings, WEIGHT]}) == {MET, UNKNOWN}


def test_a_course_stopped_long_before_a_recent_restart_does_not_count_as_four_weeks():
    meds = [anakinra(start=-700, end=-600), anakinra(start=-10)]
    runs = [
        {"drug": "anakinra", "start": -700, "end": -600},
        {"drug": "anakinra", "start": -10, "end": -3},
    ]
    assert (
        status("drug-received-recently", RECENT, {"medications": meds, "therapy_runs": runs})
        is NOT_MET
    )
    continuous = [{"drug": "anakinra", "start": -120, "end": -3}]
    assert (
        status("drug-received-recently", RECENT, {"medications": meds, "therapy_runs": continuous})
        is MET
    )


def test_a_drug_on_several_current_records_is_named_once_with_the_strongest_evidence():
    meds = {
        "medications": [
            {"drug": "etanercept", "type": "MedicationStatement", "status": "active", "start": -90},
            {"drug": "etanercept", "type": "MedicationRequest", "status": "active", "start": -30},
            {"drug": "adalimumab", "type": "MedicationRequest", "status": "draft", "draft": True},
            {"drug": "adalimumab", "type": "MedicationRequest", "status": "active", "start": -9},
        ]
    }
    verdict = run("no-concurrent-therapy", CONCURRENT, meds)
    assert verdict.status is NOT_MET
    assert verdict.reason.startswith(
        "Combination with etanercept (status active), adalimumab (draft order):"
    )
    # Every record stays in the evidence and the details, for systems.
    assert len(verdict.evidence) == 4
    assert len(verdict.details["conflicts"]) == 4
