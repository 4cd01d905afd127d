"""Canary values planted in requests never reach the logs or the audit database.

A patient name, a birth date, the FHIR access token, the caller's JWT and a resource id written
in free text travel through both data paths (prefetch, and a real FHIR server on loopback) and
through feedback with a comment. Every logger is captured at DEBUG; every table of the SQLite
file is read. Only the patient reference may be stored.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from cds_service import create_app
from cds_service.json_logs import JsonLineFormatter
from tests.answers import is_answered
from tests.auth.conftest import jwks, make_signer
from tests.conftest import PINNED_NOW, base_config, load_example, wait_for_audit

NAME_GIVEN, NAME_FAMILY = "Quillfeather", "Canaryson"
BIRTH = "1907-03-14"
ACCESS_TOKEN = "canary-access-token-7f3a9c"
FREE_TEXT_ID = "Observation/canary-obs-4471"
COMMENT = f"Canary comment: {NAME_GIVEN} prefers {FREE_TEXT_ID}"
PATIENT_ID = "pt-ra-1001"
ISS = "https://ehr.example.org"
SIGN = "/cds-services/anakinra-order-sign"
FEEDBACK = "/cds-services/anakinra-order-sign/feedback"

PATIENT = {
    "resourceType": "Patient",
    "id": PATIENT_ID,
    "name": [{"given": [NAME_GIVEN], "family": NAME_FAMILY, "text": f"{NAME_GIVEN} {NAME_FAMILY}"}],
    "birthDate": BIRTH,
    "gender": "female",
}
NOTE = [{"text": f"{NAME_GIVEN} {NAME_FAMILY}, born {BIRTH}; see {FREE_TEXT_ID}"}]


class FhirHandler(BaseHTTPRequestHandler):
    """A tiny FHIR server: the canary patient, a condition with a canary note, else empty."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        body: dict[str, Any]
        if path == f"/fhir/Patient/{PATIENT_ID}":
            body = PATIENT
        elif path == "/fhir/Condition":
            condition = load_example("order-sign-prefetch.json")["prefetch"]["conditions"]
            for entry in condition["entry"]:
                entry["resource"]["note"] = NOTE
            body = condition
        else:
            body = {"resourceType": "Bundle", "type": "searchset", "entry": []}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fhir_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FhirHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    finally:
        server.shutdown()
        server.server_close()


class Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def all_logs() -> Iterator[Everything]:
    """Every record of every logger at DEBUG (levels restored afterwards)."""
    handler = Everything()
    root = logging.getLogger()
    saved = {
        name: lg.level
        for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    saved_root = root.level
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_root)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _all_debug() -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(logging.DEBUG)


