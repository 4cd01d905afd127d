"""Rheumatoid arthritis scenarios (I.A initial, II.A continued) sent through the real service.

Each file under `ra/` is an order-sign request an EHR could send, with `_expect` written from
the policy text and INTERPRETATION.md (not from our answers). The test strips `_expect`, posts
the request to the Flask app with the clock pinned to the order date, and compares the
machine-readable evaluation of the Kineret draft order and the cards' indicator.
Where the service disagrees with the documents the scenario keeps the correct expectation
and is listed in KNOWN_GAPS (strict xfail: the test turns red once the service is fixed).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

SCENARIO_DIR = Path(__file__).resolve().parent / "ra"
ORDER_NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
ORDER_REF = "MedicationRequest/draft-kineret"
EVALUATION_KEY = "com.anakinra-cds.evaluation"
SEVERITY = {"info": 0, "warning": 1, "critical": 2}

# Scenario file name -> why the service is known to answer differently from the documents.
KNOWN_GAPS: dict[str, str] = {}


def _params() -> list[Any]:
    out: list[Any] = []
    for path in sorted(SCENARIO_DIR.glob("*.json")):
        marks = []
        if path.stem in KNOWN_GAPS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[path.stem]))
        out.append(pytest.param(path, id=path.stem, marks=marks))
    return out


@pytest.fixture
def scenario_client(make_app: Callable[..., Flask]) -> Iterator[FlaskClient]:
    app = make_app(CLOCK=lambda: ORDER_NOW)
    with app.test_client() as test_client:
        yield test_client


def _evaluation(response: dict[str, Any]) -> dict[str, Any]:
    evaluations = response["extension"][EVALUATION_KEY]
    found = [e for e in evaluations if e["order"] == ORDER_REF]
    assert len(found) == 1, f"one evaluation of {ORDER_REF} expected, got {evaluations}"
    evaluation: dict[str, Any] = found[0]
    return evaluation


def test_there_are_enough_scenarios() -> None:
    assert len(list(SCENARIO_DIR.glob("*.json"))) >= 30


def test_known_gaps_name_existing_scenarios() -> None:
    names = {p.stem for p in SCENARIO_DIR.glob("*.json")}
    assert set(KNOWN_GAPS) <= names


@pytest.mark.parametrize("path", _params())
def test_ra_scenario(path: Path, scenario_client: FlaskClient) -> None:
    body = json.loads(path.read_text("utf-8"))
    expect = body.pop("_expect")

    reply = scenario_client.post("/cds-services/anakinra-order-sign", json=body)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    response = reply.get_json()
    evaluation = _evaluation(response)

    statuses = {c["id"]: c["status"] for c in evaluation["criteria"]}
    reasons = {c["id"]: c.get("reason", "") for c in evaluation["criteria"]}
    wrong = {
        cid: f"expected {want}, got {statuses.get(cid)}: {reasons.get(cid, 'absent')}"
        for cid, want in expect["criteria"].items()
        if statuses.get(cid) != want
    }
    assert not wrong, f"{expect['why']}\n{json.dumps(wrong, indent=1)}"
    assert evaluation["pathway"] == expect["pathway"], expect["why"]
    assert evaluation["section"] == expect["section"], expect["why"]
    assert evaluation["outcome"] == expect["outcome"], f"{expect['why']}: {statuses}"

    details = {c["id"]: c.get("details", {}) for c in evaluation["criteria"]}
    for cid, wanted in expect.get("details", {}).items():
        for key, value in wanted.items():
            assert details[cid].get(key) == value, f"{cid}.{key}: {details[cid]}"

    indicators = [card["indicator"] for card in response["cards"]]
    assert indicators, "every Kineret order gets a card"
    assert max(indicators, key=SEVERITY.__getitem__) == expect["indicator"], indicators
