"""order-dispatch over HTTP: our running service (gunicorn) reads a signed MedicationRequest
being sent to a pharmacy from a real FHIR server (the sandbox), with the EHR's token, and
decides it as order-sign decided the same order.

This module runs its own sandbox (token-protected, one patient) and service: storing a
signed order changes the patient's medication history, which the shared sandbox of the
other e2e modules must not see.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.ehr import decision_view, hook_request, post_hook
from sandbox.fhir_sandbox import SandboxServer, install, load_patients, npm_available, start
from sandbox.scenarios import Scenario, load_order, load_scenarios
from sandbox.service import start_service

TOKEN = "e2e-dispatch-token"
SCENARIO = next(s for s in load_scenarios() if s.name == "nomid-criteria-met")
FHIR_JSON = "application/fhir+json"
TIMEOUT = 60


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    if not npm_available():
        pytest.skip("npm is not installed: the FHIR sandbox (sandbox/) cannot be installed")
    install()
    server = start(require_token=TOKEN)
    try:
        load_patients(server.base_url, [SCENARIO.bundle_path], token=TOKEN)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def service_url(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("dispatch-service")
    with start_service(
        fhir_servers=[sandbox.base_url],
        database_url=f"sqlite:///{workdir / 'cds.sqlite'}",
        log_path=workdir / "service.log",
        workers=1,
    ) as service:
        yield service.base_url


def _answer(url: str, service: str, body: dict[str, Any]) -> dict[str, Any]:
    response = post_hook(url, service, body)
    assert response.status_code == 200, response.text[:500]
    result: dict[str, Any] = response.json()
    return result


def _store_signed(sandbox: SandboxServer, scenario: Scenario) -> dict[str, Any]:
    """The scenario's order as the EHR keeps it once signed: active, with its own id."""
    order = load_order(scenario)
    order["id"] = "rx-" + order["id"]
    order["status"] = "active"
    response = requests.put(
        f"{sandbox.base_url}/MedicationRequest/{order['id']}",
        json=order,
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": FHIR_JSON,
            "Accept": FHIR_JSON,
        },
        timeout=TIMEOUT,
    )
    assert response.status_code in (200, 201), response.text[:300]
    return order


def test_dispatch_read_from_the_fhir_server_decides_as_order_sign(
    sandbox: SandboxServer, service_url: str
) -> None:
    signed = _answer(
        service_url,
        "prior-auth-order-sign",
        hook_request(
            SCENARIO, [load_order(SCENARIO)], fhir_server=sandbox.base_url, access_token=TOKEN
        ),
    )
    (sign_decision,) = decision_view(signed)
    assert sign_decision["outcome"] == SCENARIO.expected_outcome

    order = _store_signed(sandbox, SCENARIO)
    body = {
        "hook": "order-dispatch",
        "hookInstance": "6c1f1d0e-3f7e-4a4e-9d86-0b4f6d0a1e77",
        "fhirServer": sandbox.base_url,
        "fhirAuthorization": {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/Patient.rs patient/MedicationRequest.rs patient/Observation.rs",
            "subject": "cds-service",
            "patient": SCENARIO.patient_id,
        },
        "context": {
            "patientId": SCENARIO.patient_id,
            "dispatchedOrders": [f"MedicationRequest/{order['id']}", "ServiceRequest/lab-1"],
            "performer": "Organization/community-pharmacy-1",
        },
        "extension": {"davinci-crd.requestedVersion": "2.2"},
    }
    sandbox.clear_requests()
    dispatched = _answer(service_url, "prior-auth-order-dispatch", body)
    (decision,) = decision_view(dispatched)
    assert decision["order"] == f"MedicationRequest/{order['id']}"
    assert {k: v for k, v in decision.items() if k != "order"} == {
        k: v for k, v in sign_decision.items() if k != "order"
    }
    [action] = dispatched["systemActions"]
    assert action["resource"]["id"] == order["id"]
    paths = [str(r["path"]) for r in sandbox.requests_seen()]
    assert any("PractitionerRole" in p for p in paths), "the prescriber's roles are read"

    off = {**body, "extension": {"davinci-crd.configuration": {"coverage-info": False}}}
    quiet = _answer(service_url, "prior-auth-order-dispatch", off)
    assert "systemActions" not in quiet
    assert all(c["source"]["topic"]["code"] != "coverage-info" for c in quiet["cards"])
