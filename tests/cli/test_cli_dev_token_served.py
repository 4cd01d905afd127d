"""Authentication on in five minutes, as the README says: `cds-service dev-token` makes a
key and a trusted-issuers file, `cds-service serve` (gunicorn, a real subprocess) starts with
them, a call signed with its token is answered and a call without one is refused. The same
run checks the logs: every line on standard error is JSON with a request id, and none holds
a token or patient data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.service import (
    LOOPBACK,
    REPO_ROOT,
    ServiceProcess,
    free_port,
    service_command,
    service_env,
    stop_gunicorn,
    wait_for_discovery,
)

EXAMPLE = REPO_ROOT / "hooks" / "examples" / "order-sign-prefetch.json"
SIGN_PATH = "/cds-services/prior-auth-order-sign"
TIMEOUT = 30


@dataclass
class Served:
    folder: Path
    base_url: str
    service: ServiceProcess
    stderr_path: Path
    tokens: list[str] = field(default_factory=list)

    def dev_token(self, path: str) -> str:
        """`cds-service dev-token --path PATH`, run from the folder the service runs in."""
        result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [sys.executable, "-m", "cds_service.cli", "dev-token", "--path", path],
            cwd=self.folder,
            env=service_env(
                os.environ,
                fhir_servers=[],
                database_url="",
                extra={"CDS_PUBLIC_BASE_URL": self.base_url},
            ),
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 2,
            check=True,
        )
        token = result.stdout.strip()
        self.tokens.append(token)
        return token


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("five-minutes")
    port = free_port()
    base_url = f"http://{LOOPBACK}:{port}"
    first = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [sys.executable, "-m", "cds_service.cli", "dev-token", "--base-url", base_url],
        cwd=folder,
        env=service_env(os.environ, fhir_servers=[], database_url=""),
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
        check=True,
    )
    # The first call says how to start the service; the file it names is relative to here.
    assert "CDS_TRUSTED_ISSUERS=var/dev-issuer/trusted-issuers.json" in first.stderr
    assert (folder / "var" / "dev-issuer" / "trusted-issuers.json").is_file()
    env = service_env(os.environ, fhir_servers=[], database_url="")
    env.pop("CDS_DATABASE_URL")  # the default: var/cds.sqlite where it starts
    env.pop("CDS_FHIR_SERVERS")
    env.update(
        {
            "CDS_AUTH": "enabled",
            "CDS_TRUSTED_ISSUERS": "var/dev-issuer/trusted-issuers.json",
            "CDS_PUBLIC_BASE_URL": base_url,
        }
    )
    stdout_path, stderr_path = folder / "stdout.log", folder / "stderr.log"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
            service_command(LOOPBACK, port, 1),
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    service = ServiceProcess(process, base_url, stderr_path)
    try:
        wait_for_discovery(service, 90, ready=(401,))
        yield Served(folder, base_url, service, stderr_path, [first.stdout.strip()])
    finally:
        stop_gunicorn(process)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_signed_call_is_answered_and_an_unsigned_one_refused(served: Served) -> None:
    url = served.base_url + SIGN_PATH
    body = json.loads(EXAMPLE.read_text("utf-8"))
    assert requests.post(url, json=body, timeout=TIMEOUT).status_code == 401

    token = served.dev_token(SIGN_PATH)
    answer = requests.post(url, json=body, headers=bearer(token), timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["systemActions"]  # the coverage information of the order
    # The same token again is a replay; a fresh one from dev-token is accepted.
    assert requests.post(url, json=body, headers=bearer(token), timeout=TIMEOUT).status_code == 401
    again = requests.post(url, json=body, headers=bearer(served.dev_token(SIGN_PATH)), timeout=30)
    assert again.status_code == 200


def test_a_token_is_for_the_url_it_names(served: Served) -> None:
    discovery = served.base_url + "/cds-services"
    # The first token of the fixture was made for discovery (the default path).
    assert requests.get(discovery, headers=bearer(served.tokens[0]), timeout=30).status_code == 200
    for_sign = served.dev_token(SIGN_PATH)
    assert requests.get(discovery, headers=bearer(for_sign), timeout=30).status_code == 401


def _log_lines(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text("utf-8").splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a log line is not JSON: {line[:200]}")
    return parsed


def test_every_log_line_is_json_with_a_request_id(served: Served) -> None:
    traced = "trace-0123456789"
    answer = requests.get(
        served.base_url + "/cds-services",
        headers={**bearer(served.dev_token("/cds-services")), "X-Request-Id": traced},
        timeout=TIMEOUT,
    )
    assert answer.headers["X-Request-Id"] == traced
    refused = requests.get(served.base_url + "/cds-services", timeout=TIMEOUT)
    own_id = refused.headers["X-Request-Id"]
    assert own_id
    assert own_id != traced
    hostile = requests.get(
        served.base_url + "/health/live", headers={"X-Request-Id": "x\u00e9<script>"}, timeout=30
    )
    assert hostile.headers["X-Request-Id"] != "x\u00e9<script>"  # a new id, not the caller's

    stop_gunicorn(served.service.process)  # everything it had to say is written
    events = _log_lines(served.stderr_path)
    assert events
    assert all("request_id" in event for event in events)
    for request_id in (traced, own_id):
        kinds = {e.get("event") for e in events if e["request_id"] == request_id}
        assert {"request", "access"} <= kinds, request_id
    refusal = [e for e in events if e["request_id"] == own_id]
    assert any(e.get("event") == "auth-failed" for e in refusal)
    assert any(e.get("logger", "").startswith("gunicorn") for e in events)

    text = served.stderr_path.read_text("utf-8")
    for secret in served.tokens:
        assert secret not in text
    for patient_data in ("pt-ra-1001", "Avery", "1971-04-12", "<script>"):
        assert patient_data not in text
