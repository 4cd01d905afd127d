"""Clinical scenarios for NOMID / CAPS, DIRA, COVID-19, off-label use, combinations,
hypersensitivity and dose arithmetic, posted as an EHR would post them.

Each file in `other/` is one CDS Hooks request (order-sign or order-select, prefetch with
FHIR R4 resources, order date 2026-11-20) plus `_expect`, written from the policy text and
policy/INTERPRETATION.md, not from the code:

    "_expect": {
      "outcome": "criteria-met" | "criteria-not-met" | "documentation-needed" | "off-label-review",
      "section": "I.B" ...,              # the section the order is evaluated under
      "criteria": {"I.B.4": "met", ...}, # statuses that must be exactly these (others free)
      "cards": ["critical"],             # optional: indicators of the order's cards (sorted)
      "mentions": ["CP.PMN.53"],         # optional: text the order's cards must contain
      "order": "MedicationRequest/...",  # optional: the evaluated draft (default below)
      "why": "policy clause / INTERPRETATION line"
    }

`_expect` is removed before the request is sent. Where the service disagrees with the
documents the scenario keeps the documents' answer and is listed in `KNOWN_GAPS`
(strict xfail: it turns red as soon as the service is fixed, so the entry can be removed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

SCENARIO_DIR = Path(__file__).resolve().parent / "other"
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.json"))
DEFAULT_ORDER = "MedicationRequest/draft-anakinra-1"
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


def _cards_for(response: dict[str, Any], order: str) -> list[dict[str, Any]]:
    cards: list[dict[str, Any]] = response.get("cards", [])
    return [
        card
        for card in cards
        if {"reference": order} in card.get("extension", {}).get(ASSOCIATED_KEY, [])
    ]


def _differences(response: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    order = expect.get("order", DEFAULT_ORDER)
    evaluations = [
        e for e in response.get("extension", {}).get(EVALUATION_KEY, []) if e.get("order") == order
    ]
    if len(evaluations) != 1:
        return [f"expected one evaluation of {order}, got {len(evaluations)}"]
    evaluation = evaluations[0]
    found = {c["id"]: c for c in evaluation.get("criteria", [])}
    diffs = []
    if evaluation.get("outcome") != expect["outcome"]:
        diffs.append(f"outcome: got {evaluation.get('outcome')}, expected {expect['outcome']}")
    if evaluation.get("section") != expect["section"]:
        diffs.append(f"section: got {evaluation.get('section')}, expected {expect['section']}")
    for criterion, status in expect.get("criteria", {}).items():
        got = found.get(criterion)
        if got is None or got["status"] != status:
            actual = "absent" if got is None else f"{got['status']} ({got.get('reason')})"
            diffs.append(f"{criterion}: got {actual}, expected {status}")
    cards = _cards_for(response, order)
    if "cards" in expect:
        indicators = sorted(card["indicator"] for card in cards)
        if indicators != sorted(expect["cards"]):
            diffs.append(f"cards: got {indicators}, expected {sorted(expect['cards'])}")
    text = json.dumps(cards)
    diffs.extend(f"cards do not mention {m}" for m in expect.get("mentions", []) if m not in text)
    return diffs


@pytest.mark.parametrize("path", _params())
def test_scenario_matches_policy(client: FlaskClient, path: Path) -> None:
    body, expect = _load(path)
    response = client.post(f"/cds-services/{SERVICES[body['hook']]}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    data = response.get_json()
    assert isinstance(data, dict)
    diffs = _differences(data, expect)
    assert not diffs, f"{path.stem} ({expect['why']}):\n" + "\n".join(diffs)


def test_scenario_files_are_well_formed() -> None:
    """Every expectation uses known words, and every known gap names an existing file."""
    assert len(SCENARIO_FILES) >= 30
    for path in SCENARIO_FILES:
        body, expect = _load(path)
        assert body["hook"] in SERVICES, path.stem
        assert body["context"]["draftOrders"]["entry"], path.stem
        assert expect["outcome"] in OUTCOMES, path.stem
        assert expect["section"], path.stem
        assert expect["why"], path.stem
        assert set(expect.get("criteria", {}).values()) <= STATUSES, path.stem
        assert set(expect.get("cards", [])) <= INDICATORS, path.stem
        for draft in body["context"]["draftOrders"]["entry"]:
            assert draft["resource"].get("authoredOn", "2026-11-20") == "2026-11-20", path.stem
    assert set(KNOWN_GAPS) <= {p.stem for p in SCENARIO_FILES}
