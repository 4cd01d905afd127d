"""Data-driven policy cases: facts in, expected status per criterion and outcome out.

Every pack has its cases, run against that pack's own policy (the one the registry
loaded): a pack's `cases/` folder (bases in `cases/bases/`), or for NH.PHAR.244
`tests/policy/cases` (bases in `tests/policy/bases`). Each file is one case.

`expect` may state: pathway, section, indication, outcome, approval_months, criteria
(id -> status), details (id -> a subset of the criterion's details), conflicts
(id -> [drug, ...]), reason_contains (id -> text), considered ([[section, outcome], ...]),
documentation_contains (text), policy_references.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from cds_service.policy.checks import CHECKS
from cds_service.policy.engine import evaluate
from cds_service.policy.model import Decision, Status
from cds_service.policy.packs import Pack, default_registry
from tests.policy.case_builder import BASES, CASES, build_facts, case_facts_spec, load_yaml

_TESTS_CASES = {"NH.PHAR.244": (CASES, BASES)}
"""Packs whose cases live under tests/ (the first policy's, written before packs)."""

MIN_CASES = 40
"""Fewest cases a pack may have (a met, a not-met and an unknown case per criterion and
an outcome case per section come to more than this for either policy)."""


def _case_folders(pack: Pack) -> tuple[Path, Path]:
    """(cases folder, bases folder) of a pack."""
    if pack.id in _TESTS_CASES:
        return _TESTS_CASES[pack.id]
    folder = pack.directory / "cases"
    return folder, folder / "bases"


PACKS = dict(sorted(default_registry().packs.items()))
CASE_FILES = [
    (pack_id, path)
    for pack_id, pack in PACKS.items()
    for path in sorted(_case_folders(pack)[0].glob("*.yaml"))
]
CASE_IDS = [f"{pack_id}/{path.stem}" for pack_id, path in CASE_FILES]


def _run(pack_id: str, path: Path) -> tuple[dict[str, Any], Decision]:
    pack = PACKS[pack_id]
    case = load_yaml(path)
    facts, today = build_facts(case_facts_spec(case, _case_folders(pack)[1]), unit=pack.drug.unit)
    return case, evaluate(pack.policy, facts, today)


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


@pytest.mark.parametrize(("pack_id", "path"), CASE_FILES, ids=CASE_IDS)
def test_case(pack_id: str, path: Path) -> None:
    case, decision = _run(pack_id, path)
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


@pytest.mark.parametrize(("pack_id", "path"), CASE_FILES, ids=CASE_IDS)
def test_case_invariants(pack_id: str, path: Path) -> None:
    """Whatever the case: every criterion of the section (and the common ones) is
    decided, each with a reason; every unknown says what to submit."""
    _, decision = _run(pack_id, path)
    policy = PACKS[pack_id].policy
    assert decision.policy_id == policy.id
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


@pytest.mark.parametrize("pack_id", list(PACKS))
def test_every_criterion_has_a_case_for_each_status_it_can_take(pack_id: str) -> None:
    """Fails when a criterion of a pack's policy file (per check variant) lacks a case of
    that pack for a status its check can produce with the file's parameters."""
    covered: dict[tuple[str, str], set[Status]] = defaultdict(set)
    for case_pack, path in CASE_FILES:
        if case_pack != pack_id:
            continue
        case, decision = _run(pack_id, path)
        for criterion_id, status in (case["expect"].get("criteria") or {}).items():
            result = decision.criterion(criterion_id)
            if result is not None:
                covered[(criterion_id, result.check)].add(Status(status))
    missing = []
    for criterion in PACKS[pack_id].policy.all_criteria():
        for variant in criterion.variants():
            wanted = CHECKS[variant.check].statuses_for(variant.params)
            lacking = wanted - covered[(criterion.id, variant.check)]
            if lacking:
                missing.append(f"{criterion.id} ({variant.check}): {', '.join(sorted(lacking))}")
    assert not missing, "criteria without a case for: " + "; ".join(missing)


@pytest.mark.parametrize("pack_id", list(PACKS))
def test_every_pack_has_cases(pack_id: str) -> None:
    assert sum(1 for p, _ in CASE_FILES if p == pack_id) >= MIN_CASES
