"""`dose-limit` bands by body weight (a label's "150 mg over 40 kg; 2 to 3 mg/kg from 15 to
40 kg"): the band is chosen by the latest weight, the dose card's suggestion works as with age
bands, and a missing weight leaves the criterion unknown rather than guessing a band."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.cards.dose import suggest_schedule
from cds_service.policy.checks import run_check
from cds_service.policy.definition import PolicyFileError, parse_policy
from cds_service.policy.model import Status
from tests.mappings.mapping_builders import dosage, every
from tests.policy.test_dose_schedules import VIAL, _policy_with_dose_params, ctx, facts_for

Res = dict[str, Any]
EVERY_8_WEEKS = every(1, 8, "wk")
WEIGHT_BANDS: Res = {
    "interval_days": 56,
    "bands": [
        {"over_weight_kg": 40, "maintenance": {"mg": 150}},
        {"min_weight_kg": 15, "max_weight_kg": 40, "maintenance": {"mg_per_kg": 3, "max_mg": 120}},
    ],
}


def check(params: Res, mg: float, kg: float | None, birth: str = "1980-01-15") -> Any:
    facts = facts_for([dosage(mg, timing=EVERY_8_WEEKS)], birth=birth, kg=kg)
    return run_check("dose-limit", params, facts, ctx()), facts


@pytest.mark.parametrize(
    ("mg", "kg", "expected"),
    [
        (150, 70, Status.MET),
        (300, 70, Status.NOT_MET),
        (120, 40, Status.MET),  # 40 kg is not "over 40 kg": the 3 mg/kg band, 120 mg
        (150, 40, Status.NOT_MET),
        (75, 25, Status.MET),
        (90, 25, Status.NOT_MET),  # 3 mg/kg at 25 kg = 75 mg
        (40, 12, Status.NOT_MET),  # under 15 kg: no band
    ],
)
def test_the_band_is_chosen_by_body_weight(mg: float, kg: float, expected: Status) -> None:
    verdict, _ = check(WEIGHT_BANDS, mg, kg)
    assert verdict.status is expected, verdict.reason


def test_no_band_for_the_weight_says_so():
    verdict, _ = check(WEIGHT_BANDS, 40, 12)
    assert "no dose for a body weight of 12 kg" in verdict.reason


def test_no_recent_weight_is_unknown_and_asks_for_one():
    verdict, _ = check(WEIGHT_BANDS, 150, None)
    assert verdict.status is Status.UNKNOWN
    assert "body weight within 90 days" in verdict.reason


def test_an_age_band_before_the_weight_bands_needs_no_weight():
    params = {
        "interval_days": 56,
        "bands": [{"min_age": 18, "maintenance": {"mg": 150}}, *WEIGHT_BANDS["bands"]],
    }
    adult, _ = check(params, 150, None)
    assert adult.status is Status.MET
    child, _ = check(params, 150, None, birth="2018-01-01")
    assert child.status is Status.UNKNOWN


def test_age_and_weight_bounds_of_one_band_must_all_hold():
    params = {
        "interval_days": 56,
        "bands": [{"min_age": 4, "min_weight_kg": 15, "maintenance": {"mg": 150}}],
    }
    assert check(params, 150, 20, birth="2018-01-01")[0].status is Status.MET
    assert check(params, 150, 14, birth="2018-01-01")[0].status is Status.NOT_MET
    assert check(params, 150, 20, birth="2024-01-01")[0].status is Status.NOT_MET


def test_the_suggestion_sets_the_dose_of_the_weight_band():
    verdict, facts = check(WEIGHT_BANDS, 150, 30)
    assert verdict.status is Status.NOT_MET
    assert verdict.details["suggested_maintenance_mg"] == 90
    proposal = suggest_schedule(facts.order.resource, verdict.details, VIAL)
    assert proposal is not None
    assert proposal.label == "90 mg every 8 weeks"


def test_weight_band_bounds_are_checked_when_the_policy_loads():
    parse_policy(_policy_with_dose_params(WEIGHT_BANDS), "good.yaml")
    bad = {"bands": [{"min_weight_kg": "forty", "maintenance": {"mg": 150}}]}
    with pytest.raises(PolicyFileError, match="min_weight_kg must be a number of kg"):
        parse_policy(_policy_with_dose_params(bad), "bad.yaml")


def test_dose_increase_limit_uses_the_weight_bands_too():
    facts = facts_for([dosage(150, timing=EVERY_8_WEEKS)], kg=30)
    verdict = run_check("dose-increase-limit", WEIGHT_BANDS, facts, ctx())
    assert verdict.status is Status.NOT_MET
    assert "3 mg/kg (90 mg at 30 kg)" in verdict.reason
