"""Authentication on while the database that records token ids (jti) hangs: a PostgreSQL
that accepts connections and never answers, over HTTP (werkzeug's server in a thread).

- Within `CDS_REPLAY_FALLBACK_SECONDS` of the outage's start, signed calls are answered
  (200 with cards); the same token sent again to the worker is refused (401); readiness
  shows what was accepted during the outage; one log line says it started.
- When the database answers again, the ids accepted during the outage are written: the
  token used in the outage is refused by another worker (a second app on the same
  database), and one log line says the outage ended.
- With the window at 0, a call during the outage is refused 503 with the JSON error and
  `Retry-After`: nothing is accepted unchecked.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from cds_service import create_app
from cds_service.replay_fallback import replay_status
from cds_service.store import AuditStore
from tests.answers import is_answered
from tests.auth.conftest import jwks, make_signer
from tests.conftest import PINNED_NOW, base_config, load_example, wait_for_audit
from tests.faults.fake_postgres import FakePostgres, proxied_test_postgres

SIGN = "/cds-services/anakinra-order-sign"
ISS = "https://ehr.example.org"
PUBLIC = "http://cds.example.org"
GENEROUS = 60.0
"""A functional bound (not a speed goal): far above every configured timeout here."""

SIGNER = make_signer("ES384", "outage-key")


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[tuple[FakePostgres, str]]:
    """A proxy to the test PostgreSQL that a test can make hang (`mode = "silent"`)."""
    with proxied_test_postgres() as (pg, url):
        yield pg, url
        pg.mode = "forward"
        cleaner = AuditStore(url)
        cleaner.drop_schema()
        cleaner.dispose()


def _app(tmp_path: Path, url: str, **overrides: Any) -> Flask:
    (tmp_path / "keys.json").write_text(json.dumps(jwks(SIGNER)))
    issuers = {"issuers": [{"iss": ISS, "jwks_file": "keys.json", "fhir_servers": []}]}
    (tmp_path / "issuers.json").write_text(json.dumps(issuers))
    return create_app(
        base_config(
            CDS_AUTH="enabled",
            CDS_TRUSTED_ISSUERS=str(tmp_path / "issuers.json"),
            CDS_PUBLIC_BASE_URL=PUBLIC,
            CDS_DATABASE_URL=url,
            CDS_DATABASE_CONNECT_TIMEOUT=1.0,
            CDS_DATABASE_TIMEOUT=1.0,
            **overrides,
        )
    )


@contextlib.contextmanager
def _served(app: Flask) -> Iterator[str]:
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="outage-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        app.extensions["audit_writer"].close()
        app.extensions["audit_store"].dispose()


def _token(jti: str) -> str:
    now = int(PINNED_NOW.timestamp())
    claims = {"iss": ISS, "aud": PUBLIC + SIGN, "iat": now, "exp": now + 300, "jti": jti}
    return SIGNER.sign(claims)


def _call(base: str, token: str, instance: str) -> requests.Response:
    body = load_example("order-sign-prefetch.json")
    body["hookInstance"] = instance
    return requests.post(
        base + SIGN, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=GENEROUS
    )


def _replay(base: str) -> dict[str, Any]:
    ready = requests.get(base + "/health/ready", timeout=GENEROUS).json()
    replay: dict[str, Any] = ready["replay"]
    return replay


def _status(app: Flask) -> dict[str, Any]:
    status = replay_status(app.extensions)
    assert status is not None
    return status


def _hang(pg: FakePostgres, app: Flask) -> None:
    wait_for_audit(app)  # no connection in use: dispose closes them all
    pg.mode = "silent"
    app.extensions["audit_store"].engine.dispose()  # pooled ones reach the real server


def test_calls_are_answered_during_an_outage_and_replays_caught_after_it(
    postgres: tuple[FakePostgres, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pg, url = postgres
    app = _app(tmp_path, url)
    with _served(app) as base:
        assert _call(base, _token("before"), "outage-0").status_code == 200
        _hang(pg, app)

        during = _token("during-1")
        answer = _call(base, during, "outage-1")
        assert answer.status_code == 200
        assert is_answered(answer.json())
        assert _call(base, during, "outage-1-again").status_code == 401, "a replay"
        # (Readiness is asked once the database answers: its own probe of a hung database
        # is hardhttp's, tested in tests/protocol/test_protocol_health.py.)
        replay = _status(app)
        assert (replay["store"], replay["accepted_during_outage"]) == ("failing", 1)
        events = [getattr(r, "event", None) for r in caplog.records]
        assert events.count("replay-store-failing") == 1

        pg.mode = "forward"  # the database is back
        deadline = time.monotonic() + GENEROUS
        index = 2
        while _status(app)["store"] != "ok":
            assert time.monotonic() < deadline, "the worker never used the database again"
            assert _call(base, _token(f"during-{index}"), f"outage-{index}").status_code == 200
            index += 1
            time.sleep(0.5)
        assert "replay-store-recovered" in [getattr(r, "event", None) for r in caplog.records]
        assert _call(base, during, "outage-after").status_code == 401
        replay = _replay(base)
        assert (replay["store"], replay["outages"]) == ("ok", 1)
        assert replay["accepted_during_outage"] == index - 1
    # Another worker, on the same database: the token used during the outage is known.
    other = _app(tmp_path, url)
    with _served(other) as base:
        assert _call(base, during, "other-worker").status_code == 401
        assert _call(base, _token("fresh"), "other-worker-fresh").status_code == 200


def test_with_no_fallback_window_an_outage_is_a_503_with_retry_after(
    postgres: tuple[FakePostgres, str], tmp_path: Path
) -> None:
    pg, url = postgres
    app = _app(tmp_path, url, CDS_REPLAY_FALLBACK_SECONDS=0)
    with _served(app) as base:
        assert _call(base, _token("strict-0"), "strict-0").status_code == 200
        _hang(pg, app)
        for index in (1, 2):
            answer = _call(base, _token(f"strict-{index}"), f"strict-{index}")
            assert answer.status_code == 503
            assert answer.json()["error"] == "unavailable"
            assert int(answer.headers["Retry-After"]) >= 1
        assert _status(app)["refused_during_outage"] == 2
