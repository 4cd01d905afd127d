"""Engine behaviour beyond single cases: purity, order date, pathway edges."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from cds_service.policy.engine import evaluate, load_policy
from cds_service.policy.model import Decision, Pathway
from tests.policy.case_builder import build_facts, case_facts_spec


def _decide(base: str, facts: dict[str, Any], today: date | None = None) -> Decision:
    built, order_date = build_facts(case_facts_spec({"base": base, "facts": facts}))
    return evaluate(load_policy(), built, today or order_date)


def test_today_is_ignored_when_the_order_has_a_date() -> None:
    facts = {"birth_date": "2007-06-02"}
    on_time = _decide("ra-initial-met", facts)
    a_year_early = _decide("ra-initial-met", facts, today=date(2024, 6, 2))
    assert on_time == a_year_early
    assert on_time.criterion("I.A.3") == a_year_early.criterion("I.A.3")


def test_today_stands_in_for_a_missing_order_date() -> None:
    facts = {"order": {"authored_on": None}, "birth_date": "2007-06-02"}
    before = _decide("ra-initial-met", facts, today=date(2025, 6, 1))
    on_birthday = _decide("ra-initial-met", facts, today=date(2025, 6, 2))
    assert str(before.criterion("I.A.3").status) == "not-met"  # type: ignore[union-attr]
    assert str(on_birthday.criterion("I.A.3").status) == "met"  # type: ignore[union-attr]


def test_another_anakinra_draft_is_duplicate_therapy_not_continued_therapy() -> None:
    decision = _decide(
        "ra-initial-met",
        {
            "medications": [
                {"drug": "anakinra", "type": "MedicationRequest", "status": "draft", "draft": True}
            ]
        },
    )
    assert decision.pathway is Pathway.INITIAL
    assert str(decision.criterion("III.B").status) == "not-met"  # type: ignore[union-attr]


def test_stale_active_anakinra_record_does_not_count() -> None:
    decision = _decide(
        "ra-initial-met",
        {"medications": [{"drug": "anakinra", "status": "active", "start": -700, "end": -400}]},
    )
    assert decision.pathway is Pathway.INITIAL


def test_dispense_within_window_makes_therapy_continued() -> None:
    decision = _decide(
        "ra-continued-met",
        {
            "medications": [
                {
                    "drug": "anakinra",
                    "type": "MedicationDispense",
                    "status": "completed",
                    "start": -50,
                    "end": -20,
                }
            ]
        },
    )
    assert decision.pathway is Pathway.CONTINUED


def test_evaluation_is_repeatable() -> None:
    first = _decide("dira-initial-met", {})
    second = _decide("dira-initial-met", {})
    assert first == second
    assert [r.details for r in first.criteria] == [r.details for r in second.criteria]


def test_order_date_window_is_relative_to_the_order() -> None:
    # Ended 60 days before the order: still continued (the window is inclusive).
    decision = _decide(
        "ra-continued-met",
        {
            "medications": [
                {
                    "drug": "anakinra",
                    "status": "completed",
                    "start": -200,
                    "end": -60,
                    "mg_per_day": 100,
                }
            ]
        },
    )
    assert decision.pathway is Pathway.CONTINUED
    assert timedelta(days=60).days == load_policy().pathway.continued_within_days