def test_canaries_reach_neither_logs_nor_audit_store(
    tmp_path: Path, fhir_base: str, all_logs: Everything
) -> None:
    signer = make_signer("ES384", "canary-key")
    (tmp_path / "keys.json").write_text(json.dumps(jwks(signer)))
    issuers = {"issuers": [{"iss": ISS, "jwks_file": "keys.json", "fhir_servers": [fhir_base]}]}
    (tmp_path / "issuers.json").write_text(json.dumps(issuers))
    database = tmp_path / "audit.sqlite"
    app = create_app(
        base_config(
            CDS_AUTH="enabled",
            CDS_TRUSTED_ISSUERS=str(tmp_path / "issuers.json"),
            CDS_PUBLIC_BASE_URL="http://localhost",
            CDS_DATABASE_URL=f"sqlite:///{database}",
        )
    )
    _all_debug()
    client = app.test_client()
    tokens: list[str] = []

    def headers(path: str) -> dict[str, str]:
        now = int(PINNED_NOW.timestamp())
        token = signer.sign(
            {
                "iss": ISS,
                "aud": f"http://localhost{path}",
                "iat": now,
                "exp": now + 300,
                "jti": f"canary-jti-{len(tokens)}",
            }
        )
        tokens.append(token)
        return {"Authorization": f"Bearer {token}"}

    # 1. Everything in prefetch.
    sent = load_example("order-sign-prefetch.json")
    sent["prefetch"]["patient"] = PATIENT
    for entry in sent["prefetch"]["conditions"]["entry"]:
        entry["resource"]["note"] = NOTE
    sent["context"]["draftOrders"]["entry"][0]["resource"]["note"] = NOTE
    # No scores on file: a documentation card, which step 3 overrides with a comment (an order
    # that meets the criteria gets coverage information and no card to override).
    sent["prefetch"]["observations"] = {"resourceType": "Bundle", "type": "searchset"}
    first = client.post(SIGN, json=sent, headers=headers(SIGN))
    assert first.status_code == 200

    # 2. Patient and conditions read from the FHIR server with the canary access token.
    fetched = load_example("order-sign-prefetch.json")
    del fetched["prefetch"]["patient"]
    del fetched["prefetch"]["conditions"]
    fetched["hookInstance"] = "c2a1b0e4-0000-4000-8000-000000000002"
    fetched["fhirServer"] = fhir_base
    fetched["fhirAuthorization"] = {
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/*.read",
        "subject": "anakinra-cds",
    }
    second = client.post(SIGN, json=fetched, headers=headers(SIGN))
    assert second.status_code == 200
    assert is_answered(second.get_json())

    # 3. Feedback with a comment.
    card = first.get_json()["cards"][0]["uuid"]
    feedback = {
        "feedback": [
            {
                "card": card,
                "outcome": "overridden",
                "overrideReason": {"userComment": COMMENT},
                "outcomeTimestamp": "2026-11-29T15:05:00Z",
            }
        ]
    }
    assert client.post(FEEDBACK, json=feedback, headers=headers(FEEDBACK)).status_code == 200
    # 4. A refused call with a canary-bearing token.
    assert (
        client.get("/cds-services", headers={"Authorization": "Bearer " + tokens[0]}).status_code
        == 401
    )

    canaries = [NAME_GIVEN, NAME_FAMILY, BIRTH, ACCESS_TOKEN, FREE_TEXT_ID, "canary-obs-4471"]
    canaries += [part for token in tokens for part in token.split(".")]
    canaries += tokens

    # Logs: every record, formatted as the service writes it and raw.
    formatter = JsonLineFormatter()
    lines = [formatter.format(record) for record in all_logs.records]
    for line in lines:
        json.loads(line)  # one JSON object per line
    raw = json.dumps([r.__dict__ for r in all_logs.records], default=str)
    logged = "\n".join(lines) + raw
    for canary in canaries:
        assert canary not in logged, canary
    # The FHIR reads went through the real HTTP stack, whose DEBUG lines were captured too.
    assert any(r.name.startswith("urllib3") for r in all_logs.records)
    requests_logged = [r for r in all_logs.records if getattr(r, "event", None) == "request"]
    assert [r.__dict__["status"] for r in requests_logged] == [200, 200, 200, 401]
    assert requests_logged[1].__dict__["hookInstance"] == fetched["hookInstance"]
    assert requests_logged[1].__dict__["fhirQueries"] > 0
    assert all("duration_ms" in r.__dict__ for r in requests_logged)

    # Audit store: every table, every row.
    wait_for_audit(app)
    with sqlite3.connect(database) as conn:
        tables = [
            row[0] for row in conn.execute("select name from sqlite_master where type='table'")
        ]
        dump = {table: conn.execute(f'select * from "{table}"').fetchall() for table in tables}  # noqa: S608
    stored = json.dumps(dump, default=str)
    assert {"invocations", "cards", "feedback", "jwt_ids"} <= set(tables)
    assert dump["invocations"]
    assert dump["feedback"]
    for canary in [*canaries, COMMENT]:
        assert canary not in stored, canary
    assert f"Patient/{PATIENT_ID}" in stored  # the reference, and only it, is kept
