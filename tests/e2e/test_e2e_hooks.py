"""Our running service (gunicorn) called over HTTP for every synthetic patient of the sandbox.

Two ways an EHR may call it, which must give the same decision:
- prefetch: the test plays the EHR, runs the discovery document's prefetch templates against
  the FHIR sandbox and sends the results (no `fhirServer`: the service must manage with them);
- FHIR server: no prefetch, `fhirServer` = a sandbox that answers 401 without the bearer
  token given in `fhirAuthorization`, so the service can only decide by sending it.
Each decision must also be the one `sandbox/patients/scenarios.json` records.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from sandbox.ehr import (
    card_view,
    coverage_view,
    decision_view,
    evaluations,
    hook_request,
    post_hook,
    prefetch_as_ehr,
    suggestion_labels,
    with_status,
)
from sandbox.fhir_sandbox import SandboxServer
from sandbox.scenarios import load_order, load_scenarios
from tests.answers import answered_orders

SIGN = "prior-auth-order-sign"
SELECT = "prior-auth-order-select"
TIMEOUT = 60
SCENARIOS = {scenario.name: scenario for scenario in load_scenarios()}
NAMES = list(SCENARIOS)


def draft_order(name: str) -> dict[str, Any]:
    """A fresh copy of scenario `name`'s draft anakinra MedicationRequest."""
    return load_order(SCENARIOS[name])


