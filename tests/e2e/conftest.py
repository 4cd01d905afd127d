"""End-to-end fixtures: a real FHIR R4 server (sandbox/server.mjs) with the synthetic patients.

The session fixture installs the sandbox's Node dependencies when missing (`npm ci`), starts
the server on a free port and loads every bundle of `sandbox/patients/`. The e2e tests are
skipped only when `npm` is not installed; any other failure to install, start or load fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

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
