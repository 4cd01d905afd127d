"""Every error is JSON with a clear message; nothing leaks a stack trace."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service import create_app, pipeline
from cds_service.auth import AuthError, Principal
from cds_service.config import SettingsError
from tests.conftest import base_config, load_example

SIGN = "/cds-services/prior-auth-order-sign"
SELECT = "/cds-services/prior-auth-order-select"


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert set(body) <= {"error", "message", "details", "operationOutcome"}
    if status in (400, 422):  # Da Vinci CRD: a refused request comes with an OperationOutcome
        assert body["operationOutcome"]["resourceType"] == "OperationOutcome"
    assert body["error"]
    assert body["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def _pointers(body: dict[str, Any]) -> set[str]:
    return {item["pointer"] for item in body.get("details", [])}


def test_malformed_json_is_400(client: FlaskClient) -> None:
    body = _error(
        client.post(SIGN, data='{"hook": "order-sign",', content_type="application/json"), 400
    )
    assert body["message"] == "the request body is not valid JSON"
    assert "line 1" in body["details"][0]["message"]


@pytest.mark.parametrize("data", ["", "   ", "NaN", '{"a": Infinity}', b"\xff\xfe"])
def test_empty_or_non_json_body_is_400(client: FlaskClient, data: Any) -> None:
    _error(client.post(SIGN, data=data, content_type="application/json"), 400)


def test_body_that_is_not_an_object_is_400(client: FlaskClient) -> None:
    body = _error(client.post(SIGN, json=[1, 2]), 400)
    assert _pointers(body) == {""}
    assert "type object" in body["details"][0]["message"]


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    node = body
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return body


@pytest.mark.parametrize(
    ("edit", "pointer"),
    [
        (lambda b: _without(b, "hookInstance"), "/hookInstance"),
        (lambda b: _without(b, "context", "patientId"), "/context/patientId"),
        (lambda b: _without(b, "context", "userId"), "/context/userId"),
        (lambda b: _without(b, "context", "draftOrders"), "/context/draftOrders"),
        (lambda b: b["context"].update(userId="just-an-id"), "/context/userId"),
        (
            lambda b: b["context"].update(draftOrders={"resourceType": "Patient"}),
            "/context/draftOrders/resourceType",
        ),
        (lambda b: b["context"].update(draftOrders=[]), "/context/draftOrders"),
        (lambda b: b["prefetch"].update(patient="123"), "/prefetch/patient"),
        (lambda b: b["prefetch"].update(patient={"id": "x"}), "/prefetch/patient"),
        (lambda b: b.update(fhirServer="ehr.example.org"), "/fhirServer"),
        (
            lambda b: b.update(fhirAuthorization={"access_token": "t", "token_type": "Bearer"}),
            "/fhirServer",
        ),
        (lambda b: b.update(context="order-sign"), "/context"),
    ],
)
def test_schema_violation_is_400_with_pointer(
    client: FlaskClient, edit: Callable[[dict[str, Any]], Any], pointer: str
) -> None:
    request_body = load_example("order-sign-prefetch.json")
    edit(request_body)
    body = _error(client.post(SIGN, json=request_body), 400)
    assert body["error"] == "invalid-request"
    assert pointer in _pointers(body)
    assert body["message"].startswith("not a valid CDS Hooks request: /")


def test_schema_messages_do_not_echo_values(client: FlaskClient) -> None:
    request_body = load_example("order-sign-prefetch.json")
    request_body["context"]["userId"] = "Jane Doe 1971-04-12"
    text = client.post(SIGN, json=request_body).get_data(as_text=True)
    assert "Jane" not in text
    assert "1971" not in text


def test_order_select_needs_selections(client: FlaskClient) -> None:
    request_body = load_example("order-select.json")
    del request_body["context"]["selections"]
    body = _error(client.post(SELECT, json=request_body), 400)
    assert "/context/selections" in _pointers(body)


def test_hook_not_matching_the_service_is_400(client: FlaskClient) -> None:
    body = _error(client.post(SELECT, json=load_example("order-sign-prefetch.json")), 400)
    assert body["error"] == "wrong-hook"
    assert _pointers(body) == {"/hook"}
    assert "order-select" in body["message"]


def test_unknown_service_is_404(client: FlaskClient) -> None:
    body = _error(client.post("/cds-services/no-such-service", json={}), 404)
    assert "GET /cds-services" in body["message"]


def test_unknown_path_is_json_404(client: FlaskClient) -> None:
    _error(client.get("/nothing-here"), 404)


def test_wrong_method_is_json_405(client: FlaskClient) -> None:
    response = client.put("/cds-services")
    _error(response, 405)
    assert "GET" in response.headers["Allow"]
    _error(client.get(SIGN), 405)


def test_body_too_large_is_413(make_app: Callable[..., Flask]) -> None:
    app = make_app(CDS_MAX_BODY_BYTES=2000)
    request_body = load_example("order-sign-prefetch.json")
    assert len(json.dumps(request_body)) > 2000
    body = _error(app.test_client().post(SIGN, json=request_body), 413)
    assert body["error"] == "payload-too-large"


def test_unexpected_error_is_json_500_without_details(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(call: Any, resources: Any, engine: Any = None) -> dict[str, Any]:
        raise ValueError("patient Jane Doe has no birthDate")

    monkeypatch.setattr(pipeline, "run", broken)
    caplog.set_level(logging.INFO)
    response = client.post(SIGN, json=load_example("order-sign-prefetch.json"))
    body = _error(response, 500)
    assert body == {"error": "internal-error", "message": "internal error"}
    assert "Jane" not in caplog.text
    errors = [r for r in caplog.records if r.name == "cds_service.errors"]
    assert errors
    assert errors[0].__dict__["exception"] == "ValueError"


def test_invalid_pipeline_answer_is_500_not_passed_on(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        pipeline, "run", lambda call, resources, engine=None: {"cards": [{"summary": "x" * 141}]}
    )
    response = client.post(SIGN, json=load_example("order-sign-prefetch.json"))
    _error(response, 500)


def test_enabled_auth_without_trusted_issuers_stops_start_up() -> None:
    with pytest.raises(SettingsError) as caught:
        create_app(base_config(CDS_AUTH="enabled"))
    message = str(caught.value)
    assert "CDS_TRUSTED_ISSUERS" in message
    assert "CDS_AUTH=disabled" in message


def test_bad_trusted_issuers_file_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({"issuers": [{"iss": "https://ehr.example.org"}]}))
    with pytest.raises(SettingsError, match="CDS_TRUSTED_ISSUERS"):
        create_app(base_config(CDS_AUTH="enabled", CDS_TRUSTED_ISSUERS=str(path)))
    with pytest.raises(SettingsError, match="cannot read"):
        create_app(base_config(CDS_AUTH="enabled", CDS_TRUSTED_ISSUERS=str(tmp_path / "none")))


class HeaderAuthenticator:
    """Accepts `Bearer good` only, and records the audiences it was asked about."""

    def __init__(self) -> None:
        self.audiences: list[str] = []

    def authenticate(self, authorization_header: str | None, audience: str) -> Principal:
        self.audiences.append(audience)
        if authorization_header != "Bearer good":
            raise AuthError("not the good token")
        return Principal(
            iss="https://ehr.example.org", sub=None, jti="j", tenant=None, fhir_servers=()
        )


def test_authenticator_decides_before_the_body_is_read(make_app: Callable[..., Flask]) -> None:
    authenticator = HeaderAuthenticator()
    app = make_app(CDS_AUTH="enabled", AUTHENTICATOR=authenticator)
    client = app.test_client()
    refused = client.post(SIGN, data="{not json", content_type="application/json")
    assert refused.status_code == 401
    assert refused.get_json() == {"error": "unauthorized", "message": "authentication required"}
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    ok = client.post(
        SIGN,
        json=load_example("order-sign-prefetch.json"),
        headers={"Authorization": "Bearer good"},
    )
    assert ok.status_code == 200
    assert client.get("/cds-services").status_code == 401
    assert authenticator.audiences == [f"http://localhost{SIGN}"] * 2 + [
        "http://localhost/cds-services"
    ]


def test_public_base_url_is_the_audience(make_app: Callable[..., Flask]) -> None:
    authenticator = HeaderAuthenticator()
    app = make_app(
        CDS_AUTH="enabled",
        AUTHENTICATOR=authenticator,
        CDS_PUBLIC_BASE_URL="https://cds.example.org/anakinra/",
    )
    app.test_client().get("/cds-services", headers={"Authorization": "Bearer good"})
    assert authenticator.audiences == ["https://cds.example.org/anakinra/cds-services"]


def test_preflight_needs_no_credentials(make_app: Callable[..., Flask]) -> None:
    app = make_app(CDS_AUTH="enabled", AUTHENTICATOR=HeaderAuthenticator())
    response = app.test_client().options(
        SIGN,
        headers={
            "Origin": "https://ehr.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert response.status_code == 200
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
