"""`$questionnaire-package` on our running service (gunicorn), the chart read from the real FHIR
sandbox exactly as an order-sign call reads it (`fhirServer` + `fhirAuthorization`): for every
synthetic patient whose order needs documentation, the package's open items are the criteria the
documentation-needed card lists for that order."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from cds_service.policy.packs import default_registry
from sandbox.ehr import hook_request, post_hook
from sandbox.fhir_sandbox import SandboxServer
from sandbox.scenarios import Scenario, load_all_scenarios, load_order
from tests.dtr.package_helpers import PACKAGE, open_of, server_request, unknown_criteria

SIGN = "prior-auth-order-sign"
TIMEOUT = 60
DOC_NEEDED = [s for s in load_all_scenarios() if s.expected_outcome == "documentation-needed"]
TEXTS = {p.id: p.card_texts for p in default_registry().packs.values()}


def _hook(service: str, sandbox: str, token: str, scenario: Scenario) -> dict[str, Any]:
    body = hook_request(scenario, [load_order(scenario)], fhir_server=sandbox, access_token=token)
    resp = post_hook(service, SIGN, body)
    assert resp.status_code == 200, resp.text[:500]
    answer: dict[str, Any] = resp.json()
    return answer


def _package(service: str, sandbox: str, token: str, scenario: Scenario) -> dict[str, Any]:
    body = server_request(
        load_order(scenario), sandbox, token, f"PractitionerRole/{scenario.role_id}"
    )
    resp = requests.post(f"{service}{PACKAGE}", json=body, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text[:500]
    answer: dict[str, Any] = resp.json()
    return answer


@pytest.mark.parametrize("scenario", DOC_NEEDED, ids=lambda s: s.name)
def test_package_open_items_are_the_cards_items(
    cds_service_url: str, fhir_sandbox_with_token: tuple[SandboxServer, str], scenario: Scenario
) -> None:
    sandbox, token = fhir_sandbox_with_token
    hook = _hook(cds_service_url, sandbox.base_url, token, scenario)
    listed = unknown_criteria(hook)
    assert listed, "the card lists something to document"
    (card,) = [c for c in hook["cards"] if "PA needed" in c["summary"]]
    package = _package(cds_service_url, sandbox.base_url, token, scenario)
    assert sorted(open_of(package)) == listed
    questionnaire_id = next(
        e["resource"]["id"]
        for e in package["parameter"][0]["resource"]["entry"]
        if e["resource"]["resourceType"] == "Questionnaire"
    )
    texts = TEXTS[questionnaire_id]
    for criterion in listed:
        label = texts.label(criterion, "")
        assert label[1:] in card["detail"], f"{criterion}: the card names it"


def test_a_token_the_sandbox_refuses_gives_no_package(
    cds_service_url: str, fhir_sandbox_with_token: tuple[SandboxServer, str]
) -> None:
    sandbox, _ = fhir_sandbox_with_token
    scenario = DOC_NEEDED[0]
    body = server_request(load_order(scenario), sandbox.base_url, "wrong-token")
    resp = requests.post(f"{cds_service_url}{PACKAGE}", json=body, timeout=TIMEOUT)
    assert resp.status_code == 422
    outcome = resp.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "could not be read" in outcome["issue"][0]["diagnostics"]
