"""Published CDS Hooks examples, and our own, against the service and the schemas."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from tests.conftest import HOOKS_DIR

SPEC = Path(__file__).resolve().parent / "fixtures" / "cds-hooks-examples"
SERVICES = ("prior-auth-order-sign", "prior-auth-order-select")


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        json.loads((HOOKS_DIR / "schemas" / f"{name}.schema.json").read_text())
    )


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _request_bodies() -> Iterator[tuple[str, Any]]:
    """Every request-like example: spec requests, hook-library contexts wrapped into an
    order-sign and an order-select request, and the 3.0 ballot order-sign."""
    for path in sorted(SPEC.glob("request-*.json")):
        yield path.name, _json(path)
    for path in sorted(SPEC.glob("hook-library-*.json")):
        context = _json(path)["context"]
        hook = "order-select" if "order-select" in path.name else "order-sign"
        yield (
            path.name,
            {
                "hook": hook,
                "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
                "fhirServer": "http://hooks.smarthealthit.org:9080",
                "context": context,
            },
        )
    for path in sorted(SPEC.glob("ballot-*.json")):
        yield path.name, _json(path)
    for path in sorted((HOOKS_DIR / "examples").glob("*.json")):
        yield f"hooks/examples/{path.name}", _json(path)


BODIES = list(_request_bodies())


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize(("name", "body"), BODIES, ids=[name for name, _ in BODIES])
def test_example_never_crashes_the_service(
    client: FlaskClient, service: str, name: str, body: Any
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as fhir:
        response = client.post(f"/cds-services/{service}", json=copy.deepcopy(body))
        # Only a loopback FHIR server may be read with the default settings.
        hosts = {urlsplit(call.request.url).hostname for call in fhir.calls}
        assert hosts <= {"127.0.0.1"}
    assert response.status_code < 500
    assert response.mimetype == "application/json"
    if response.status_code == 200:
        assert list(_validator("response").iter_errors(response.get_json())) == []


@pytest.mark.parametrize("path", sorted((HOOKS_DIR / "examples").glob("*.json")), ids=str)
def test_our_examples_are_valid_requests(path: Path) -> None:
    assert list(_validator("request").iter_errors(_json(path))) == []


def test_our_examples_are_answered(client: FlaskClient) -> None:
    examples = HOOKS_DIR / "examples"
    expected = {
        "order-sign-prefetch.json": 200,
        "order-select.json": 200,
        "order-select-no-drug.json": 200,
    }
    for name, status in expected.items():
        body = _json(examples / name)
        response = client.post(f"/cds-services/anakinra-{body['hook']}", json=body)
        assert response.status_code == status, name


def test_order_select_before_a_drug_is_chosen_has_no_cards(client: FlaskClient) -> None:
    body = _json(HOOKS_DIR / "examples" / "order-select-no-drug.json")
    # The sandbox sends a fhirServer we may not read and no prefetch at all.
    response = client.post("/cds-services/prior-auth-order-select", json=body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_order_sign_without_medication_says_the_order_could_not_be_checked(
    client: FlaskClient,
) -> None:
    """Issue 12: an order being signed that names no drug cannot be checked, and silence
    would read as "no prior authorization issue" (this test expected `{"cards": []}`
    before). No chart is read for it."""
    body = _json(HOOKS_DIR / "examples" / "order-sign-prefetch.json")
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    del order["medicationCodeableConcept"]
    del body["prefetch"]
    response = client.post("/cds-services/prior-auth-order-sign", json=body)
    assert response.status_code == 200
    answer = response.get_json()
    [card] = answer["cards"]
    assert card["indicator"] == "warning"
    assert "could not" in card["summary"].lower()
    assert "names no drug" in card["detail"]
    [evaluation] = answer["extension"]["com.anakinra-cds.evaluation"]
    assert evaluation["outcome"] == "not-evaluated"
    assert evaluation["order"] == "MedicationRequest/draft-anakinra-1"


SPEC_RESPONSE_BUGS = {
    "response-systemActions.json": "/systemActions/0/description",
    "response-autolaunchable.json": "/cards/0/indicator",
}


@pytest.mark.parametrize("path", sorted(SPEC.glob("response-*.json")), ids=str)
def test_response_schema_accepts_spec_responses(path: Path) -> None:
    errors = list(_validator("response").iter_errors(_json(path)))
    if path.name in SPEC_RESPONSE_BUGS:
        # The schema catches the spec example's known omission, and nothing else.
        assert len(errors) == 1
        error = errors[0]
        missing = "/" + "/".join(str(p) for p in error.absolute_path)
        assert error.validator == "required"
        assert SPEC_RESPONSE_BUGS[path.name].startswith(missing)
    else:
        assert errors == []


@pytest.mark.parametrize(
    "card",
    [
        {"summary": "x" * 141, "indicator": "info", "source": {"label": "Plan"}},
        {"summary": "ok", "indicator": "urgent", "source": {"label": "Plan"}},
        {"summary": "ok", "indicator": "info", "source": {}},
        {"summary": "", "indicator": "info", "source": {"label": "Plan"}},
        {"summary": "ok", "indicator": "info", "source": {"label": "Plan"}, "detail": None},
        {"summary": "ok", "indicator": "info", "source": {"label": "Plan"}, "links": []},
        {
            "summary": "ok",
            "indicator": "info",
            "source": {"label": "Plan"},
            "suggestions": [
                {
                    "label": "Set dose",
                    "actions": [
                        {"type": "update", "description": "d", "resource": {"resourceType": "X"}}
                    ],
                }
            ],
        },
        {
            "summary": "ok",
            "indicator": "info",
            "source": {"label": "Plan"},
            "selectionBehavior": "any",
            "suggestions": [{"label": "Set dose", "actions": [{"type": "update"}]}],
        },
    ],
)
def test_response_schema_rejects_bad_cards(card: dict[str, Any]) -> None:
    assert list(_validator("response").iter_errors({"cards": [card]})) != []


@pytest.mark.parametrize("path", sorted(SPEC.glob("feedback-*.json")), ids=str)
def test_feedback_schema_accepts_spec_feedback(path: Path) -> None:
    assert list(_validator("feedback").iter_errors(_json(path))) == []


def test_feedback_schema_rejects_accepted_without_suggestions() -> None:
    feedback = {
        "feedback": [
            {"card": "c", "outcome": "accepted", "outcomeTimestamp": "2021-12-11T10:05:31Z"}
        ]
    }
    assert list(_validator("feedback").iter_errors(feedback)) != []


def test_discovery_schema_accepts_spec_discovery() -> None:
    for name in ("discovery-response.json", "discovery-with-extension.json"):
        assert list(_validator("discovery").iter_errors(_json(SPEC / name))) == []
