"""Browser clients (the CDS Hooks sandbox) need CORS on every endpoint."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import load_example

ORIGIN = "https://sandbox.cds-hooks.org"


@pytest.mark.parametrize(
    ("path", "method"),
    [("/cds-services", "GET"), ("/cds-services/prior-auth-order-sign", "POST")],
)
def test_preflight_allows_authorization_and_content_type(
    client: FlaskClient, path: str, method: str
) -> None:
    response = client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers
    assert method in response.headers["Access-Control-Allow-Methods"]


def test_responses_and_errors_carry_cors_headers(client: FlaskClient) -> None:
    headers = {"Origin": ORIGIN}
    ok = client.post(
        "/cds-services/prior-auth-order-sign",
        json=load_example("order-sign-prefetch.json"),
        headers=headers,
    )
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    for response in (
        client.post("/cds-services/prior-auth-order-sign", data="{", headers=headers),
        client.post("/cds-services/unknown", json={}, headers=headers),
        client.get("/cds-services", headers=headers),
    ):
        assert response.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)


def test_configured_origins_only(make_app: Callable[..., Flask]) -> None:
    app = make_app(CDS_CORS_ORIGINS="https://ehr.example.org")
    client = app.test_client()
    allowed = client.get("/cds-services", headers={"Origin": "https://ehr.example.org"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://ehr.example.org"
    other = client.get("/cds-services", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in other.headers
