"""End-to-end fixtures: a real FHIR R4 server (sandbox/server.mjs) with the synthetic patients,
and our CDS service running for real (`cds-service serve`, gunicorn) in front of it.

The sandbox fixtures install the sandbox's Node dependencies when missing (`npm ci`), start
the server on a free port and load every bundle of `sandbox/patients/`. The e2e tests are
skipped only when `npm` is not installed; any other failure to install, start or load fails.

`cds_service_url` starts our service (`sandbox/service.py`) with authentication OFF, a
throwaway SQLite store and the token-protected sandbox as the only FHIR server it may read;
it always stops it (SIGTERM to the gunicorn master; SIGKILL to its process group if it
lingers).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.fhir_sandbox import (
    SandboxServer,
    install,
    load_patients,
    npm_available,
    patient_bundles,
    start,
)
from sandbox.service import start_service

SANDBOX_TOKEN = "e2e-sandbox-token"


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
def cds_service_url(
    fhir_sandbox_with_token: tuple[SandboxServer, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Our service (`cds-service serve`, 2 gunicorn workers): its base URL, e.g.
    http://127.0.0.1:PORT (discovery at /cds-services)."""
    sandbox, _ = fhir_sandbox_with_token
    workdir = tmp_path_factory.mktemp("cds-service")
    with start_service(
        fhir_servers=[sandbox.base_url],
        database_url=f"sqlite:///{workdir / 'cds.sqlite'}",
        log_path=workdir / "service.log",
    ) as service:
        yield service.base_url
