"""When the data is bad or the FHIR server misbehaves, the prescriber still hears about the order.

The real pipeline runs here (nothing is patched): every failure ends in an answer whose cards
cover the Kineret order (when the patient's record cannot be read, a card saying what could not
be read; issue 12: that was a bare 412 before) — never `{"cards": []}`, which an EHR shows as
"no prior authorization issue", and never a stack trace.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import requests
import responses
from flask import Flask
from flask.testing import FlaskClient

from tests.answers import answered_orders, covered
from tests.conftest import load_example

SIGN = "/cds-services/anakinra-order-sign"
SELECT = "/cds-services/anakinra-order-select"
BASE = "http://127.0.0.1:9999/fhir"
DRAFT = "MedicationRequest/draft-anakinra-1"


@pytest.fixture
def fhir() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def assert_order_is_answered(response: Any, order: str = DRAFT) -> dict[str, Any]:
    """A card about the order, or (criteria met) the coverage information attached to it: an
    empty answer reads as 'no prior authorization issue'."""
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    answer: dict[str, Any] = response.get_json()
    assert order in answered_orders(answer), (
        "an empty answer reads as 'no prior authorization issue'"
    )
    return answer


FAILURES: dict[str, dict[str, Any]] = {
    "down": {"body": requests.exceptions.ConnectionError("refused")},
    "slow": {"body": requests.exceptions.ReadTimeout("slow")},
    "401": {"status": 401, "json": {"resourceType": "OperationOutcome"}},
    "403": {"status": 403, "json": {"resourceType": "OperationOutcome"}},
    "500": {"status": 500, "body": "boom"},
    "html": {"status": 200, "body": "<html>login</html>", "content_type": "text/html"},
    "truncated-json": {"status": 200, "body": '{"resourceType": "Bundle", "entry": [{"reso'},
    "operation-outcome": {
        "status": 200,
        "json": {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]},
    },
}


def from_server(body: dict[str, Any], *drop: str) -> dict[str, Any]:
    body["fhirServer"] = BASE
    for key in drop:
        del body["prefetch"][key]
    return body


@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
def test_optional_data_the_server_cannot_give_still_gets_a_card(
    client: FlaskClient, fhir: responses.RequestsMock, failure: str
) -> None:
    body = from_server(load_example("order-sign-prefetch.json"), "conditions", "observations")
    fhir.get(re.compile(re.escape(BASE) + "/(Condition|Observation).*"), **FAILURES[failure])
    answer = assert_order_is_answered(client.post(SIGN, json=body))
    # Without diagnoses and scores the order cannot be approved as sent.
    assert "meets the plan's criteria" not in answer["cards"][0]["summary"]


@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
def test_required_data_the_server_cannot_give_gets_a_card_saying_so(
    client: FlaskClient, fhir: responses.RequestsMock, failure: str
) -> None:
    body = from_server(load_example("order-sign-prefetch.json"), "medicationRequests")
    fhir.get(re.compile(re.escape(BASE) + "/MedicationRequest.*"), **FAILURES[failure])
    answer = assert_order_is_answered(client.post(SIGN, json=body))
    [card] = answer["cards"]
    assert "could not be read from the EHR" in card["detail"]
    assert "(MedicationRequest)" in card["detail"]
    [evaluation] = answer["extension"]["com.anakinra-cds.evaluation"]
    assert evaluation["outcome"] == "not-evaluated"
    assert [m["prefetchKey"] for m in evaluation["missingData"]] == ["medicationRequests"]


def test_operation_outcome_in_prefetch_without_a_server(client: FlaskClient) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
    body = load_example("order-sign-prefetch.json")
    body["prefetch"]["conditions"] = outcome
    assert_order_is_answered(client.post(SIGN, json=body))
    body["prefetch"]["patient"] = outcome
    answer = assert_order_is_answered(client.post(SIGN, json=body))
    [evaluation] = answer["extension"]["com.anakinra-cds.evaluation"]
    assert evaluation["outcome"] == "not-evaluated"
    assert {m["prefetchKey"] for m in evaluation["missingData"]} == {"patient", "conditions"}


def test_duplicate_resources_do_not_change_the_answer(make_app: Callable[..., Flask]) -> None:
    body = load_example("order-sign-prefetch.json")
    plain = make_app().test_client().post(SIGN, json=body).get_json()
    doubled = copy.deepcopy(body)
    for key in ("conditions", "medicationRequests", "observations"):
        bundle = doubled["prefetch"][key]
        bundle["entry"] = bundle["entry"] + copy.deepcopy(bundle["entry"])
    doubled["prefetch"]["medicationStatements"]["entry"] += copy.deepcopy(
        body["prefetch"]["medicationRequests"]["entry"]
    )
    again = make_app().test_client().post(SIGN, json=doubled).get_json()
    assert again == plain


class HangingClient:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.returned = threading.Event()

    def get(self, url: str, headers: Any, timeout: Any, deadline: float, max_bytes: int) -> Any:
        self.release.wait(timeout=30)
        self.returned.set()
        return {"resourceType": "Bundle", "type": "searchset"}

    def close(self) -> None:
        pass


def test_a_hanging_server_still_gets_an_answer_within_the_deadline(
    make_app: Callable[..., Flask],
) -> None:
    hanging = HangingClient()
    app = make_app(CDS_REQUEST_DEADLINE=0.2, FHIR_CLIENT_FACTORY=lambda: hanging)
    body = from_server(load_example("order-sign-prefetch.json"), "conditions")
    try:
        response = app.test_client().post(SIGN, json=body)
        before_release = not hanging.returned.is_set()
    finally:
        hanging.release.set()
    assert before_release
    assert_order_is_answered(response)


# --- orders whose drug is not in the data -------------------------------------------


def by_reference(body: dict[str, Any], reference: Mapping[str, Any]) -> dict[str, Any]:
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    del order["medicationCodeableConcept"]
    order["medicationReference"] = dict(reference)
    return body


KINERET = {
    "resourceType": "Medication",
    "id": "med-kineret",
    "code": {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "727711"}]
    },
}


def test_reference_to_an_absent_medication_gets_a_could_not_check_card(
    client: FlaskClient,
) -> None:
    body = by_reference(load_example("order-sign-prefetch.json"), {"reference": "Medication/x"})
    answer = assert_order_is_answered(client.post(SIGN, json=body))
    (card,) = answer["cards"]
    assert card["summary"].startswith("Could not check this order")
    assert "could not be identified" in card["detail"]


def test_absent_medication_is_read_from_the_server_and_the_order_evaluated(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    body = by_reference(
        from_server(load_example("order-sign-prefetch.json")),
        {"reference": "Medication/med-kineret"},
    )
    fhir.get(f"{BASE}/Medication/med-kineret", json=KINERET)
    answer = assert_order_is_answered(client.post(SIGN, json=body))
    assert [c.request.url for c in fhir.calls] == [f"{BASE}/Medication/med-kineret"]
    assert covered(answer, DRAFT) == "covered"  # criteria met: the coverage information says so


def test_unreadable_medication_on_the_server_still_gets_a_card(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    body = by_reference(
        from_server(load_example("order-sign-prefetch.json")), {"reference": "Medication/gone"}
    )
    fhir.get(f"{BASE}/Medication/gone", status=404, json={"resourceType": "OperationOutcome"})
    answer = assert_order_is_answered(client.post(SIGN, json=body))
    assert answer["cards"][0]["summary"].startswith("Could not check this order")


def test_medication_sent_in_prefetch_is_used(client: FlaskClient) -> None:
    body = by_reference(
        load_example("order-sign-prefetch.json"), {"reference": "Medication/med-kineret"}
    )
    body["prefetch"]["medicationRequests"]["entry"].append({"resource": KINERET})
    answer = assert_order_is_answered(client.post(SIGN, json=body))
    assert covered(answer, DRAFT) == "covered"  # criteria met: the coverage information says so


def test_absent_medication_named_as_another_drug_is_left_alone(client: FlaskClient) -> None:
    body = by_reference(
        load_example("order-sign-prefetch.json"),
        {"reference": "Medication/y", "display": "methotrexate 2.5 MG Oral Tablet"},
    )
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


# --- calls with nothing to check ----------------------------------------------------


def other_drug(body: dict[str, Any], concept: Mapping[str, Any]) -> dict[str, Any]:
    body["context"]["draftOrders"]["entry"][0]["resource"]["medicationCodeableConcept"] = dict(
        concept
    )
    return body


@pytest.mark.parametrize(
    "concept",
    [
        {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6851"}]},
        {"text": "lisinopril 10 mg tablet"},
        {"coding": [{"system": "urn:local-formulary", "code": "ERX-5521", "display": "Lasix"}]},
    ],
)
def test_orders_recognisably_not_anakinra_are_skipped_before_any_fetch(
    client: FlaskClient, fhir: responses.RequestsMock, concept: Mapping[str, Any]
) -> None:
    body = from_server(
        other_drug(load_example("order-sign-prefetch.json"), concept), "patient", "conditions"
    )
    trap = fhir.get(re.compile(".*"), json={})
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}
    assert trap.call_count == 0


def test_contained_medication_decides_without_fetching(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    body = by_reference(
        from_server(load_example("order-sign-prefetch.json"), "patient"), {"reference": "#m"}
    )
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    order["contained"] = [{"resourceType": "Medication", "id": "m", "code": {"text": "Humira"}}]
    trap = fhir.get(re.compile(".*"), json={})
    assert client.post(SIGN, json=body).get_json() == {"cards": []}
    assert trap.call_count == 0
    order["contained"][0]["code"] = {"text": "Kineret 100 mg/0.67 mL syringe"}
    del body["fhirServer"]
    body["prefetch"]["patient"] = load_example("order-sign-prefetch.json")["prefetch"]["patient"]
    assert_order_is_answered(client.post(SIGN, json=body))


def test_a_non_contained_reference_always_goes_on(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    body = by_reference(
        from_server(load_example("order-sign-prefetch.json"), "patient"),
        {"reference": "Medication/z", "display": "lisinopril"},
    )
    fhir.get(f"{BASE}/Patient/pt-ra-1001", json={"resourceType": "Patient", "id": "pt-ra-1001"})
    fhir.get(f"{BASE}/Medication/z", status=404)
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert f"{BASE}/Patient/pt-ra-1001" in [c.request.url for c in fhir.calls]
