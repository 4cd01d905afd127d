"""`cds-service serve` starts gunicorn and answers discovery."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from sandbox.service import start_service
from tests.conftest import HOOKS_DIR


def test_serve_runs_gunicorn_and_answers_discovery(tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    with start_service(
        fhir_servers=[],
        database_url=f"sqlite:///{tmp_path / 'serve.sqlite'}",
        log_path=log_path,
        workers=1,
        extra_env={"CDS_HOOKS_DIR": str(HOOKS_DIR)},
    ) as service:
        body = requests.get(service.discovery_url, timeout=5).json()
        assert {s["id"] for s in body["services"]} == {
            "prior-auth-order-sign",
            "prior-auth-order-select",
            "prior-auth-order-dispatch",
        }
    # The command's own output (stdout and stderr, in one log): where it listens, then
    # gunicorn's and the app's JSON log lines.
    output = log_path.read_text(encoding="utf-8")
    assert f"listening on {service.discovery_url}" in output
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    requests_logged = [e for e in events if e.get("event") == "request"]
    assert requests_logged
    assert requests_logged[0]["route"] == "/cds-services"
    assert any("gunicorn" in e.get("logger", "") for e in events)
