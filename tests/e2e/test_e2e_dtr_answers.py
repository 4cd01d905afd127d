"""Answering the documentation template and signing again, through both data paths, on our
running service (gunicorn) and the real FHIR sandbox:
- prefetch: the EHR sends the completed QuestionnaireResponse in `questionnaireResponses`
  with the rest of the chart it read for the discovery templates;
- FHIR server: the response is stored on the (token-protected) sandbox and the service reads
  it there, with the rest of the chart.
Answering the open items the policy's way makes the order criteria-met; a wrong answer (a
trial dated in the future) never does."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import requests

from sandbox.ehr import decision_view, hook_request, post_hook, prefetch_as_ehr
from sandbox.fhir_sandbox import SandboxServer
from sandbox.scenarios import Scenario, load_all_scenarios, load_order
from tests.dtr.answer_sets import COMPLETIONS, ra_trial_and_score
from tests.dtr.package_helpers import PACKAGE, answered, server_request

SIGN = "prior-auth-order-sign"
TIMEOUT = 60
SCENARIOS = {s.name: s for s in load_all_scenarios()}


@pytest.fixture(scope="module")
def templates(cds_service_url: str) -> dict[str, str]:
    discovery = requests.get(f"{cds_service_url}/cds-services", timeout=TIMEOUT).json()
    (service,) = [s for s in discovery["services"] if s["id"] == SIGN]
    found: dict[str, str] = service["prefetch"]
    assert "questionnaireResponses" in found
    return found


def _package(
    service: str, sandbox: SandboxServer, token: str, scenario: Scenario
) -> dict[str, Any]:
    body = server_request(
        load_order(scenario), sandbox.base_url, token, f"PractitionerRole/{scenario.role_id}"
    )
    resp = requests.post(f"{service}{PACKAGE}", json=body, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text[:500]
    answer: dict[str, Any] = resp.json()
    return answer


def _outcome(response: Mapping[str, Any]) -> dict[str, Any]:
    (decision,) = decision_view(response)
    return decision


def sign_with_prefetch(
    service: str,
    ehr: SandboxServer,
    templates: dict[str, str],
    scenario: Scenario,
    qr: dict[str, Any],
) -> dict[str, Any]:
    body = hook_request(scenario, [load_order(scenario)])
    prefetch = prefetch_as_ehr(ehr.base_url, templates, body["context"], scenario.user_ids())
    prefetch["questionnaireResponses"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [{"resource": qr}],
    }
    body["prefetch"] = prefetch
    resp = post_hook(service, SIGN, body)
    assert resp.status_code == 200, resp.text[:500]
    answer: dict[str, Any] = resp.json()
    return answer


@pytest.fixture
def stored(fhir_sandbox_with_token: tuple[SandboxServer, str]) -> Iterator[list[str]]:
    """Responses stored on the token sandbox during a test, deleted after it (the sandbox is
    shared by the whole session)."""
    sandbox, token = fhir_sandbox_with_token
    ids: list[str] = []
    yield ids
    for qr_id in ids:
        requests.delete(
            f"{sandbox.base_url}/QuestionnaireResponse/{qr_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )


def sign_with_server(
    service: str,
    sandbox: SandboxServer,
    token: str,
    scenario: Scenario,
    qr: dict[str, Any],
    stored: list[str],
) -> dict[str, Any]:
    resp = requests.put(
        f"{sandbox.base_url}/QuestionnaireResponse/{qr['id']}",
        json=qr,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        timeout=TIMEOUT,
    )
    assert resp.status_code in (200, 201), resp.text[:300]
    stored.append(qr["id"])
    body = hook_request(
        scenario, [load_order(scenario)], fhir_server=sandbox.base_url, access_token=token
    )
    answer = post_hook(service, SIGN, body)
    assert answer.status_code == 200, answer.text[:500]
    result: dict[str, Any] = answer.json()
    return result


@pytest.mark.parametrize("name", sorted(COMPLETIONS))
def test_answered_open_items_make_the_order_criteria_met(
    cds_service_url: str,
    fhir_sandbox: SandboxServer,
    fhir_sandbox_with_token: tuple[SandboxServer, str],
    templates: dict[str, str],
    stored: list[str],
    name: str,
) -> None:
    scenario = SCENARIOS[name]
    sandbox, token = fhir_sandbox_with_token
    package = _package(cds_service_url, sandbox, token, scenario)
    qr = answered(package, COMPLETIONS[name](package))
    qr["id"] = f"dtr-e2e-{name}"[:64]

    by_prefetch = _outcome(
        sign_with_prefetch(cds_service_url, fhir_sandbox, templates, scenario, qr)
    )
    assert by_prefetch["outcome"] == "criteria-met", by_prefetch["criteria"]

    by_server = _outcome(sign_with_server(cds_service_url, sandbox, token, scenario, qr, stored))
    assert by_server == by_prefetch


def test_a_wrong_answer_never_gives_criteria_met(
    cds_service_url: str,
    fhir_sandbox: SandboxServer,
    fhir_sandbox_with_token: tuple[SandboxServer, str],
    templates: dict[str, str],
    stored: list[str],
) -> None:
    scenario = SCENARIOS["ra-documentation-needed"]
    sandbox, token = fhir_sandbox_with_token
    package = _package(cds_service_url, sandbox, token, scenario)
    qr = answered(package, ra_trial_and_score(package, start="2099-01-01"))
    qr["id"] = "dtr-e2e-future-trial"
    for decision in (
        _outcome(sign_with_prefetch(cds_service_url, fhir_sandbox, templates, scenario, qr)),
        _outcome(sign_with_server(cds_service_url, sandbox, token, scenario, qr, stored)),
    ):
        assert decision["outcome"] == "documentation-needed"
        assert decision["criteria"]["I.A.4"] == "unknown"  # the remaining gap
        assert decision["criteria"]["I.A.6"] == "met"  # the good answer counts
