"""Every public sample chart (and every scenario variant built from one), with a draft Kineret
order added, through both ways an EHR calls the service:

- prefetch: every prefetch key of the order-sign service answered from the chart the way a
  FHIR server answers the template, posted to the app (no `fhirServer`);
- FHIR server: the chart loaded into the FHIR sandbox (one server for the module), the same
  request with no prefetch and `fhirServer` set, so the service reads the server itself.

Each answer must be the decision `expectations.py` / `variants.py` record for the chart,
criterion by criterion, with at least one card for the order; both paths must agree; and no
criterion may be met, and no order approved, where the chart does not support it (checked on
its own so that the worst kind of wrong answer stands out in a run).

The charts are read from outside the repository (see `charts.samples_dir`); when they cannot
be found every test here fails saying where they were looked for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.ehr import prefetch_as_ehr
from sandbox.fhir_sandbox import SandboxServer, install, start
from tests.realworld import charts
from tests.realworld.cases import ALL_CASES, prepare
from tests.realworld.charts import FOLDERS, load_charts, samples_dir
from tests.realworld.ehr import (
    ORDER_REF,
    as_transaction,
    draft_order,
    hook_context,
    prefetch_from_chart,
    sign_templates,
    user_ids,
)
from tests.realworld.expectations import (
    CHART_CASES,
    CLASSES,
    NOT_EVALUATED,
    OUTCOMES,
    STATUSES,
    Case,
)
from tests.realworld.service import build_request, post
from tests.scenarios.harness import cards_for, evaluations_of

Json = dict[str, Any]
NAMES = [case.name for case in ALL_CASES]
LOAD_TIMEOUT_S = 120


class Answers:
    """Each case's answer in each path, computed once for the module."""

    def __init__(self, fhir_server: str) -> None:
        self.fhir_server = fhir_server
        self._cache: dict[tuple[str, str], tuple[int, Json]] = {}

    def get(self, name: str, path: str) -> tuple[int, Json]:
        if (name, path) not in self._cache:
            prepared = prepare(name)
            body = build_request(prepared, path, self.fhir_server)
            self._cache[(name, path)] = post(prepared, body)
        return self._cache[(name, path)]


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[str]:
    """One FHIR sandbox holding every chart and every variant."""
    samples_dir()  # fails first, with the clear message, when the samples are missing
    install()
    server: SandboxServer = start()
    try:
        with requests.Session() as session:
            for case in ALL_CASES:
                chart = prepare(case.name).chart
                resp = session.post(
                    server.base_url,
                    data=json.dumps(as_transaction(chart.resources)),
                    headers={"Content-Type": "application/fhir+json"},
                    timeout=LOAD_TIMEOUT_S,
                )
                assert resp.status_code == 200, f"{case.name}: the sandbox refused the chart"
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def answers(fhir_server: str) -> Answers:
    return Answers(fhir_server)


# --- reading an answer ---------------------------------------------------------------------------


def decision(response: Json) -> Json:
    """Pathway, section, outcome and criterion statuses of the draft order's evaluation."""
    found = evaluations_of(response, ORDER_REF)
    assert len(found) == 1, f"expected one evaluation of the Kineret order, got {found}"
    evaluation = found[0]
    return {
        "pathway": evaluation.get("pathway"),
        "section": evaluation.get("section"),
        "outcome": evaluation.get("outcome"),
        "criteria": {c["id"]: c["status"] for c in evaluation.get("criteria", [])},
    }


def differences(case: Case, response: Json) -> list[str]:
    """Everything the answer gets wrong against the case's expectation."""
    got = decision(response)
    if case.outcome == NOT_EVALUATED or got["outcome"] == NOT_EVALUATED:
        diffs = (
            []
            if got["outcome"] == case.outcome
            else [f"outcome: got {got['outcome']!r}, expected {case.outcome!r}"]
        )
        if not cards_for(response, ORDER_REF):
            diffs.append("no card for the Kineret order")
        return diffs
    diffs = [
        f"{key}: got {got[key]!r}, expected {wanted!r}"
        for key, wanted in (
            ("pathway", case.pathway),
            ("section", case.section),
            ("outcome", case.outcome),
        )
        if got[key] != wanted
    ]
    reasons = {
        c["id"]: c.get("reason", "")
        for c in evaluations_of(response, ORDER_REF)[0].get("criteria", [])
    }
    for cid, expected in case.criteria.items():
        status = got["criteria"].get(cid, "absent")
        if status != expected.status:
            klass = f" [{expected.klass}]" if expected.klass else ""
            diffs.append(
                f"{cid}: got {status} ({reasons.get(cid, '')}), expected {expected.status}"
                f"{klass}: {expected.why}"
            )
    extra = sorted(set(got["criteria"]) - set(case.criteria))
    if extra and got["section"] == case.section:
        diffs.append(f"criteria not expected in {case.section}: {extra}")
    if not cards_for(response, ORDER_REF):
        diffs.append("no card for the Kineret order")
    return diffs


def unsupported_approvals(case: Case, response: Json) -> list[str]:
    """Criteria met, or an approval, that the chart does not support."""
    got = decision(response)
    wrong = [
        f"{cid} met, expected {case.criteria[cid].status}: {case.criteria[cid].why}"
        for cid, status in got["criteria"].items()
        if status == "met" and cid in case.criteria and case.criteria[cid].status != "met"
    ]
    if got["outcome"] == "criteria-met" and case.outcome != "criteria-met":
        wrong.append(f"criteria-met, expected {case.outcome}: {case.why}")
    return wrong


