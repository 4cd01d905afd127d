"""The FHIR sandbox lets a browser app (the official CDS Hooks sandbox) read from it: CORS
preflights are answered without a token, and every answer carries the CORS headers."""

from __future__ import annotations

import requests

from sandbox.fhir_sandbox import SandboxServer

TIMEOUT = 30
ORIGIN = "http://127.0.0.1:8111"
PATIENT = "pt-ra-met"


def preflight(url: str, method: str, headers: str) -> requests.Response:
    return requests.options(
        url,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
        timeout=TIMEOUT,
    )


def test_preflight_allows_a_browser_reader(fhir_sandbox: SandboxServer) -> None:
    resp = preflight(f"{fhir_sandbox.base_url}/Patient/{PATIENT}", "GET", "authorization,accept")
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    allowed_methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST"} <= allowed_methods
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "accept", "content-type"} <= allowed


def test_search_post_preflight_is_allowed(fhir_sandbox: SandboxServer) -> None:
    """The official sandbox tries `POST {type}/_search` first for its prefetch."""
    resp = preflight(f"{fhir_sandbox.base_url}/Condition/_search", "POST", "content-type")
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


def test_answers_carry_the_cors_header(fhir_sandbox: SandboxServer) -> None:
    for path in ("metadata", f"Patient/{PATIENT}", f"Condition?patient={PATIENT}", "Nope/1"):
        resp = requests.get(
            f"{fhir_sandbox.base_url}/{path}", headers={"Origin": ORIGIN}, timeout=TIMEOUT
        )
        assert resp.headers.get("Access-Control-Allow-Origin") == "*", path


def test_preflight_needs_no_token_but_the_read_still_does(
    fhir_sandbox_with_token: tuple[SandboxServer, str],
) -> None:
    server, token = fhir_sandbox_with_token
    resp = preflight(f"{server.base_url}/Patient/{PATIENT}", "GET", "authorization")
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    refused = requests.get(
        f"{server.base_url}/Patient/{PATIENT}", headers={"Origin": ORIGIN}, timeout=TIMEOUT
    )
    assert refused.status_code == 401
    # The browser can read the refusal (and so show why) only with the header.
    assert refused.headers.get("Access-Control-Allow-Origin") == "*"
    read = requests.get(
        f"{server.base_url}/Patient/{PATIENT}",
        headers={"Origin": ORIGIN, "Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    assert read.status_code == 200
