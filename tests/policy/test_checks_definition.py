"""The policy loader validates the sub-checks of a combinator and lab thresholds like any
criterion's parameters, and reads their statuses for unreachable criteria."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.policy.definition import PolicyFileError, parse_policy
from cds_service.policy.model import Status
from tests.policy.test_policy_definition import _criterion, _raw

CRP = {"kinds": ["crp"], "direction": "above", "thresholds": {"crp": {"value": 10, "unit": "mg/L"}}}


def _with(check: str, params: dict[str, Any]) -> dict[str, Any]:
    data = _raw()
    criterion = _criterion(data, "I.A.1")
    criterion.pop("by_indication", None)
    criterion["check"] = check
    criterion["params"] = params
    return data


def test_nested_checks_load_and_give_their_statuses():
    params = {
        "checks": [
            {"check": "lab-threshold", "params": CRP},
            {"check": "not-covered", "params": {"reason": "x"}},
        ]
    }
    policy = parse_policy(_with("all-of", params))
    criterion = next(c for c in policy.all_criteria() if c.id == "I.A.1")
    assert criterion.possible_statuses() == {Status.NOT_MET, Status.UNKNOWN}


@pytest.mark.parametrize(
    ("checks", "where", "what"),
    [
        ([{"check": "no-such-check"}], "params.checks[0].check", "unknown check"),
        (
            [{"check": "lab-threshold", "params": {**CRP, "colour": 1}}],
            "params.checks[0].params",
            "unknown parameter",
        ),
        (
            [{"check": "lab-threshold", "params": {"kinds": ["crp"]}}],
            "params.checks[0].params",
            "missing parameter 'direction'",
        ),
        (
            [{"check": "lab-threshold", "params": {**CRP, "kinds": ["no-such-set"]}}],
            "params.checks[0].params.kinds",
            "unknown value set",
        ),
        (
            [
                {
                    "check": "any-of",
                    "params": {
                        "checks": [
                            {"check": "minimum-weight", "params": {"kg": "ten", "within_days": 90}}
                        ]
                    },
                }
            ],
            "params.checks[0].params.checks[0].params.kg",
            "expected a number",
        ),
        ([{"params": {}}], "params.checks[0]", "expected {check"),
        ([], "params.checks", "non-empty list"),
    ],
)
def test_bad_nested_checks_name_the_place(checks, where, what):
    with pytest.raises(PolicyFileError) as error:
        parse_policy(_with("any-of", {"checks": checks}))
    assert where in str(error.value)
    assert what in str(error.value)


@pytest.mark.parametrize(
    ("thresholds", "what"),
    [
        ({"crp": {"value": -1, "unit": "mg/L"}}, "expected {value"),
        ({"crp": {"value": 10}}, "expected {value"),
        ({"nope": {"value": 10, "unit": "mg/L"}}, "unknown value set"),
    ],
)
def test_bad_thresholds(thresholds, what):
    with pytest.raises(PolicyFileError, match=r"params\.thresholds") as error:
        parse_policy(_with("lab-threshold", {**CRP, "thresholds": thresholds}))
    assert what in str(error.value)