def answered(answers: Answers, name: str, path: str) -> Json:
    status, body = answers.get(name, path)
    assert status == 200, f"{name} ({path}): HTTP {status} {json.dumps(body)[:300]}"
    assert body.get("cards"), f"{name} ({path}): an empty card list for a Kineret order"
    return body


# --- the samples are there and every one has an expectation --------------------------------------


def test_the_sample_charts_are_found() -> None:
    root = samples_dir()
    assert all((root / folder).is_dir() for folder in FOLDERS)


def test_missing_samples_fail_with_where_they_were_looked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(charts.ENV_VAR, str(tmp_path / "nowhere"))
    monkeypatch.setattr(charts, "FALLBACK", tmp_path / "not-here-either")
    monkeypatch.setattr(charts, "REPO_ROOT", tmp_path / "repo")
    with pytest.raises(charts.SamplesMissingError, match="CDS_FHIR_SAMPLES") as raised:
        charts.samples_dir()
    assert str(tmp_path / "nowhere") in str(raised.value)


def test_the_environment_variable_names_the_samples_first(monkeypatch: pytest.MonkeyPatch) -> None:
    real = samples_dir()
    monkeypatch.setenv(charts.ENV_VAR, str(real))
    assert charts.candidate_dirs()[0] == real
    assert samples_dir() == real


def test_every_sample_chart_has_an_expectation() -> None:
    charts = {chart.key for chart in load_charts()}
    expected = {case.chart for case in CHART_CASES}
    assert charts == expected, (
        f"charts without an expectation: {sorted(charts - expected)}; "
        f"expectations without a chart: {sorted(expected - charts)}"
    )
    assert len(charts) >= len(FOLDERS)


def test_expectations_use_known_words_and_cover_every_class() -> None:
    for case in ALL_CASES:
        assert case.outcome in OUTCOMES, case.name
        assert case.why, case.name
        assert case.holds, case.name
        assert {e.status for e in case.criteria.values()} <= STATUSES, case.name
        assert all(e.why for e in case.criteria.values()), case.name
        if case.outcome == "criteria-met":
            assert {e.status for e in case.criteria.values()} == {"met"}, case.name
    covered = frozenset().union(*(case.classes for case in ALL_CASES))
    assert covered >= CLASSES, f"classes without a case: {sorted(CLASSES - covered)}"


# --- both paths --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["prefetch", "fhir-server"])
@pytest.mark.parametrize("name", NAMES)
def test_the_pharmacists_decision(answers: Answers, name: str, path: str) -> None:
    case = prepare(name).case
    diffs = differences(case, answered(answers, name, path))
    assert not diffs, f"{name} ({path}; {case.why}):\n  " + "\n  ".join(diffs)


@pytest.mark.parametrize("path", ["prefetch", "fhir-server"])
@pytest.mark.parametrize("name", NAMES)
def test_no_criterion_met_that_the_chart_does_not_support(
    answers: Answers, name: str, path: str
) -> None:
    case = prepare(name).case
    wrong = unsupported_approvals(case, answered(answers, name, path))
    assert not wrong, f"{name} ({path}):\n  " + "\n  ".join(wrong)


@pytest.mark.parametrize("name", NAMES)
def test_both_paths_reach_the_same_decision(answers: Answers, name: str) -> None:
    with_prefetch = answered(answers, name, "prefetch")
    from_server = answered(answers, name, "fhir-server")
    assert decision(from_server) == decision(with_prefetch)
    cards = [(c["indicator"], c["summary"]) for c in with_prefetch["cards"]]
    assert [(c["indicator"], c["summary"]) for c in from_server["cards"]] == cards


def _found(prefetch: Json, known_ids: set[str]) -> dict[str, set[tuple[str, str]] | None]:
    """Per prefetch key, the (type, id) of what it carries; an id the chart does not have
    (one the server gave a resource sent without id) reads as "?"."""
    found: dict[str, set[tuple[str, str]] | None] = {}
    for key, value in prefetch.items():
        if value is None:
            found[key] = None
            continue
        entries = value.get("entry", []) if value.get("resourceType") == "Bundle" else []
        resources = [e["resource"] for e in entries] if entries else [value]
        found[key] = {
            (r["resourceType"], r["id"] if r.get("id") in known_ids else "?") for r in resources
        }
    return found


@pytest.mark.parametrize("name", NAMES)
def test_the_prefetch_answers_what_the_fhir_server_holds(fhir_server: str, name: str) -> None:
    """The in-memory answer to each template is the FHIR sandbox's answer for the same chart:
    the two paths start from the same records."""
    prepared = prepare(name)
    chart, spec = prepared.chart, prepared.spec
    context = hook_context(chart, spec, draft_order(chart, spec))
    known = {str(r["id"]) for r in chart.resources if r.get("id")}
    from_chart = prefetch_from_chart(chart, context, spec)
    from_server = prefetch_as_ehr(fhir_server, sign_templates(), context, user_ids(spec))
    assert _found(from_chart, known) == _found(from_server, known)
