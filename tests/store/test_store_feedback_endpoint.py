"""The feedback endpoint through a small Flask app that registers the blueprint."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.cards import render_response
from cds_service.feedback import feedback_blueprint
from cds_service.store import AuditStore, InvocationRecord
from tests.cards.builders import NOW, SETTINGS, uuid_counter
from tests.cards.cases import CASES

SERVICE = "anakinra-order-sign"


@pytest.fixture
def app(store: AuditStore) -> Flask:
    app = Flask(__name__)
    app.config["CDS_SERVICE_IDS"] = {SERVICE}
    app.extensions["audit_store"] = store
    app.register_blueprint(feedback_blueprint)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def card_uuid(store: AuditStore) -> str:
    hook, evaluations = CASES["documentation_needed"]()
    response = render_response(
        hook, evaluations, settings=SETTINGS, uuid_factory=uuid_counter(), now=NOW
    )
    store.record_invocation(
        InvocationRecord.from_response(
            hook_instance="hi-1",
            service_id=SERVICE,
            hook=hook,
            received_at=NOW,
            patient_ref="Patient/p1",
            response=response,
        )
    )
    return str(response["cards"][0]["uuid"])


def _overridden(card: str) -> dict[str, Any]:
    return {
        "feedback": [
            {
                "card": card,
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {
                        "system": SETTINGS.override_reason_system,
                        "code": "documentation-on-file",
                    }
                },
                "outcomeTimestamp": "2026-03-02T12:10:00Z",
            }
        ]
    }


def test_feedback_is_stored_once_per_delivery(
    client: FlaskClient, store: AuditStore, card_uuid: str
) -> None:
    for _ in range(2):
        response = client.post(f"/cds-services/{SERVICE}/feedback", json=_overridden(card_uuid))
        assert response.status_code == 200
        assert response.get_json() == {}
    (rate,) = [r for r in store.override_rates() if r.indicator == "warning"]
    assert (rate.shown, rate.overridden) == (1, 1)


def test_unknown_card_is_accepted_but_not_stored(
    client: FlaskClient, store: AuditStore, card_uuid: str
) -> None:
    response = client.post(
        f"/cds-services/{SERVICE}/feedback",
        json=_overridden("99999999-0000-4000-8000-000000000000"),
    )
    assert response.status_code == 200
    assert all(r.overridden == 0 for r in store.override_rates())


def test_invalid_feedback_names_the_problem(client: FlaskClient, card_uuid: str) -> None:
    body = _overridden(card_uuid)
    body["feedback"][0]["outcome"] = "ignored"
    response = client.post(f"/cds-services/{SERVICE}/feedback", json=body)
    assert response.status_code == 400
    problems = response.get_json()["problems"]
    assert any(p.startswith("feedback[0].outcome") for p in problems)


def test_missing_timestamp_and_non_json_are_400(client: FlaskClient, card_uuid: str) -> None:
    body = _overridden(card_uuid)
    del body["feedback"][0]["outcomeTimestamp"]
    assert client.post(f"/cds-services/{SERVICE}/feedback", json=body).status_code == 400
    response = client.post(f"/cds-services/{SERVICE}/feedback", data="not json")
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_unknown_service_is_404(client: FlaskClient, card_uuid: str) -> None:
    response = client.post("/cds-services/no-such-service/feedback", json=_overridden(card_uuid))
    assert response.status_code == 404
