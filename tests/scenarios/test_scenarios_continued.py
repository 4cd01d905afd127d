"""Second round of clinical scenarios: continued therapy (section II) in depth.

Each file in `continued/` is one CDS Hooks request (order-sign or order-select, prefetch with
FHIR R4 resources, order date 2026-11-20) plus `_expect`, written from the policy text and
policy/INTERPRETATION.md, not from the service's answers. It covers the pathway switch
(MedicationRequest / MedicationStatement / MedicationDispense history, on-hold, ended 59 / 60 /
61 days ago, drafts, cancelled and entered-in-error records), II.A.2 baselines and Appendix G /
H bands, II.A.2.b responses, II.A.4 dose increases (RA, weight-based, Appendix E syringes),
II.B, II.C, several indications without a reason and order-select:

    "_expect": {
      "outcome": "criteria-met" | "criteria-not-met" | "documentation-needed" | "off-label-review",
      "pathway": "initial" | "continued",
      "section": "II.A" ...,
      "criteria": {"II.A.2": "met", ...},    # statuses that must be exactly these
      "details": {"II.A.2": {"baseline": 30}}, # optional: values in a criterion's details
      "approvalMonths": 12,                  # optional
      "indication": "nomid",                 # optional: the indication reported
      "considered": [["II.A", "criteria-met"], ...],  # optional: every indication evaluated
      "cards": ["info"],                     # optional: indicators of the order's cards
      "mentions": ["CP.PMN.53"],             # optional: text the order's cards must contain
      "why": "policy clause / INTERPRETATION line"
    }

The app's clock is pinned to the order date. Where the service disagrees with the documents
the scenario keeps the documents' answer and is listed in `KNOWN_GAPS` (strict xfail: it
turns red as soon as the service is fixed, so the entry can be removed).
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

SCENARIO_DIR = Path(__file__).resolve().parent / "continued"
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.json"))
ORDER_NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
ORDER = "MedicationRequest/draft-kineret"
EVALUATION_KEY = "com.anakinra-cds.evaluation"
ASSOCIATED_KEY = "davinci-crd.associated-resource"
SERVICES = {"order-sign": "anakinra-order-sign", "order-select": "anakinra-order-select"}
OUTCOMES = {"criteria-met", "criteria-not-met", "documentation-needed", "off-label-review"}
STATUSES = {"met", "not-met", "unknown"}
INDICATORS = {"info", "warning", "critical"}

KNOWN_GAPS: dict[str, str] = {}


def _load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    body: dict[str, Any] = json.loads(path.read_text("utf-8"))
    expect: dict[str, Any] = body.pop("_expect")
    return body, expect


def _params() -> list[Any]:
    params = []
    for path in SCENARIO_FILES:
        marks = []
        if path.stem in KNOWN_GAPS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[path.stem]))
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


@pytest.fixture
def order_date_client(make_app: Callable[..., Flask]) -> Iterator[FlaskClient]:
    app = make_app(CLOCK=lambda: ORDER_NOW)
    with app.test_client() as test_client:
        yield test_client


def _cards_for(response: dict[str, Any]) -> list[dict[str, Any]]:
    cards: list[dict[str, Any]] = response.get("cards", [])
    return [
        card
        for card in cards
        if {"reference": ORDER} in card.get("extension", {}).get(ASSOCIATED_KEY, [])
    ]


def _criteria_differences(evaluation: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    found = {c["id"]: c for c in evaluation.get("criteria", [])}
    diffs = []
    for criterion, status in expect.get("criteria", {}).items():
        got = found.get(criterion)
        if got is None or got["status"] != status:
            actual = "absent" if got is None else f"{got['status']} ({got.get('reason')})"
            diffs.append(f"{criterion}: got {actual}, expected {status}")
    for criterion, wanted in expect.get("details", {}).items():
        details = found.get(criterion, {}).get("details", {})
        diffs.extend(
            f"{criterion}.{key}: got {details.get(key)!r}, expected {value!r}"
            for key, value in wanted.items()
            if details.get(key) != value
        )
    return diffs


def _differences(response: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    evaluations = [
        e for e in response.get("extension", {}).get(EVALUATION_KEY, []) if e.get("order") == ORDER
    ]
    if len(evaluations) != 1:
        return [f"expected one evaluation of {ORDER}, got {len(evaluations)}"]
    evaluation = evaluations[0]
    diffs = [
        f"{key}: got {evaluation.get(key)!r}, expected {expect[key]!r}"
        for key in ("outcome", "pathway", "section", "indication", "approvalMonths")
        if key in expect and evaluation.get(key) != expect[key]
    ]
    diffs += _criteria_differences(evaluation, expect)
    if "considered" in expect:
        got = sorted([c["section"], c["outcome"]] for c in evaluation.get("considered", []))
        if got != sorted(expect["considered"]):
            diffs.append(f"considered: got {got}, expected {sorted(expect['considered'])}")
    cards = _cards_for(response)
    if "cards" in expect:
        indicators = sorted(card["indicator"] for card in cards)
        if indicators != sorted(expect["cards"]):
            diffs.append(f"cards: got {indicators}, expected {sorted(expect['cards'])}")
    text = json.dumps(cards)
    diffs.extend(f"cards do not mention {m}" for m in expect.get("mentions", []) if m not in text)
    return diffs


@pytest.mark.parametrize("path", _params())
def test_continued_scenario_matches_policy(order_date_client: FlaskClient, path: Path) -> None:
    body, expect = _load(path)
    response = order_date_client.post(f"/cds-services/{SERVICES[body['hook']]}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    data = response.get_json()
    assert isinstance(data, dict)
    diffs = _differences(data, expect)
    assert not diffs, f"{path.stem} ({expect['why']}):\n" + "\n".join(diffs)


def test_continued_scenario_files_are_well_formed() -> None:
    """Every expectation uses known words, and every known gap names an existing file."""
    assert len(SCENARIO_FILES) >= 30
    for path in SCENARIO_FILES:
        body, expect = _load(path)
        assert body["hook"] in SERVICES, path.stem
        drafts = body["context"]["draftOrders"]["entry"]
        assert any(f"MedicationRequest/{d['resource']['id']}" == ORDER for d in drafts), path.stem
        if body["hook"] == "order-select":
            assert ORDER in body["context"]["selections"], path.stem
        assert expect["outcome"] in OUTCOMES, path.stem
        assert expect["pathway"] in {"initial", "continued"}, path.stem
        assert expect["section"], path.stem
        assert expect["why"], path.stem
        assert set(expect.get("criteria", {}).values()) <= STATUSES, path.stem
        assert set(expect.get("cards", [])) <= INDICATORS, path.stem
        for draft in drafts:
            assert draft["resource"].get("authoredOn", "2026-11-20") == "2026-11-20", path.stem
    assert set(KNOWN_GAPS) <= {p.stem for p in SCENARIO_FILES}
