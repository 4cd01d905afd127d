"""Coverage information when the service reads the chart from the EHR's FHIR server (the
real FHIR sandbox, no prefetch): another payer's Coverage never gets an assertion; once the
patient also has a Coverage of ours, only that one does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from cds_service.crd.codes import COVERAGE_INFORMATION_URL
from sandbox.ehr import hook_request
from sandbox.fhir_sandbox import PATIENTS_DIR, SandboxServer, install, npm_available, start
from sandbox.scenarios import load_order, load_scenarios

SIGN = "/cds-services/prior-auth-order-sign"
NAME = "ra-criteria-met"
FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    """A FHIR sandbox of its own holding one chart whose only Coverage is another payer's."""
    if not npm_available():
        pytest.skip("npm is not installed: the FHIR sandbox (sandbox/) cannot be installed")
    install()
    server = start()
    try:
        bundle: dict[str, Any] = json.loads((PATIENTS_DIR / f"{NAME}.json").read_text("utf-8"))
        for entry in bundle["entry"]:
            if entry["resource"]["resourceType"] == "Coverage":
                entry["resource"]["payor"] = [{"reference": "Organization/acme-insurance"}]
        bundle["entry"].append(
            {
                "resource": {
                    "resourceType": "Organization",
                    "id": "acme-insurance",
                    "name": "Acme Insurance",
                },
                "request": {"method": "PUT", "url": "Organization/acme-insurance"},
            }
        )
        loaded = requests.post(
            server.base_url,
            data=json.dumps(bundle),
            headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON},
            timeout=60,
        )
        assert loaded.status_code == 200, loaded.text[:300]
        yield server
    finally:
        server.stop()


def _call(app: Flask, server: SandboxServer) -> dict[str, Any]:
    (scenario,) = [s for s in load_scenarios() if s.name == NAME]
    body = hook_request(scenario, [load_order(scenario)], fhir_server=server.base_url)
    with app.test_client() as client:
        response = client.post(SIGN, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    answer: dict[str, Any] = response.get_json()
    return answer


def _coverages_asserted(answer: dict[str, Any]) -> list[str]:
    return [
        part["valueReference"]["reference"]
        for action in answer.get("systemActions", [])
        for ext in action["resource"].get("extension", [])
        if ext["url"] == COVERAGE_INFORMATION_URL
        for part in ext["extension"]
        if part["url"] == "coverage"
    ]


def test_only_our_coverage_read_from_the_fhir_server_gets_an_assertion(
    sandbox: SandboxServer, app: Flask
) -> None:
    (scenario,) = [s for s in load_scenarios() if s.name == NAME]
    other_only = _call(app, sandbox)
    assert _coverages_asserted(other_only) == []
    (entry,) = other_only["extension"]["com.anakinra-cds.evaluation"]
    assert entry["coverageInformation"]["status"] == "not-sent"
    assert "another payer" in entry["coverageInformation"]["reason"]
    assert other_only["cards"]

    ours = {
        "resourceType": "Coverage",
        "id": "crd-ours",
        "status": "active",
        "beneficiary": {"reference": f"Patient/{scenario.patient_id}"},
        "payor": [{"reference": "Organization/org-plan-1"}],
    }
    put = requests.put(
        f"{sandbox.base_url}/Coverage/crd-ours",
        data=json.dumps(ours),
        headers={"Content-Type": FHIR_JSON},
        timeout=30,
    )
    assert put.status_code in (200, 201), put.text[:300]
    both = _call(app, sandbox)
    assert _coverages_asserted(both) == ["Coverage/crd-ours"]
    # Criteria met: without coverage information the criteria-met card says so; with it,
    # the card would only repeat the system action (CRD resp-12) and is not sent.
    assert [c["summary"][:26] for c in other_only["cards"]] == ["Kineret meets the plan's c"]
    assert both["cards"] == []
