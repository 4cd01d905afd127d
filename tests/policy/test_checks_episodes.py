"""Episodes of a recurring condition (Appendix D of IL1.RIL.01): which records are one
episode, which are a recurrence, what the chart cannot tell."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.policy.model import Status
from tests.policy.check_helpers import run, status

MET, NOT_MET, UNKNOWN = Status.MET, Status.NOT_MET, Status.UNKNOWN

RECURRENT = {
    "valuesets": ["pericarditis"],
    "min_episodes": 2,
    "same_episode_days": 28,
    "default_episode_days": 42,
    "symptom_free_days": 28,
}


def records(*entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "condition_history": [
            {"valuesets": ["pericarditis"], "status": "resolved", **e} for e in entries
        ]
    }


def test_two_records_within_four_weeks_are_one_episode():
    facts = records({"onset": -300, "abatement": -280}, {"onset": -260, "abatement": -250})
    verdict = run("condition-episodes", RECURRENT, facts)
    assert verdict.status is NOT_MET
    assert verdict.details["fewest"] == verdict.details["most"] == 1


def test_a_record_four_weeks_after_the_previous_ended_is_a_recurrence():
    facts = records({"onset": -300, "abatement": -280}, {"onset": -252, "abatement": -240})
    verdict = run("condition-episodes", RECURRENT, facts)
    assert verdict.status is MET
    assert "2 episodes" in verdict.reason


def test_one_day_short_of_four_weeks_is_the_same_episode():
    facts = records({"onset": -300, "abatement": -280}, {"onset": -253})
    assert status("condition-episodes", RECURRENT, facts) is NOT_MET


@pytest.mark.parametrize(("second_onset", "expected"), [(-240, NOT_MET), (-230, MET)])
def test_no_abatement_ends_six_weeks_after_onset(second_onset, expected):
    # The first ends at -300 + 42 = -258: -240 is 18 days later, -230 is 28 days later.
    facts = records({"onset": -300, "status": "active"}, {"onset": second_onset})
    assert status("condition-episodes", RECURRENT, facts) is expected


def test_onset_known_to_the_month_only_leaves_the_count_unknown():
    # Onset any day of a month: its default end lies between -258 and -228; the next
    # record at -215 is 13 to 43 days later: one episode or two.
    facts = records({"onset": -300, "onset_latest": -270}, {"onset": -215})
    verdict = run("condition-episodes", RECURRENT, facts)
    assert verdict.status is UNKNOWN
    assert verdict.documentation
    assert "dates of each episode" in verdict.documentation


def test_abatement_recorded_without_a_date_can_leave_it_unknown():
    # Resolved on an unknown day: the next record could be within or after four weeks.
    facts = records({"onset": -300, "abated": True}, {"onset": -250})
    assert status("condition-episodes", RECURRENT, facts) is UNKNOWN


def test_a_record_without_any_date_may_be_another_episode():
    facts = records({"onset": -300, "abatement": -280}, {})
    assert status("condition-episodes", RECURRENT, facts) is UNKNOWN


def test_working_diagnosis_is_not_counted_but_keeps_the_answer_open():
    facts = records(
        {"onset": -300, "abatement": -280}, {"onset": -100, "verification": "provisional"}
    )
    assert status("condition-episodes", RECURRENT, facts) is UNKNOWN
    facts = records(
        {"onset": -300, "abatement": -280},
        {"onset": -200, "abatement": -190},
        {"onset": -100, "verification": "provisional"},
    )
    assert status("condition-episodes", RECURRENT, facts) is MET


def test_findings_charted_as_observations_are_not_episodes():
    facts = records({"onset": -300, "abatement": -280}, {"onset": -100, "source": "observation"})
    assert status("condition-episodes", RECURRENT, facts) is NOT_MET


def test_no_record_at_all_is_not_met():
    verdict = run("condition-episodes", RECURRENT, {})
    assert verdict.status is NOT_MET


def test_three_records_chained_by_short_gaps_are_one_long_episode():
    facts = records(
        {"onset": -300, "abatement": -290},
        {"onset": -270, "abatement": -260},
        {"onset": -240, "abatement": -230},
    )
    assert status("condition-episodes", RECURRENT, facts) is NOT_MET


# --------------------------------------------------------------------------- since start

SINCE = {"valuesets": ["pericarditis"]}


def test_no_new_episode_since_the_first_dose():
    facts = records({"onset": -400, "abatement": -380}, {"onset": -250, "abatement": -230})
    assert status("no-new-episode-since-start", SINCE, facts, first_drug_day=-200) is MET


def test_new_episode_after_the_first_dose_is_not_met():
    facts = records({"onset": -400, "abatement": -380}, {"onset": -100, "abatement": -90})
    verdict = run("no-new-episode-since-start", SINCE, facts, first_drug_day=-200)
    assert verdict.status is NOT_MET
    assert "after the first dose" in verdict.reason


def test_record_after_the_first_dose_within_the_episode_going_on_is_not_new():
    facts = records({"onset": -220, "abatement": -205}, {"onset": -190})
    assert status("no-new-episode-since-start", SINCE, facts, first_drug_day=-200) is MET


def test_undated_record_or_unknown_first_dose_is_unknown():
    facts = records({"onset": -400, "abatement": -380}, {})
    assert status("no-new-episode-since-start", SINCE, facts, first_drug_day=-200) is UNKNOWN
    assert status("no-new-episode-since-start", SINCE, records({"onset": -400})) is UNKNOWN


# --------------------------------------------------------------------------- on a drug

FAILURE = {
    "valuesets": ["pericarditis"],
    "drug_valuesets": ["colchicine"],
    "min_days": 90,
    "also_valuesets": ["nsaid", "aspirin"],
    "also_min_days": 7,
    "also_during_episode": True,
    "also_excused_by_intolerance": True,
}
TWO_EPISODES = [
    {"valuesets": ["pericarditis"], "status": "resolved", "onset": -400, "abatement": -380},
    {"valuesets": ["pericarditis"], "status": "resolved", "onset": -200, "abatement": -180},
]
COLCHICINE = {"drug": "colchicine", "valuesets": ["colchicine"], "start": -350, "end": -100}
IBUPROFEN = {"drug": "ibuprofen", "valuesets": ["nsaid"], "start": -200, "end": -190}


def facts_with(*runs: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"condition_history": TWO_EPISODES, "therapy_runs": list(runs), **more}


def test_recurrence_on_three_months_of_colchicine_with_an_nsaid_week_is_met():
    verdict = run("episode-while-on-drug", FAILURE, facts_with(COLCHICINE, IBUPROFEN))
    assert verdict.status is MET
    assert "colchicine" in verdict.reason
    assert "ibuprofen" in verdict.reason


def test_recurrence_before_three_months_of_colchicine_is_not_met():
    short = {**COLCHICINE, "start": -250}
    assert status("episode-while-on-drug", FAILURE, facts_with(short, IBUPROFEN)) is NOT_MET


def test_colchicine_started_after_the_recurrence_is_not_met():
    late = {**COLCHICINE, "start": -150}
    assert status("episode-while-on-drug", FAILURE, facts_with(late, IBUPROFEN)) is NOT_MET


def test_colchicine_of_unknown_length_is_unknown():
    vague = {**COLCHICINE, "end": -340, "certainty": "unknown", "open_ended": True}
    verdict = run("episode-while-on-drug", FAILURE, facts_with(vague, IBUPROFEN))
    assert verdict.status is UNKNOWN
    assert verdict.documentation


def test_nsaid_for_less_than_a_week_during_an_episode_is_not_met():
    brief = {**IBUPROFEN, "end": -198}
    assert status("episode-while-on-drug", FAILURE, facts_with(COLCHICINE, brief)) is NOT_MET


def test_no_nsaid_record_is_unknown_not_a_failure():
    assert status("episode-while-on-drug", FAILURE, facts_with(COLCHICINE)) is UNKNOWN


def test_nsaid_and_aspirin_both_not_tolerated_stand_in_for_the_nsaid_week():
    intolerant = [
        {"substance": "ibuprofen", "valuesets": ["nsaid"], "kind": "intolerance"},
        {"substance": "aspirin", "valuesets": ["aspirin"], "kind": "allergy"},
    ]
    assert (
        status("episode-while-on-drug", FAILURE, facts_with(COLCHICINE, intolerances=intolerant))
        is MET
    )
    only_one = intolerant[:1]
    assert (
        status("episode-while-on-drug", FAILURE, facts_with(COLCHICINE, intolerances=only_one))
        is UNKNOWN
    )


def test_a_single_episode_has_no_recurrence():
    facts = {"condition_history": TWO_EPISODES[:1], "therapy_runs": [COLCHICINE, IBUPROFEN]}
    verdict = run("episode-while-on-drug", FAILURE, facts)
    assert verdict.status is NOT_MET
    assert "No recurrence" in verdict.reason
