"""CDS_PREFETCH=minimal (CRD found-27 / found-28) through a real FHIR server.

Two services run for real (gunicorn), one with the default `full` prefetch and one with
`minimal`, both trusting one sandbox FHIR server holding one patient. The EHR here fills
each service's advertised prefetch templates from the sandbox (as an EHR would) and names
the sandbox as `fhirServer`; the sandbox's request log shows what the service itself read.

- minimal discovery asks for the patient and the coverage only (order-dispatch also the
  patient's medication orders, where the dispatched orders are found);
- an order for a policy drug makes the minimal service query the rest of the chart, and
  it gets the decision and the coverage information the full prefetch gets;
- an order for another drug makes neither service read anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.ehr import (
    coverage_view,
    decision_view,
    hook_request,
    post_hook,
    prefetch_as_ehr,
)
from sandbox.fhir_sandbox import SandboxServer, install, load_patients, npm_available, start
from sandbox.scenarios import Scenario, load_order, load_scenarios
from sandbox.service import ServiceProcess, start_service

SIGN = "prior-auth-order-sign"
SCENARIO: Scenario = next(s for s in load_scenarios() if s.name == "ra-criteria-met")
OTHER_DRUG = {
    "coding": [
        {
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
            "code": "314076",
            "display": "lisinopril 10 MG Oral Tablet",
        }
    ],
    "text": "lisinopril 10 mg tablet",
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    if not npm_available():
        pytest.skip("npm is not installed: the FHIR sandbox (sandbox/) cannot be installed")
    install()
    server = start()
    try:
        load_patients(server.base_url, [SCENARIO.bundle_path])
        yield server
    finally:
        server.stop()


def _service(sandbox: SandboxServer, workdir: Path, mode: str) -> ServiceProcess:
    return start_service(
        fhir_servers=[sandbox.base_url],
        database_url=f"sqlite:///{workdir / f'{mode}.sqlite'}",
        log_path=workdir / f"{mode}.log",
        workers=1,
        extra_env={"CDS_PREFETCH": mode},
    )


@pytest.fixture(scope="module")
def services(
    sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    workdir = tmp_path_factory.mktemp("minimal-prefetch")
    with _service(sandbox, workdir, "full") as full, _service(sandbox, workdir, "minimal") as small:
        yield {"full": full, "minimal": small}


def _discovery(service: ServiceProcess) -> dict[str, dict[str, Any]]:
    body = requests.get(service.discovery_url, timeout=30).json()
    return {s["id"]: s for s in body["services"]}


def _call(
    sandbox: SandboxServer, service: ServiceProcess, order: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """What `service` answers to an EHR that prefetches what it advertises and names the
    sandbox as its FHIR server, and the FHIR requests the service itself made."""
    templates = _discovery(service)[SIGN]["prefetch"]
    body = hook_request(SCENARIO, [order], fhir_server=sandbox.base_url)
    body["prefetch"] = prefetch_as_ehr(
        sandbox.base_url, templates, body["context"], SCENARIO.user_ids()
    )
    sandbox.clear_requests()
    response = post_hook(service.base_url, SIGN, body)
    assert response.status_code == 200, response.text[:500]
    paths = [str(r["path"]) for r in sandbox.requests_seen()]
    answer: dict[str, Any] = response.json()
    return answer, paths


def test_minimal_discovery_asks_only_for_what_every_call_needs(
    services: dict[str, ServiceProcess],
) -> None:
    minimal = {sid: set(s["prefetch"]) for sid, s in _discovery(services["minimal"]).items()}
    assert minimal == {
        "prior-auth-order-select": {"patient", "coverage"},
        "prior-auth-order-sign": {"patient", "coverage"},
        "prior-auth-order-dispatch": {"patient", "coverage", "medicationRequests"},
    }
    full = _discovery(services["full"])[SIGN]["prefetch"]
    assert {"conditions", "observations", "medicationStatements", "userRole"} <= set(full)


def test_a_policy_drug_order_is_queried_and_decided_as_with_full_prefetch(
    sandbox: SandboxServer, services: dict[str, ServiceProcess]
) -> None:
    full, full_reads = _call(sandbox, services["full"], load_order(SCENARIO))
    minimal, minimal_reads = _call(sandbox, services["minimal"], load_order(SCENARIO))

    (decision,) = decision_view(minimal)
    assert decision["outcome"] == SCENARIO.expected_outcome
    assert decision_view(minimal) == decision_view(full)
    assert coverage_view(minimal) == coverage_view(full)
    assert coverage_view(minimal), "the coverage-information action is sent"
    read = {p.strip("/").split("/")[1] for p in minimal_reads}  # /fhir/<type>[/<id>]
    assert {"Condition", "Observation", "MedicationStatement"} <= read
    assert "Patient" not in read  # prefetched
    assert full_reads == []  # the full prefetch held everything


def test_an_order_for_another_drug_reads_nothing_in_either_setting(
    sandbox: SandboxServer, services: dict[str, ServiceProcess]
) -> None:
    order = {**load_order(SCENARIO), "medicationCodeableConcept": OTHER_DRUG}
    for mode in ("minimal", "full"):
        answer, reads = _call(sandbox, services[mode], order)
        assert answer == {"cards": []}, mode
        assert reads == [], mode
