"""The CRD requirements table, the conformance cases and docs/crd-conformance.md agree."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.crd.conformance import (
    ALIASES,
    CHECKS,
    DATA_PATHS,
    REPO_ROOT,
    Reply,
    coverage_information_problems,
    load_cases,
    load_requirements,
    request_body,
    select,
)
from tests.crd.table import DOC, render

STATUS = re.compile(
    r"^(met|met with \S+: .+|not-met: .+|deferred: issue \d+ .+|"
    r"pending-lane: (crdcore|crdhooks|crdcards))$",
    re.S,
)
"""`deferred` names the issue the work moved to and why (a reason is required)."""
VERBS = {"SHALL", "SHALL NOT", "SHOULD", "SHOULD NOT"}


def test_every_row_is_complete_and_ids_are_unique() -> None:
    _, rows = load_requirements()
    ids = [r.id for r in rows]
    assert len(ids) == len(set(ids))
    for row in rows:
        assert set(row.verb.split(" + ")) <= VERBS, row.id
        assert row.statement, row.id
        assert row.page, row.id
        if row.applicable:
            assert row.status is not None, row.id
            assert STATUS.match(row.status), row.id
        else:
            assert row.applies.startswith("not-applicable: "), row.id
            assert row.status is None, f"{row.id}: not applicable rows carry no status"


def test_every_applicable_row_has_a_case_and_met_rows_one_that_runs() -> None:
    _, rows = load_requirements()
    cases = load_cases(include_pending=True)
    running = {r for c in cases if not c.pending for r in c.covers}
    covered = {r for c in cases for r in c.covers}
    for row in rows:
        if row.applicable:
            assert row.id in covered, f"{row.id} has no case"
        if row.met:
            assert row.id in running, f"{row.id} is met but only pending cases cover it"


def test_rows_list_exactly_the_cases_that_name_them() -> None:
    _, rows = load_requirements()
    cases = load_cases(include_pending=True)
    known = {r.id for r in rows}
    for case in cases:
        unknown = set(case.covers) - known
        assert not unknown, f"{case.id} names unknown requirements {unknown}"
    for row in rows:
        naming = [c.id for c in cases if row.id in c.covers]
        assert sorted(row.cases) == sorted(naming), row.id


def test_cases_are_well_formed() -> None:
    cases = load_cases(include_pending=True)
    assert len({c.id for c in cases}) == len(cases)
    for case in cases:
        assert case.file.stem == case.id
        assert set(case.data_paths) <= set(DATA_PATHS), case.id
        assert case.expect, case.id
        request_body(case.request)  # files exist and edits apply
        for assertion in case.expect:
            if "check" in assertion:
                assert assertion["check"] in CHECKS, case.id
            if "path" in assertion:
                first = assertion["path"][0]
                assert not str(first).startswith("@") or first in ALIASES, case.id


def test_docs_table_is_generated_from_the_requirements() -> None:
    assert DOC.read_text("utf-8") == render(), "run: python -m tests.crd.table"


def test_docs_table_has_a_row_per_requirement() -> None:
    _, rows = load_requirements()
    text = (REPO_ROOT / "docs" / "crd-conformance.md").read_text("utf-8")
    for row in rows:
        assert f"[{row.id}](" in text


# --- the checking language itself, on answers written here ---------------------------

CI_URL = ALIASES["@coverage-information"][-1]["url"]


def _ci(*parts: tuple[str, str]) -> dict[str, Any]:
    base = [
        ("coverage", ""),
        ("date", "2026-01-02"),
        ("coverage-assertion-id", "a1"),
    ]
    ext: list[dict[str, Any]] = [{"url": u, "valueString": v} for u, v in base]
    ext += [{"url": u, "valueCode": v} for u, v in parts]
    return {"url": CI_URL, "extension": ext}


@pytest.mark.parametrize(
    ("parts", "problem"),
    [
        ((("covered", "not-covered"), ("pa-needed", "auth-needed")), "crd-ci-q2"),
        ((("covered", "conditional"),), "crd-ci-q3"),
        (
            (("covered", "covered"), ("pa-needed", "no-auth"), ("doc-purpose", "withpa")),
            "crd-ci-q4",
        ),
        ((("covered", "covered"), ("pa-needed", "satisfied")), "crd-ci-q5"),
        ((("covered", "covered"), ("doc-purpose", "withclaim")), "crd-ci-q8"),
        ((("covered", "indeterminate"),), "crd-ci-q9"),
        ((("covered", "maybe"),), "not a code"),
        ((), "covered must occur exactly once"),
    ],
)
def test_coverage_information_check_finds_each_broken_rule(
    parts: tuple[tuple[str, str], ...], problem: str
) -> None:
    found = coverage_information_problems(_ci(*parts))
    assert any(problem in p for p in found), found


def test_coverage_information_check_accepts_a_valid_extension() -> None:
    assert (
        coverage_information_problems(_ci(("covered", "covered"), ("pa-needed", "no-auth"))) == []
    )


def test_paths_select_filter_and_alias() -> None:
    answer = {
        "systemActions": [
            {"resource": {"extension": [{"url": "other"}, _ci(("covered", "covered"))]}}
        ]
    }
    codes = select(answer, ["@coverage-information", "extension", {"url": "covered"}, "valueCode"])
    assert codes == ["covered"]
    assert select(answer, ["systemActions", 3, "resource"]) == []


def test_compact_json_check_tells_indented_from_compact() -> None:
    check = CHECKS["compact-json"]
    body = {"cards": [{"summary": "a: b"}]}
    compact = Reply(200, body, b'{"cards":[{"summary":"a: b"}]}\n')
    indented = Reply(200, body, b'{\n  "cards": [{"summary": "a: b"}]}')
    assert check(compact, None) == []  # type: ignore[arg-type]
    assert check(indented, None) != []  # type: ignore[arg-type]
