"""`cds-service serve` starts gunicorn and answers discovery."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.conftest import HOOKS_DIR, ROOT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_runs_gunicorn_and_answers_discovery() -> None:
    port = _free_port()
    env = dict(os.environ, CDS_AUTH="disabled", CDS_HOOKS_DIR=str(HOOKS_DIR))
    command = [
        sys.executable,
        "-m",
        "cds_service.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    server = subprocess.Popen(  # noqa: S603 - our own command line, no shell
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        body = None
        for _ in range(100):  # up to ~20 s for the worker to boot
            if server.poll() is not None:
                break
            try:
                url = f"http://127.0.0.1:{port}/cds-services"
                with urllib.request.urlopen(url, timeout=2) as response:
                    body = json.load(response)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert body is not None, "the server did not answer"
        assert {s["id"] for s in body["services"]} == {
            "anakinra-order-sign",
            "anakinra-order-select",
        }
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert f"listening on http://127.0.0.1:{port}/cds-services" in out
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    requests_logged = [e for e in events if e.get("event") == "request"]
    assert requests_logged
    assert requests_logged[0]["route"] == "/cds-services"
    assert any("gunicorn" in e.get("logger", "") for e in events)
