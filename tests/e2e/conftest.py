"""End-to-end fixtures: a real FHIR R4 server (sandbox/server.mjs) with the synthetic patients,
and our CDS service running for real (`cds-service serve`, gunicorn) in front of it.

The sandbox fixtures install the sandbox's Node dependencies when missing (`npm ci`), start
the server on a free port and load every bundle of `sandbox/patients/`. The e2e tests are
skipped only when `npm` is not installed; any other failure to install, start or load fails.

`cds_service_url` starts our service with authentication OFF (`CDS_AUTH=disabled`), a
throwaway SQLite store and the token-protected sandbox as the only FHIR server it may read;
it always stops it (SIGTERM to the gunicorn master; SIGKILL to its process group if it
lingers).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.fhir_sandbox import (
    PATIENTS_DIR,
    SandboxServer,
    install,
    load_patients,
    npm_available,
    patient_bundles,
    start,
)

SANDBOX_TOKEN = "e2e-sandbox-token"
ROOT = Path(__file__).resolve().parents[2]
SERVICE_START_TIMEOUT_S = 30.0


def _require_npm() -> None:
    if not npm_available():
        pytest.skip("npm is not installed: the FHIR sandbox (sandbox/) cannot be installed")


@pytest.fixture(scope="session")
def fhir_sandbox() -> Iterator[SandboxServer]:
    """The sandbox server with every synthetic patient loaded; no token required."""
    _require_npm()
    install()
    server = start()
    try:
        load_patients(server.base_url, patient_bundles())
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fhir_sandbox_with_token() -> Iterator[tuple[SandboxServer, str]]:
    """A second sandbox that answers 401 unless `Authorization: Bearer <token>` is sent."""
    _require_npm()
    install()
    server = start(require_token=SANDBOX_TOKEN)
    try:
        load_patients(server.base_url, patient_bundles(), token=SANDBOX_TOKEN)
        yield server, SANDBOX_TOKEN
    finally:
        server.stop()


@pytest.fixture(scope="session")
def scenarios() -> dict[str, dict[str, Any]]:
    """`sandbox/patients/scenarios.json` by scenario name (ids, expected outcome...)."""
    rows = json.loads((PATIENTS_DIR / "scenarios.json").read_text(encoding="utf-8"))
    return {row["name"]: row for row in rows}


def draft_order(name: str) -> dict[str, Any]:
    """The draft anakinra MedicationRequest of scenario `name`."""
    order: dict[str, Any] = json.loads(
        (PATIENTS_DIR / f"{name}.order.json").read_text(encoding="utf-8")
    )
    return order


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_command(port: int, workers: int = 2) -> list[str]:
    """`cds-service serve` from this virtualenv (the installed script, else the module)."""
    script = Path(sys.executable).parent / "cds-service"
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "cds_service.cli"]
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return [*launcher, *args]


def stop_gunicorn(process: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM the gunicorn master, which stops its workers and exits; one that does not
    within `grace_s` is killed with its whole process group (its own session, started here)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _wait_for_discovery(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-10:]
            raise RuntimeError(f"cds-service exited with {process.returncode}: {tail}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"cds-service did not answer within {SERVICE_START_TIMEOUT_S} s")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def cds_service_url(
    fhir_sandbox_with_token: tuple[SandboxServer, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Our service (`cds-service serve`, 2 gunicorn workers): its base URL, e.g.
    http://127.0.0.1:PORT (discovery at /cds-services)."""
    sandbox, _ = fhir_sandbox_with_token
    workdir = tmp_path_factory.mktemp("cds-service")
    log = workdir / "service.log"
    port = _free_port()
    # Inherited CDS_* settings are dropped: the service runs with these alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    env.update(
        {
            "CDS_AUTH": "disabled",
            "CDS_FHIR_SERVERS": sandbox.base_url,
            "CDS_DATABASE_URL": f"sqlite:///{workdir / 'cds.sqlite'}",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        }
    )
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
            service_command(port),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_discovery(process, f"{base_url}/cds-services", log)
        yield base_url
    finally:
        stop_gunicorn(process)
