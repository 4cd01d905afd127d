"""One card to act on per order (cds_service/cards/merge.py), through the service: an order
over the dose limit that also fails a criterion gets one warning card, not two."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient

from cds_service.cards.merge import ALSO, one_card_per_order
from tests.conftest import ROOT

SCENARIO = ROOT / "tests" / "scenarios" / "rilonacept" / "caps_ia3_age_11.json"


def _card(order: str, indicator: str, summary: str, **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "indicator": indicator,
        "detail": f"{summary} detail",
        "extension": {"davinci-crd.associated-resource": [{"reference": order}]},
        **extra,
    }


def test_the_most_severe_card_leads_and_carries_the_others() -> None:
    dose = _card(
        "MedicationRequest/a",
        "warning",
        "Dose over the limit: change to 100 mg",
        suggestions=[{"label": "Change the dose", "actions": []}],
        overrideReasons=[{"code": "clinically-justified"}],
    )
    stop = _card(
        "MedicationRequest/a",
        "critical",
        "Combination not covered: remove one",
        suggestions=[{"label": "Remove this order", "actions": []}],
        overrideReasons=[{"code": "data-out-of-date"}],
    )
    reminder = _card("MedicationRequest/a", "info", "Add a TB screen")
    other = _card("MedicationRequest/b", "warning", "PA needed: add a weight")
    response = one_card_per_order({"cards": [dose, reminder, stop, other]})
    cards = response["cards"]
    assert [c["summary"] for c in cards] == [
        "Combination not covered: remove one",
        "Add a TB screen",
        "PA needed: add a weight",
    ]
    merged = cards[0]
    assert merged["indicator"] == "critical"
    assert merged["detail"].endswith(f"{ALSO}\n\n- Dose over the limit: change to 100 mg")
    assert [s["label"] for s in merged["suggestions"]] == ["Remove this order", "Change the dose"]
    assert merged["selectionBehavior"] == "at-most-one"
    assert {r["code"] for r in merged["overrideReasons"]} == {
        "data-out-of-date",
        "clinically-justified",
    }


def test_an_order_with_two_problems_gets_one_card_from_the_service(client: FlaskClient) -> None:
    body = json.loads(SCENARIO.read_text("utf-8"))
    body.pop("_expect")
    answer = client.post("/cds-services/anakinra-order-sign", json=body).get_json()
    acting = [c for c in answer["cards"] if c["indicator"] in ("warning", "critical")]
    assert len(acting) == 1
    assert ALSO in acting[0]["detail"]
