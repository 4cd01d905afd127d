"""Data-driven policy cases: facts in, expected status per criterion and outcome out.

Each file under `cases/` is one case. `expect` may state: pathway, section,
indication, outcome, approval_months, criteria (id -> status), details
(id -> a subset of the criterion's details), conflicts (id -> [drug, ...]),
reason_contains (id -> text), considered ([[section, outcome], ...]),
documentation_contains (text), policy_references.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from cds_service.policy.engine import evaluate, load_policy
from cds_service.policy.model import Decision, Status
from tests.policy.case_builder import CASES, build_facts, case_facts_spec, load_yaml

CASE_FILES = sorted(CASES.glob("*.yaml"))


def _run(path: Path) -> tuple[dict[str, Any], Decision]:
    case = load_yaml(path)
    facts, today = build_facts(case_facts_spec(case))
    return case, evaluate(load_policy(), facts, today)


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list | tuple)
            and len(expected) == len(actual)
            and all(_subset(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, float | int) and isinstance(actual, float | int):
        return abs(expected - actual) < 1e-6
    return bool(expected == actual)


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_case(path: Path) -> None:
    case, decision = _run(path)
    expect = case["expect"]
    for key in ("pathway", "section", "indication", "outcome"):
        if key in expect:
            assert str(getattr(decision, key)) == expect[key], key
    if "approval_months" in expect:
        assert decision.approval_months == expect["approval_months"]
    if "policy_references" in expect:
        assert list(decision.policy_references) == expect["policy_references"]
    if "considered" in expect:
        assert [[s, str(o)] for s, _, o in decision.considered] == expect["considered"]
    for criterion_id, status in (expect.get("criteria") or {}).items():
        result = decision.criterion(criterion_id)
        assert result is not None, f"{criterion_id} not evaluated"
        assert result.status == Status(status), f"{criterion_id}: {result.reason}"
    for criterion_id, details in (expect.get("details") or {}).items():
        result = decision.criterion(criterion_id)
        assert result is not None
        assert _subset(details, result.details), f"{criterion_id}: {dict(result.details)}"
    for criterion_id, drugs in (expect.get("conflicts") or {}).items():
        result = decision.criterion(criterion_id)
        assert result is not None
        assert [c["drug"] for c in result.details["conflicts"]] == drugs
    for criterion_id, text in (expect.get("reason_contains") or {}).items():
        result = decision.criterion(criterion_id)
        assert result is not None
        assert text.lower() in result.reason.lower(), result.reason
    if "documentation_contains" in expect:
        assert any(
            expect["documentation_contains"].lower() in d.lower() for d in decision.documentation
        ), decision.documentation


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_case_invariants(path: Path) -> None:
    """Whatever the case: every criterion of the section (and the common ones) is
    decided, each with a reason; every unknown says what to submit."""
    _, decision = _run(path)
    policy = load_policy()
    section = policy.section(decision.section)
    expected_ids = [c.id for c in section.criteria] + [
        c.id for c in policy.common_criteria if c.applies_to(section.id)
    ]
    assert [r.id for r in decision.criteria] == expected_ids
    for result in decision.criteria:
        assert result.reason
        if result.status is Status.UNKNOWN:
            assert result.documentation
            assert result.documentation in decision.documentation
        else:
            assert result.documentation is None
    if decision.outcome.value == "criteria-met":
        assert all(r.status is Status.MET for r in decision.criteria)


def test_every_criterion_has_a_case_for_each_status_it_can_take() -> None:
    """Fails when a criterion of the policy file (per check variant) lacks a case for a
    status its check can produce with the file's parameters."""
    covered: dict[tuple[str, str], set[Status]] = defaultdict(set)
    for path in CASE_FILES:
        case, decision = _run(path)
        for criterion_id, status in (case["expect"].get("criteria") or {}).items():
            result = decision.criterion(criterion_id)
            if result is not None:
                covered[(criterion_id, result.check)].add(Status(status))
    missing = []
    for criterion in load_policy().all_criteria():
        for variant in criterion.variants():
            from cds_service.policy.checks import CHECKS

            wanted = CHECKS[variant.check].statuses_for(variant.params)
            lacking = wanted - covered[(criterion.id, variant.check)]
            if lacking:
                missing.append(f"{criterion.id} ({variant.check}): {', '.join(sorted(lacking))}")
    assert not missing, "criteria without a case for: " + "; ".join(missing)


def test_there_are_cases() -> None:
    assert len(CASE_FILES) >= 40