def answer(base_url: str, service: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = post_hook(base_url, service, body)
    assert resp.status_code == 200, resp.text[:500]
    result: dict[str, Any] = resp.json()
    return result


class Calls:
    """Each patient's order-sign answer in each mode, computed once per module."""

    def __init__(
        self,
        service_url: str,
        templates: dict[str, str],
        ehr_sandbox: SandboxServer,
        token_sandbox: tuple[SandboxServer, str],
    ) -> None:
        self.service_url = service_url
        self.templates = templates
        self.ehr_sandbox = ehr_sandbox
        self.token_sandbox, self.token = token_sandbox
        self._prefetch: dict[str, dict[str, Any]] = {}
        self._server: dict[str, dict[str, Any]] = {}
        self.server_requests: dict[str, list[dict[str, Any]]] = {}

    def prefetch_mode(self, name: str) -> dict[str, Any]:
        if name not in self._prefetch:
            scenario = SCENARIOS[name]
            body = hook_request(scenario, [draft_order(name)])
            body["prefetch"] = prefetch_as_ehr(
                self.ehr_sandbox.base_url, self.templates, body["context"], scenario.user_ids()
            )
            self._prefetch[name] = answer(self.service_url, SIGN, body)
        return self._prefetch[name]

    def server_mode(self, name: str) -> dict[str, Any]:
        if name not in self._server:
            body = hook_request(
                SCENARIOS[name],
                [draft_order(name)],
                fhir_server=self.token_sandbox.base_url,
                access_token=self.token,
            )
            self.token_sandbox.clear_requests()
            self._server[name] = answer(self.service_url, SIGN, body)
            self.server_requests[name] = self.token_sandbox.requests_seen()
        return self._server[name]


@pytest.fixture(scope="module")
def discovery(cds_service_url: str) -> dict[str, Any]:
    resp = requests.get(f"{cds_service_url}/cds-services", timeout=TIMEOUT)
    assert resp.status_code == 200
    body: dict[str, Any] = resp.json()
    return body


@pytest.fixture(scope="module")
def sign_templates(discovery: dict[str, Any]) -> dict[str, str]:
    (service,) = [s for s in discovery["services"] if s["id"] == SIGN]
    templates: dict[str, str] = service["prefetch"]
    return templates


@pytest.fixture(scope="module")
def calls(
    cds_service_url: str,
    sign_templates: dict[str, str],
    fhir_sandbox: SandboxServer,
    fhir_sandbox_with_token: tuple[SandboxServer, str],
) -> Calls:
    return Calls(cds_service_url, sign_templates, fhir_sandbox, fhir_sandbox_with_token)


def test_discovery_announces_both_order_hooks(discovery: dict[str, Any]) -> None:
    hooks = {s["id"]: s["hook"] for s in discovery["services"]}
    assert hooks == {
        SIGN: "order-sign",
        SELECT: "order-select",
        "prior-auth-order-dispatch": "order-dispatch",
    }
    for service in discovery["services"]:
        assert {"patient", "medicationRequests"} <= set(service["prefetch"])


@pytest.mark.parametrize("name", NAMES)
def test_prefetch_mode_gives_the_expected_decision(calls: Calls, name: str) -> None:
    scenario = SCENARIOS[name]
    response = calls.prefetch_mode(name)
    (decision,) = decision_view(response)
    assert decision["order"] == f"MedicationRequest/{draft_order(name)['id']}"
    assert decision["outcome"] == scenario.expected_outcome
    assert with_status(decision, "not-met") == scenario.expected_not_met
    assert with_status(decision, "unknown") == scenario.expected_unknown
    # A card about the order, or (criteria met) the coverage information attached to it.
    assert decision["order"] in answered_orders(response), "an evaluated order is answered"


@pytest.mark.parametrize("name", NAMES)
def test_fhir_server_mode_gives_the_expected_decision(calls: Calls, name: str) -> None:
    scenario = SCENARIOS[name]
    response = calls.server_mode(name)
    (decision,) = decision_view(response)
    assert decision["outcome"] == scenario.expected_outcome
    assert with_status(decision, "not-met") == scenario.expected_not_met
    assert with_status(decision, "unknown") == scenario.expected_unknown
    assert decision["order"] in answered_orders(response)


@pytest.mark.parametrize("name", NAMES)
def test_the_service_reads_the_fhir_server_with_the_bearer_token(calls: Calls, name: str) -> None:
    calls.server_mode(name)
    seen = calls.server_requests[name]
    paths = {r["path"] for r in seen}
    assert f"/fhir/Patient/{SCENARIOS[name].patient_id}" in paths
    assert "/fhir/MedicationRequest" in paths
    assert [r for r in seen if not r["had_bearer"] or r["status"] != 200] == []


@pytest.mark.parametrize("name", NAMES)
def test_both_modes_give_the_same_decision_and_cards(calls: Calls, name: str) -> None:
    with_prefetch, from_server = calls.prefetch_mode(name), calls.server_mode(name)
    assert decision_view(from_server) == decision_view(with_prefetch)
    assert card_view(from_server) == card_view(with_prefetch)
    assert coverage_view(from_server) == coverage_view(with_prefetch)
    assert coverage_view(with_prefetch), "every evaluated order gets coverage information"
    labels = [suggestion_labels(card) for card in with_prefetch["cards"]]
    assert [suggestion_labels(card) for card in from_server["cards"]] == labels


@pytest.mark.parametrize("mode", ["prefetch", "fhir-server"])
def test_a_user_known_as_practitioner_only_gets_the_same_decision(calls: Calls, mode: str) -> None:
    """`context.userId` = Practitioner/<id>: the EHR cannot fill `{{userPractitionerRoleId}}`
    and leaves that template out; the prescriber's roles come from the practitioner search."""
    name = "ra-criteria-met"
    scenario = SCENARIOS[name]
    user = f"Practitioner/{scenario.practitioner_id}"
    if mode == "prefetch":
        body = hook_request(scenario, [draft_order(name)], user_id=user)
        prefetch = prefetch_as_ehr(
            calls.ehr_sandbox.base_url, calls.templates, body["context"], user_ids={}
        )
        assert "userRole" not in prefetch
        assert prefetch["userRoles"]["entry"][0]["resource"]["id"] == scenario.role_id
        body["prefetch"] = prefetch
    else:
        body = hook_request(
            scenario,
            [draft_order(name)],
            user_id=user,
            fhir_server=calls.token_sandbox.base_url,
            access_token=calls.token,
        )
    response = answer(calls.service_url, SIGN, body)
    assert decision_view(response) == decision_view(calls.prefetch_mode(name))
    assert card_view(response) == card_view(calls.prefetch_mode(name))


def test_without_the_token_the_fhir_server_refuses_and_the_card_says_so(
    cds_service_url: str, fhir_sandbox_with_token: tuple[SandboxServer, str]
) -> None:
    """The record cannot be read (401): the prescriber gets a card saying so, and the
    evaluation names the data (issue 12; this call was a bare 412 before)."""
    sandbox, _ = fhir_sandbox_with_token
    name = "ra-criteria-met"
    order = draft_order(name)
    body = hook_request(SCENARIOS[name], [order], fhir_server=sandbox.base_url)
    sandbox.clear_requests()
    resp = post_hook(cds_service_url, SIGN, body)
    assert resp.status_code == 200
    response = resp.json()
    [card] = response["cards"]
    assert card["indicator"] == "warning"
    assert "could not be read from the EHR" in card["detail"]
    assert "401" in card["detail"]
    [evaluation] = evaluations(response)
    assert evaluation["order"] == f"MedicationRequest/{order['id']}"
    assert evaluation["outcome"] == "not-evaluated"
    required = {m["prefetchKey"] for m in evaluation["missingData"] if m.get("required")}
    assert required == {"patient", "medicationRequests"}
    seen = sandbox.requests_seen()
    assert seen
    assert {(r["had_bearer"], r["status"]) for r in seen} == {(False, 401)}


def test_medications_the_records_refer_to_are_read_by_reference(
    calls: Calls, fhir_sandbox_with_token: tuple[SandboxServer, str]
) -> None:
    """An EHR whose medication search did not include the Medications it refers to: the
    service reads `Medication/<id>` itself (with the token) and reaches the decision the
    complete record gives (the current Kineret order puts the request on the continued
    pathway)."""
    sandbox, token = fhir_sandbox_with_token
    name = "ra-continued-improving"
    scenario = SCENARIOS[name]
    body = hook_request(
        scenario, [draft_order(name)], fhir_server=sandbox.base_url, access_token=token
    )
    prefetch = prefetch_as_ehr(
        calls.ehr_sandbox.base_url, calls.templates, body["context"], scenario.user_ids()
    )
    for value in prefetch.values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            value["entry"] = [
                e
                for e in value.get("entry", [])
                if e.get("resource", {}).get("resourceType") != "Medication"
            ]
    body["prefetch"] = prefetch
    sandbox.clear_requests()
    response = answer(calls.service_url, SIGN, body)
    seen = sandbox.requests_seen()
    reads = [r for r in seen if "/Medication/" in r["path"]]
    assert reads, seen
    assert all(r["had_bearer"] and r["status"] == 200 for r in reads)
    expected = calls.prefetch_mode(name)
    assert decision_view(response) == decision_view(expected)
    assert decision_view(response)[0]["pathway"] == "continued"


def test_order_select_shows_the_combination_warning_early(
    cds_service_url: str, fhir_sandbox_with_token: tuple[SandboxServer, str]
) -> None:
    sandbox, token = fhir_sandbox_with_token
    name = "ra-active-adalimumab"
    order = draft_order(name)
    body = hook_request(
        SCENARIOS[name],
        [order],
        hook="order-select",
        fhir_server=sandbox.base_url,
        access_token=token,
        selections=[f"MedicationRequest/{order['id']}"],
    )
    response = answer(cds_service_url, SELECT, body)
    (decision,) = decision_view(response)
    assert decision["outcome"] == "criteria-not-met"
    assert with_status(decision, "not-met") == {"I.A.7", "III.B"}
    [(indicator, summary)] = card_view(response)
    assert indicator == "critical"
    assert "adalimumab" in summary


def test_an_order_for_another_drug_gets_no_card(
    cds_service_url: str, fhir_sandbox_with_token: tuple[SandboxServer, str]
) -> None:
    sandbox, token = fhir_sandbox_with_token
    name = "ra-criteria-met"
    order = draft_order(name)
    order["id"] = "draft-methotrexate"
    order["medicationCodeableConcept"] = {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "6851",
                "display": "methotrexate",
            }
        ],
        "text": "Methotrexate 2.5 mg tablet",
    }
    body = hook_request(SCENARIOS[name], [order], fhir_server=sandbox.base_url, access_token=token)
    response = answer(cds_service_url, SIGN, body)
    assert response["cards"] == []
    assert evaluations(response) == []
    assert "systemActions" not in response


@pytest.mark.parametrize(
    ("name", "substance"),
    [("ra-hypersensitivity-ecoli", "E. coli"), ("ra-hypersensitivity-anakinra", "anakinra")],
)
def test_the_hypersensitivity_card_names_the_substance(
    calls: Calls, name: str, substance: str
) -> None:
    (critical,) = [c for c in calls.server_mode(name)["cards"] if c["indicator"] == "critical"]
    assert substance.lower() in critical["summary"].lower()
    assert " ." not in critical["summary"]
