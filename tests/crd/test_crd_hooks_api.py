"""CRD configuration options, CRD version, per-hook rules, order-dispatch and both CDS Hooks
request shapes, through the service's HTTP API (Flask test client)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import responses
from flask.testing import FlaskClient

from cds_service.cards import COVERAGE_INFORMATION_URL, EVALUATION_EXTENSION_KEY
from cds_service.crd.types import KIND_TYPES
from tests.conftest import load_example

SIGN = "/cds-services/prior-auth-order-sign"
SELECT = "/cds-services/prior-auth-order-select"
DISPATCH = "/cds-services/prior-auth-order-dispatch"
BASE = "http://127.0.0.1:9999/fhir"
TOKEN = "dispatch-token"
SELECT_KINDS = {
    "combination",
    "duplicate",
    "hypersensitivity",
    "care_setting",
    "not_covered",
    "active_condition",
    "dose",
    "switch",
    "could_not_check",
}
"""The card kinds order-select can return (cds_service.cards.render: clinical cards and
could-not-check)."""


def post(client: FlaskClient, url: str, body: dict[str, Any]) -> Any:
    response = client.post(url, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:400]
    return response.get_json()


def configured(body: dict[str, Any], **options: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body.setdefault("extension", {})["davinci-crd.configuration"] = options
    return body


def without_ids(answer: Any) -> Any:
    """The answer with every uuid and coverage-assertion-id blanked (each call may draw new
    ones)."""
    if isinstance(answer, dict):
        if answer.get("url") == "coverage-assertion-id":
            return {**answer, "valueString": "-"}
        return {k: "-" if k == "uuid" else without_ids(v) for k, v in answer.items()}
    if isinstance(answer, list):
        return [without_ids(v) for v in answer]
    return answer


def coverage_parts(answer: Any) -> list[set[str]]:
    return [
        {part["url"] for part in ext["extension"]}
        for action in answer.get("systemActions", [])
        for ext in action["resource"].get("extension", [])
        if ext["url"] == COVERAGE_INFORMATION_URL
    ]


def types_of(answer: Any) -> list[str]:
    return [card["source"]["topic"]["code"] for card in answer["cards"]]


def outcomes(answer: Any) -> dict[str, str]:
    return {e["order"]: e["outcome"] for e in answer["extension"][EVALUATION_EXTENSION_KEY]}


# --- discovery ------------------------------------------------------------------------


def _services(client: FlaskClient) -> dict[str, Any]:
    body = client.get("/cds-services").get_json()
    return {s["hook"]: s for s in body["services"]}


def _options(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["code"]: o for o in service["extension"]["davinci-crd.configuration-options"]}


def test_discovery_advertises_a_boolean_option_for_every_card_type_a_hook_returns(
    client: FlaskClient,
) -> None:
    services = _services(client)
    returned = {
        "order-sign": set(KIND_TYPES.values()),
        "order-dispatch": set(KIND_TYPES.values()),
        "order-select": {KIND_TYPES[kind] for kind in SELECT_KINDS},
    }
    for hook, types in returned.items():
        options = _options(services[hook])
        assert types | {"coverage-info"} <= set(options), hook
        for option in options.values():
            assert option["type"] == "boolean"
            assert option["default"] is True
            assert option["name"]
            assert option["description"]


def test_discovery_says_which_versions_the_service_speaks(client: FlaskClient) -> None:
    for service in _services(client).values():
        assert service["extension"]["davinci-crd.version"] == ["2.2"]
        assert service["version"] == "STU3"
        assert "CDS Hooks 2.0.1 and 3.0.0-ballot" in service["usageRequirements"]


# --- configuration options ----------------------------------------------------------------


def test_no_configuration_gets_the_defaults(client: FlaskClient) -> None:
    body = load_example("order-sign-prefetch.json")
    plain = post(client, SIGN, body)
    assert plain["systemActions"]
    every_default = post(client, SIGN, configured(body, **{"coverage-info": True}))
    assert without_ids(every_default) == without_ids(plain)


def test_coverage_info_off_removes_the_system_action_and_brings_back_the_criteria_card(
    client: FlaskClient,
) -> None:
    body = load_example("order-sign-prefetch.json")
    plain = post(client, SIGN, body)
    # Criteria met: the coverage-information system action says it all; no card repeats it
    # (CRD resp-12) and no card is of type coverage-info (resp-25).
    assert plain["systemActions"]
    assert types_of(plain) == []
    off = post(client, SIGN, configured(body, **{"coverage-info": False}))
    assert "systemActions" not in off
    assert types_of(off) == ["guideline"]
    assert off["cards"][0]["summary"].startswith("Kineret meets the plan's criteria")
    # The decision is still recorded for the EHR's audit: only what is shown changes.
    assert outcomes(off) == outcomes(plain)


def _dose_over_body() -> dict[str, Any]:
    body = load_example("order-sign-prefetch.json")
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 300
    return body


def test_a_card_type_off_removes_only_that_type(client: FlaskClient) -> None:
    body = _dose_over_body()
    plain = post(client, SIGN, body)
    assert "limits" in types_of(plain)
    off = post(client, SIGN, configured(body, limits=False))
    assert types_of(off) == [t for t in types_of(plain) if t != "limits"]
    assert off["systemActions"]


def test_an_option_the_service_does_not_advertise_is_ignored(client: FlaskClient) -> None:
    body = load_example("order-sign-prefetch.json")
    plain = post(client, SIGN, body)
    unknown = post(client, SIGN, configured(body, cost=False, **{"max-cards": 5}))
    assert without_ids(unknown) == without_ids(plain)


@pytest.mark.parametrize(
    ("options", "pointer"),
    [
        ({"coverage-info": 0}, "/extension/davinci-crd.configuration/coverage-info"),
        ({"limits": 1}, "/extension/davinci-crd.configuration/limits"),
    ],
)
def test_an_advertised_option_of_the_wrong_type_is_refused(
    client: FlaskClient, options: dict[str, Any], pointer: str
) -> None:
    response = client.post(
        SIGN, json=configured(load_example("order-sign-prefetch.json"), **options)
    )
    assert response.status_code == 400
    error = response.get_json()
    assert error["error"] == "invalid-configuration"
    assert error["details"] == [{"pointer": pointer, "message": error["message"]}]
    assert "boolean" in error["message"]


@pytest.mark.parametrize("configuration", [["coverage-info"], "coverage-info=false", {"x": "no"}])
def test_a_configuration_that_is_not_an_object_of_booleans_and_integers_is_refused(
    client: FlaskClient, configuration: Any
) -> None:
    body = load_example("order-sign-prefetch.json")
    body["extension"] = {"davinci-crd.configuration": configuration}
    response = client.post(SIGN, json=body)
    assert response.status_code == 400
    assert response.get_json()["details"][0]["pointer"].startswith(
        "/extension/davinci-crd.configuration"
    )


@pytest.mark.parametrize(("version", "status"), [("2.2", 200), ("2.1", 400), ("3.0", 400)])
def test_requested_crd_version(client: FlaskClient, version: str, status: int) -> None:
    body = load_example("order-sign-prefetch.json")
    body["extension"] = {"davinci-crd.requestedVersion": version}
    response = client.post(SIGN, json=body)
    assert response.status_code == status
    if status == 400:
        assert response.get_json()["error"] == "unsupported-crd-version"


# --- per hook -------------------------------------------------------------------------


def _as_order_select(body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["hook"] = "order-select"
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    body["context"]["selections"] = [f"MedicationRequest/{order['id']}"]
    return body


def test_order_select_coverage_information_asks_for_no_documentation(
    client: FlaskClient,
) -> None:
    body = load_example("order-sign-prefetch.json")
    signed = post(client, SIGN, body)
    [sign_parts] = coverage_parts(signed)
    assert {"doc-needed", "doc-purpose"} <= sign_parts
    selected = post(client, SELECT, _as_order_select(body))
    [select_parts] = coverage_parts(selected)
    assert not select_parts & {"doc-needed", "doc-purpose", "reason"}
    assert {"coverage", "covered", "pa-needed", "coverage-assertion-id"} <= select_parts
    assert "coverage-info" not in types_of(selected)  # no documentation / criteria card


def test_order_select_indeterminate_keeps_a_reason_that_names_no_documentation(
    client: FlaskClient,
) -> None:
    body = load_example("order-sign-prefetch.json")
    del body["prefetch"]["userRole"]  # the prescriber's role cannot be read: indeterminate
    selected = post(client, SELECT, _as_order_select(body))
    [ci] = [
        ext
        for action in selected["systemActions"]
        for ext in action["resource"]["extension"]
        if ext["url"] == COVERAGE_INFORMATION_URL
    ]
    parts = {part["url"]: part for part in ci["extension"]}
    assert parts["covered"]["valueCode"] == "indeterminate"
    assert not parts.keys() & {"doc-needed", "doc-purpose"}
    reason = parts["reason"]["valueCodeableConcept"]  # crd-ci-q9: indeterminate has a reason
    assert [c["code"] for c in reason["coding"]] == ["technical"]
    signed = post(client, SIGN, body)
    [sign_reason] = [
        part["valueCodeableConcept"]["text"]
        for action in signed["systemActions"]
        for ext in action["resource"]["extension"]
        if ext["url"] == COVERAGE_INFORMATION_URL
        for part in ext["extension"]
        if part["url"] == "reason"
    ]
    assert "specialty" in sign_reason  # order-sign names the documentation ...
    assert "specialty" not in reason["text"]  # ... order-select does not (hook-19)


def test_order_select_configuration_off_leaves_nothing(client: FlaskClient) -> None:
    body = _as_order_select(_dose_over_body())
    assert post(client, SELECT, body)["cards"]
    off = configured(body, **{o: False for o in ("coverage-info", "limits")})
    answer = post(client, SELECT, off)
    assert answer["cards"] == []
    assert "systemActions" not in answer


# --- order-dispatch -------------------------------------------------------------------


def test_dispatched_order_is_evaluated_from_prefetch(client: FlaskClient) -> None:
    answer = post(client, DISPATCH, load_example("order-dispatch-prefetch.json"))
    # Prefetch alone cannot name the prescriber's roles at dispatch (the EHR's user is
    # whoever dispatches): the specialty is unknown, never assumed.
    [evaluation] = answer["extension"][EVALUATION_EXTENSION_KEY]
    assert evaluation["order"] == "MedicationRequest/rx-anakinra-1"
    assert evaluation["outcome"] == "documentation-needed"
    [parts] = coverage_parts(answer)
    assert {"doc-needed", "pa-needed"} <= parts
    [action] = answer["systemActions"]
    assert action["resource"]["id"] == "rx-anakinra-1"
    assert action["resource"]["status"] == "active"


def test_the_dispatching_user_is_not_taken_for_the_prescriber(client: FlaskClient) -> None:
    body = load_example("order-dispatch-prefetch.json")
    sign = load_example("order-sign-prefetch.json")
    # The dispatcher happens to be a rheumatologist whose role the EHR sends.
    body["context"]["userId"] = "PractitionerRole/prrole-rheum-1"
    body["prefetch"]["userRole"] = sign["prefetch"]["userRole"]
    for entry in body["prefetch"]["medicationRequests"]["entry"]:
        if entry["resource"]["id"] == "rx-anakinra-1":
            entry["resource"]["requester"] = {"reference": "Practitioner/someone-else"}
    answer = post(client, DISPATCH, body)
    assert outcomes(answer) == {"MedicationRequest/rx-anakinra-1": "documentation-needed"}


@pytest.fixture
def fhir() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def test_dispatched_order_read_from_the_fhir_server_gets_the_order_sign_decision(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    body = load_example("order-dispatch-prefetch.json")
    role = load_example("order-sign-prefetch.json")["prefetch"]["userRole"]
    orders = body["prefetch"].pop("medicationRequests")
    body["fhirServer"] = BASE
    body["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer"}
    fhir.add(responses.GET, re.compile(re.escape(f"{BASE}/MedicationRequest?")), json=orders)
    fhir.add(responses.GET, f"{BASE}/PractitionerRole/prrole-rheum-1", json=role)
    fhir.add(
        responses.GET,
        re.compile(re.escape(f"{BASE}/PractitionerRole?")),
        json={"resourceType": "Bundle", "type": "searchset", "entry": []},
    )
    answer = post(client, DISPATCH, body)
    signed = post(client, SIGN, load_example("order-sign-prefetch.json"))
    assert list(outcomes(answer).values()) == list(outcomes(signed).values()) == ["criteria-met"]
    sent = [call.request for call in fhir.calls]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in sent)
    # The orders are read once, though two steps of the call use them.
    assert sum("/MedicationRequest?" in str(r.url) for r in sent) == 1


def test_a_dispatched_order_that_cannot_be_found_gets_a_could_not_check_card(
    client: FlaskClient,
) -> None:
    body = load_example("order-dispatch-prefetch.json")
    body["context"]["dispatchedOrders"] = ["MedicationRequest/not-in-the-chart"]
    answer = post(client, DISPATCH, body)
    [card] = answer["cards"]
    assert card["indicator"] == "warning"
    assert card["extension"]["davinci-crd.associated-resource"] == [
        {"reference": "MedicationRequest/not-in-the-chart"}
    ]
    assert "not among the patient's medication orders" in card["detail"]
    assert outcomes(answer) == {"MedicationRequest/not-in-the-chart": "not-evaluated"}


def test_dispatch_of_orders_that_are_not_medication_requests_has_no_cards(
    client: FlaskClient,
) -> None:
    body = load_example("order-dispatch-prefetch.json")
    body["context"]["dispatchedOrders"] = ["ServiceRequest/lab-1"]
    assert post(client, DISPATCH, body) == {"cards": []}


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        (lambda c: c.pop("dispatchedOrders"), "/context/dispatchedOrders"),
        (lambda c: c.update(dispatchedOrders=[]), "/context/dispatchedOrders"),
        (lambda c: c.update(dispatchedOrders=["rx-anakinra-1"]), "/context/dispatchedOrders/0"),
        (lambda c: c.pop("performer"), "/context/performer"),
        (lambda c: c.update(performer="the pharmacy"), "/context/performer"),
        (lambda c: c.update(fulfillmentTasks=[{"resourceType": "Patient"}]), "/context/"),
        (lambda c: c.pop("patientId"), "/context/patientId"),
    ],
)
def test_bad_order_dispatch_context_is_a_400(
    client: FlaskClient, change: Any, pointer: str
) -> None:
    body = load_example("order-dispatch-prefetch.json")
    change(body["context"])
    response = client.post(DISPATCH, json=body)
    assert response.status_code == 400
    error = response.get_json()
    assert error["error"] == "invalid-request"
    assert any(d["pointer"].startswith(pointer) for d in error["details"])


def test_order_sign_request_to_the_dispatch_service_is_refused(client: FlaskClient) -> None:
    response = client.post(DISPATCH, json=load_example("order-sign-prefetch.json"))
    assert response.status_code == 400
    assert response.get_json()["error"] == "wrong-hook"


def test_dispatch_with_fulfillment_tasks_and_coverage_info_off(client: FlaskClient) -> None:
    body = load_example("order-dispatch-prefetch.json")
    body["context"]["fulfillmentTasks"] = [
        {
            "resourceType": "Task",
            "status": "draft",
            "intent": "order",
            "focus": {"reference": "MedicationRequest/rx-anakinra-1"},
        }
    ]
    answer = post(client, DISPATCH, configured(body, **{"coverage-info": False}))
    assert "systemActions" not in answer
    # The documentation card asks for documentation (appropriate-use), it is not coverage
    # information, so switching coverage information off leaves it.
    assert types_of(answer) == ["appropriate-use"]


# --- CDS Hooks 2.0.1 and 3.0.0-ballot request shapes ----------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(
            {
                "access_token": TOKEN,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "user/Patient.read user/Observation.read user/MedicationRequest.read",
                "subject": "cds-service",
            },
            id="2.0.1-smart-v1-scopes",
        ),
        pytest.param(
            {
                "access_token": TOKEN,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/Patient.rs patient/Observation.rs patient/MedicationRequest.rs",
                "subject": "cds-service",
                "patient": "pt-ra-1001",
            },
            id="3.0.0-ballot-smart-v2-scopes-and-patient",
        ),
    ],
)
def test_both_cds_hooks_request_shapes_get_the_same_answer(
    client: FlaskClient, fhir: responses.RequestsMock, authorization: dict[str, Any]
) -> None:
    body = load_example("order-sign-prefetch.json")
    plain = post(client, SIGN, body)
    body["fhirServer"] = BASE
    body["fhirAuthorization"] = authorization
    allergies = body["prefetch"].pop("allergies")
    fhir.add(responses.GET, re.compile(re.escape(f"{BASE}/AllergyIntolerance?")), json=allergies)
    answer = post(client, SIGN, body)
    assert without_ids(answer) == without_ids(plain)
    [read] = [call.request for call in fhir.calls]
    assert read.headers["Authorization"] == f"Bearer {TOKEN}"
