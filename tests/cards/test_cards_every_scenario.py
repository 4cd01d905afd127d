"""Every scenario of tests/scenarios (about 400 charts, both packs, both hooks) posted to the
service, and every card it answers with checked against the card rules
(`tests/cards/card_rules.py`, docs/cards.md): summary length and words, no clause ids, record
ids or machine words, a short detail without the criteria table, the indicator rule, links
that work, one card to act on per order. The whole response is checked per scenario, so a failure
names the chart and every rule it breaks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service import create_app
from tests.cards.card_rules import problems
from tests.conftest import PINNED_NOW, base_config
from tests.scenarios.harness import ORDER_NOW, SCENARIOS_DIR, SERVICES

SCENARIOS = sorted(SCENARIOS_DIR.glob("*/*.json"))
ORDER_DATE_FOLDERS = frozenset({"ra", "continued"})
"""Folders whose scenarios are posted with the order date as the clock (as their suites do)."""


@pytest.fixture(scope="module")
def clients() -> dict[str, FlaskClient]:
    apps: dict[str, Flask] = {
        "order-date": create_app(base_config(CLOCK=lambda: ORDER_NOW)),
        "pinned": create_app(base_config(CLOCK=lambda: PINNED_NOW)),
    }
    return {name: app.test_client() for name, app in apps.items()}


def _post(clients: dict[str, FlaskClient], path: Path) -> dict[str, Any]:
    body = json.loads(path.read_text("utf-8"))
    body.pop("_expect", None)
    client = clients["order-date" if path.parent.name in ORDER_DATE_FOLDERS else "pinned"]
    answer = client.post(f"/cds-services/{SERVICES[body['hook']]}", json=body)
    # A few scenarios are requests the service must refuse (400): no cards to check.
    assert answer.status_code in (200, 400), answer.get_data(as_text=True)[:300]
    data: dict[str, Any] = answer.get_json()
    return data


def test_there_are_scenarios_of_every_folder() -> None:
    assert len(SCENARIOS) >= 300
    assert {p.parent.name for p in SCENARIOS} >= {"ra", "other", "ehr", "continued", "rilonacept"}


@pytest.mark.parametrize("path", SCENARIOS, ids=[f"{p.parent.name}/{p.stem}" for p in SCENARIOS])
def test_every_card_keeps_the_card_rules(clients: dict[str, FlaskClient], path: Path) -> None:
    response = _post(clients, path)
    assert problems(response) == []
