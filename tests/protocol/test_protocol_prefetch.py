"""Prefetch: data sent is used as is; what is missing is read from an allowed FHIR server
within one deadline; when a required key cannot be had, the anakinra order gets a card
saying which data could not be read and why (issue 12: these tests expected a bare 412
before)."""

from __future__ import annotations

import copy
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import requests
import responses
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cds_service import pipeline
from cds_service.auth import fhir_server_allowed, same_base
from cds_service.prefetch import (
    FetchError,
    NotApplicableError,
    deduplicate,
    fill_template,
    flatten,
)
from tests.conftest import load_example

SIGN = "/cds-services/prior-auth-order-sign"
BASE = "http://127.0.0.1:9999/fhir"
TOKEN = "secret-token-abc123"
PATIENT_ID = "pt-ra-1001"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[pipeline.CallContext, list[Any]]]:
    """Replace the pipeline with a recorder of what the protocol layer hands it."""
    calls: list[tuple[pipeline.CallContext, list[Any]]] = []

    def record(call: pipeline.CallContext, resources: Any, engine: Any = None) -> dict[str, Any]:
        calls.append((call, list(resources)))
        return {"cards": []}

    monkeypatch.setattr(pipeline, "run", record)
    return calls


@pytest.fixture
def fhir() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def with_server(
    body: dict[str, Any], base: str = BASE, keep: tuple[str, ...] = ()
) -> dict[str, Any]:
    body["fhirServer"] = base
    body["fhirAuthorization"] = {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/*.read",
        "subject": "anakinra-cds",
    }
    body["prefetch"] = {k: v for k, v in body.get("prefetch", {}).items() if k in keep}
    return body


def searchset(*resources: Mapping[str, Any], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def refs(resources: list[Any]) -> set[str]:
    return {f"{r['resourceType']}/{r.get('id')}" for r in resources}


def serve_everything(mock: responses.RequestsMock) -> None:
    """A FHIR server answering every query of the order-sign service."""
    patient = {"resourceType": "Patient", "id": PATIENT_ID, "birthDate": "1971-04-12"}
    mock.get(f"{BASE}/Patient/{PATIENT_ID}", json=patient)
    mock.get(
        f"{BASE}/PractitionerRole/prrole-rheum-1",
        json={"resourceType": "PractitionerRole", "id": "prrole-rheum-1"},
    )
    mock.get(f"{BASE}/Encounter/enc-2001", json={"resourceType": "Encounter", "id": "enc-2001"})
    for kind in (
        "Condition",
        "MedicationRequest",
        "MedicationStatement",
        "MedicationDispense",
        "MedicationAdministration",
        "AllergyIntolerance",
        "Observation",
        "CareTeam",
        "ServiceRequest",
        "Coverage",
    ):
        mock.get(
            re.compile(re.escape(f"{BASE}/{kind}?") + ".*"),
            json=searchset({"resourceType": kind, "id": f"{kind.lower()}-1"}),
        )


# --- data sent is used as is -------------------------------------------------------


def test_complete_prefetch_is_used_without_any_http(
    client: FlaskClient, fhir: responses.RequestsMock, captured: list[Any]
) -> None:
    body = load_example("order-sign-prefetch.json")
    body["fhirServer"] = BASE
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert len(fhir.calls) == 0
    call, resources = captured[0]
    assert call.missing_prefetch == ()
    assert call.fhir_server_used is False
    got = refs(resources)
    assert {
        f"Patient/{PATIENT_ID}",
        "Condition/cond-ra-1",
        "MedicationRequest/rx-mtx-1",
        "MedicationStatement/ms-ada-1",
        "Observation/obs-cdai-1",
        "PractitionerRole/prrole-rheum-1",
        "Encounter/enc-2001",
        "Coverage/cov-1",
    } <= got
    # The draft order travels in the context, not in the resource list.
    assert "MedicationRequest/draft-anakinra-1" not in got
    assert call.context["draftOrders"]["entry"][0]["resource"]["id"] == "draft-anakinra-1"


def test_null_means_no_data_and_is_not_fetched(
    client: FlaskClient, fhir: responses.RequestsMock, captured: list[Any]
) -> None:
    body = load_example("order-sign-prefetch.json")
    body["fhirServer"] = BASE
    body["prefetch"]["conditions"] = None
    body["prefetch"]["allergies"] = None
    assert client.post(SIGN, json=body).status_code == 200
    assert len(fhir.calls) == 0
    call, resources = captured[0]
    assert call.missing_prefetch == ()
    assert not any(r["resourceType"] == "Condition" for r in resources)


# --- what is missing is fetched ----------------------------------------------------


def test_missing_keys_are_fetched_with_the_bearer_token(
    client: FlaskClient, fhir: responses.RequestsMock, captured: list[Any]
) -> None:
    serve_everything(fhir)
    body = with_server(load_example("order-sign-prefetch.json"), keep=("patient",))
    assert client.post(SIGN, json=body).status_code == 200
    urls = [str(call.request.url) for call in fhir.calls]
    assert f"{BASE}/Patient/{PATIENT_ID}" not in urls  # sent, so not read
    assert f"{BASE}/Encounter/enc-2001" in urls
    assert f"{BASE}/PractitionerRole/prrole-rheum-1" in urls
    # userId is a PractitionerRole: the Practitioner-based template has nothing to ask.
    assert not any("PractitionerRole?practitioner" in url for url in urls)
    assert any(url.startswith(f"{BASE}/MedicationRequest?patient={PATIENT_ID}&") for url in urls)
    for call in fhir.calls:
        assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert "fhir+json" in call.request.headers["Accept"]
    call, resources = captured[0]
    assert call.fhir_server_used is True
    assert call.missing_prefetch == ()
    assert {
        "Condition/condition-1",
        "MedicationRequest/medicationrequest-1",
        "Encounter/enc-2001",
        f"Patient/{PATIENT_ID}",
    } <= refs(resources)


def test_operation_outcome_in_prefetch_is_fetched_again(
    client: FlaskClient, fhir: responses.RequestsMock, captured: list[Any]
) -> None:
    body = load_example("order-sign-prefetch.json")
    body["fhirServer"] = BASE
    body["prefetch"]["patient"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    fhir.get(f"{BASE}/Patient/{PATIENT_ID}", json={"resourceType": "Patient", "id": PATIENT_ID})
    assert client.post(SIGN, json=body).status_code == 200
    assert [c.request.url for c in fhir.calls] == [f"{BASE}/Patient/{PATIENT_ID}"]
    assert "Authorization" not in fhir.calls[0].request.headers  # no fhirAuthorization sent
    assert f"Patient/{PATIENT_ID}" in refs(captured[0][1])


def test_next_links_are_followed_up_to_the_cap(
    make_app: Callable[..., Flask], fhir: responses.RequestsMock, captured: list[Any]
) -> None:
    app = make_app(CDS_MAX_NEXT_PAGES=2)
    body = load_example("order-sign-prefetch.json")
    body["fhirServer"] = BASE
    del body["prefetch"]["conditions"]
    del body["prefetch"]["observations"]
    cond = {"resourceType": "Condition"}
    fhir.get(
        re.compile(re.escape(f"{BASE}/Condition?patient=")),
        json=searchset(cond | {"id": "c1"}, next_url=f"{BASE}/Condition?page=2"),
    )
    fhir.get(
        f"{BASE}/Condition?page=2",
        json=searchset(cond | {"id": "c2"}, next_url=f"{BASE}/Condition?page=3"),
    )
    fhir.get(f"{BASE}/Condition?page=3", json=searchset(cond | {"id": "c3"}))
    obs = {"resourceType": "Observation"}
    fhir.get(
        re.compile(re.escape(f"{BASE}/Observation?patient=") + ".*code="),
        json=searchset(obs | {"id": "o1"}, next_url=f"{BASE}/Observation?page=2"),
    )
    for page in (2, 3):
        fhir.get(
            f"{BASE}/Observation?page={page}",
            json=searchset(
                obs | {"id": f"o{page}"}, next_url=f"{BASE}/Observation?page={page + 1}"
            ),
        )
    fhir.get(f"{BASE}/Observation?page=4", json=searchset(obs | {"id": "o4"}))

    assert app.test_client().post(SIGN, json=body).status_code == 200
    urls = [c.request.url for c in fhir.calls]
    assert f"{BASE}/Condition?page=3" in urls
    assert f"{BASE}/Observation?page=3" in urls
    assert f"{BASE}/Observation?page=4" not in urls  # beyond the cap
    call, resources = captured[0]
    assert {"Condition/c1", "Condition/c2", "Condition/c3"} <= refs(resources)
    assert call.missing_prefetch == ("observations",)


def test_next_link_to_another_server_is_not_followed(
    client: FlaskClient, fhir: responses.RequestsMock, captured: list[Any]
) -> None:
    body = load_example("order-sign-prefetch.json")
    body["fhirServer"] = BASE
    del body["prefetch"]["conditions"]
    fhir.get(
        re.compile(re.escape(f"{BASE}/Condition?")),
        json=searchset(
            {"resourceType": "Condition", "id": "c1"},
            next_url="http://127.0.0.2:9999/fhir/Condition?page=2",
        ),
    )
    other = fhir.get(re.compile(r"http://127\.0\.0\.2.*"), json=searchset())
    assert client.post(SIGN, json=body).status_code == 200
    assert other.call_count == 0
    assert captured[0][0].missing_prefetch == ("conditions",)


def test_paginated_prefetch_sent_by_the_client_is_completed(
    client: FlaskClient, fhir: responses.RequestsMock, captured: list[Any]
) -> None:
    body = load_example("order-sign-prefetch.json")
    body["fhirServer"] = BASE
    body["prefetch"]["medicationRequests"] = searchset(
        {"resourceType": "MedicationRequest", "id": "m1"},
        next_url=f"{BASE}/MedicationRequest?patient={PATIENT_ID}&_page=2",
    )
    fhir.get(
        f"{BASE}/MedicationRequest?patient={PATIENT_ID}&_page=2",
        json=searchset({"resourceType": "MedicationRequest", "id": "m2"}),
    )
    assert client.post(SIGN, json=body).status_code == 200
    assert {"MedicationRequest/m1", "MedicationRequest/m2"} <= refs(captured[0][1])
    assert captured[0][0].missing_prefetch == ()


# --- failures ----------------------------------------------------------------------

FAILURES: dict[str, dict[str, Any]] = {
    "http-500": {"status": 500, "body": "upstream exploded"},
    "http-401": {"status": 401, "json": {"resourceType": "OperationOutcome"}},
    "http-403": {"status": 403, "json": {"resourceType": "OperationOutcome"}},
    "html": {
        "status": 200,
        "body": "<html><body>Sign in</body></html>",
        "content_type": "text/html",
    },
    "truncated-json": {"status": 200, "body": '{"resourceType": "Bundle", "entry": [{"res'},
    "operation-outcome": {
        "status": 200,
        "json": {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]},
    },
    "not-a-resource": {"status": 200, "json": [1, 2, 3]},
    "read-timeout": {"body": requests.exceptions.ReadTimeout("slow")},
    "refused": {"body": requests.exceptions.ConnectionError("refused")},
}


ORDER = "MedicationRequest/draft-anakinra-1"


def record_not_read(response: TestResponse, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The answer when the patient's record could not be read: 200, one could-not-check
    card for the Kineret order that names the data, and a not-evaluated entry whose
    `missingData` names `key`. Returns (card, missingData entry of `key`)."""
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    answer = response.get_json()
    [card] = answer["cards"]
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("Could not complete the Kineret coverage check")
    assert "the patient's record could not be read from the EHR" in card["detail"]
    assert card["extension"]["davinci-crd.associated-resource"] == [{"reference": ORDER}]
    [evaluation] = answer["extension"]["com.anakinra-cds.evaluation"]
    assert evaluation["order"] == ORDER
    assert evaluation["outcome"] == "not-evaluated"
    entries = {m["prefetchKey"]: m for m in evaluation["missingData"]}
    assert key in entries, entries
    # The record named in words, not by its prefetch key (a machine word).
    assert f"prefetch `{key}`" not in card["detail"]
    assert "Not read:" in card["detail"]
    return card, entries[key]


ISSUES = {
    "http-500": "exception",
    "http-401": "security",
    "http-403": "security",
    "html": "structure",
    "truncated-json": "structure",
    "operation-outcome": "processing",
    "not-a-resource": "structure",
    "read-timeout": "timeout",
    "refused": "exception",
}


@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
def test_required_key_that_cannot_be_read_gives_a_card_saying_so(
    client: FlaskClient, fhir: responses.RequestsMock, failure: str
) -> None:
    body = load_example("order-sign-prefetch.json")
    body = with_server(body, keep=tuple(k for k in body["prefetch"] if k != "patient"))
    fhir.get(f"{BASE}/Patient/{PATIENT_ID}", **FAILURES[failure])
    response = client.post(SIGN, json=body)
    card, missing = record_not_read(response, "patient")
    assert missing["resourceType"] == "Patient"
    assert missing["issue"] == ISSUES[failure]
    assert "demographics (Patient)" in card["detail"]
    text = response.get_data(as_text=True)
    assert TOKEN not in text
    assert BASE not in text
    # The coverage-information update echoes the EHR's own draft order (its subject names
    # the patient); nothing the service wrote about the failure does.
    answer = response.get_json()
    (action,) = answer.pop("systemActions")
    assert action["resource"]["subject"]["reference"] == f"Patient/{PATIENT_ID}"
    assert PATIENT_ID not in json.dumps(answer)


@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
def test_optional_key_that_cannot_be_read_is_reported_missing(
    client: FlaskClient, fhir: responses.RequestsMock, captured: list[Any], failure: str
) -> None:
    body = load_example("order-sign-prefetch.json")
    body = with_server(body, keep=tuple(k for k in body["prefetch"] if k != "conditions"))
    fhir.get(re.compile(re.escape(f"{BASE}/Condition?") + ".*"), **FAILURES[failure])
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}
    call, resources = captured[0]
    assert call.missing_prefetch == ("conditions",)
    assert not any(r["resourceType"] == "Condition" for r in resources)


def test_required_data_without_any_fhir_server_gives_a_card_saying_so(
    client: FlaskClient,
) -> None:
    body = load_example("order-sign-prefetch.json")
    del body["prefetch"]["medicationRequests"]
    card, missing = record_not_read(client.post(SIGN, json=body), "medicationRequests")
    assert missing["issue"] == "not-found"
    assert "no FHIR server" in missing["reason"]
    assert "medication orders (MedicationRequest)" in card["detail"]


def test_order_for_another_drug_needs_no_record(client: FlaskClient) -> None:
    """No anakinra order: nothing to read, no card, whatever the record."""
    body = load_example("order-sign-prefetch.json")
    del body["prefetch"]
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    order["medicationCodeableConcept"] = {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "105585",
                "display": "methotrexate 2.5 MG Oral Tablet",
            }
        ]
    }
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_server_not_allowed_is_never_contacted(
    client: FlaskClient, fhir: responses.RequestsMock, captured: list[Any]
) -> None:
    remote = "https://ehr.example.org/fhir"
    trap = fhir.get(re.compile(r"https://ehr\.example\.org/.*"), json=searchset())
    body = load_example("order-sign-prefetch.json")
    body = with_server(body, base=remote, keep=tuple(body["prefetch"]))
    del body["prefetch"]["allergies"]
    assert client.post(SIGN, json=body).status_code == 200
    assert captured[0][0].missing_prefetch == ("allergies",)
    del body["prefetch"]["patient"]
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert captured[1][0].record_unreadable
    missing = {m.prefetch_key: m.issue for m in captured[1][0].missing_data}
    assert missing == {"patient": "forbidden", "allergies": "forbidden"}
    assert TOKEN not in response.get_data(as_text=True)
    assert trap.call_count == 0
    assert len(fhir.calls) == 0


def test_listed_server_is_contacted(
    make_app: Callable[..., Flask], fhir: responses.RequestsMock, captured: list[Any]
) -> None:
    remote = "https://ehr.example.org/fhir"
    app = make_app(CDS_FHIR_SERVERS=f"{remote}/")
    fhir.get(f"{remote}/Patient/{PATIENT_ID}", json={"resourceType": "Patient", "id": PATIENT_ID})
    body = load_example("order-sign-prefetch.json")
    body = with_server(body, base=remote, keep=tuple(body["prefetch"]))
    del body["prefetch"]["patient"]
    assert app.test_client().post(SIGN, json=body).status_code == 200
    assert fhir.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert not captured[0][0].record_unreadable
    # Loopback is not implied once a list is configured.
    body["fhirServer"] = BASE
    assert app.test_client().post(SIGN, json=body).status_code == 200
    assert captured[1][0].record_unreadable
    assert captured[1][0].missing_data[0].issue == "forbidden"
    assert len(fhir.calls) == 1


def test_query_budget_limits_the_calls(
    make_app: Callable[..., Flask], fhir: responses.RequestsMock, captured: list[Any]
) -> None:
    app = make_app(CDS_MAX_FHIR_QUERIES=3, CDS_MAX_CONCURRENT_QUERIES=1)
    serve_everything(fhir)
    body = with_server(
        load_example("order-sign-prefetch.json"), keep=("patient", "medicationRequests")
    )
    assert app.test_client().post(SIGN, json=body).status_code == 200
    assert len(fhir.calls) == 3
    assert len(captured[0][0].missing_prefetch) >= 8


class BlockingClient:
    """A FHIR server that never answers until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.returned = threading.Event()

    def get(
        self,
        url: str,
        headers: Mapping[str, str],
        timeout: tuple[float, float],
        deadline: float,
        max_bytes: int,
    ) -> Any:
        self.started.set()
        self.release.wait(timeout=30)
        self.returned.set()
        raise FetchError("exception", "answered after the deadline")

    def close(self) -> None:
        pass


def _call_with_hanging_server(
    make_app: Callable[..., Flask], unsent_key: str
) -> tuple[TestResponse, BlockingClient, bool]:
    """Call order-sign without `unsent_key` in the prefetch, against a FHIR server that
    hangs until the call has answered: (response, the client, answered before release)."""
    hanging = BlockingClient()
    app = make_app(CDS_REQUEST_DEADLINE=0.3, FHIR_CLIENT_FACTORY=lambda: hanging)
    body = load_example("order-sign-prefetch.json")
    body = with_server(body, keep=tuple(k for k in body["prefetch"] if k != unsent_key))
    try:
        response = app.test_client().post(SIGN, json=body)
        answered_before_release = not hanging.returned.is_set()
    finally:
        hanging.release.set()
    return response, hanging, answered_before_release


def test_deadline_ends_the_call_while_the_server_hangs(make_app: Callable[..., Flask]) -> None:
    response, hanging, answered_before_release = _call_with_hanging_server(make_app, "patient")
    assert hanging.started.is_set()
    assert answered_before_release
    _, missing = record_not_read(response, "patient")
    assert missing["issue"] == "timeout"


def test_deadline_with_optional_key_still_answers(
    make_app: Callable[..., Flask], captured: list[Any]
) -> None:
    response, _, answered_before_release = _call_with_hanging_server(make_app, "coverage")
    assert answered_before_release
    assert response.status_code == 200
    assert captured[0][0].missing_prefetch == ("coverage",)


def test_real_server_that_never_answers_times_out(make_app: Callable[..., Flask]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # connections queue up; nobody ever answers
        port = listener.getsockname()[1]
        app = make_app(CDS_FHIR_READ_TIMEOUT=0.2, CDS_REQUEST_DEADLINE=2)
        body = load_example("order-sign-prefetch.json")
        body = with_server(
            body,
            base=f"http://127.0.0.1:{port}/fhir",
            keep=tuple(k for k in body["prefetch"] if k != "patient"),
        )
        response = app.test_client().post(SIGN, json=body)
    _, missing = record_not_read(response, "patient")
    assert missing["issue"] == "timeout"


class KeepAliveFhir(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: records which connection (client port) each request
    came on and the cookies it carried, and sets a cookie of its own."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[int, str | None]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.client_address[1], self.headers.get("Cookie")))
        data = json.dumps(
            {"resourceType": "Patient", "id": PATIENT_ID, "birthDate": "1971-04-12"}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Set-Cookie", "session=caller-one; Path=/")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_calls_reuse_open_connections_but_never_share_cookies(
    make_app: Callable[..., Flask],
) -> None:
    KeepAliveFhir.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAliveFhir)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = make_app().test_client()  # real HTTP client (no FHIR_CLIENT_FACTORY)
        body = load_example("order-sign-prefetch.json")
        keep = tuple(k for k in body["prefetch"] if k != "patient")
        base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
        for _ in range(3):
            response = client.post(SIGN, json=with_server(copy.deepcopy(body), base, keep))
            assert response.status_code == 200
    finally:
        server.shutdown()
        server.server_close()
    assert len(KeepAliveFhir.seen) == 3
    # One connection for the three calls (no new TCP and TLS set-up per call) ...
    assert len({port for port, _ in KeepAliveFhir.seen}) == 1
    # ... but what the server set for one call is not sent on the next.
    assert [cookie for _, cookie in KeepAliveFhir.seen] == [None, None, None]


def test_logs_one_event_without_token_or_patient_data(
    client: FlaskClient,
    fhir: responses.RequestsMock,
    captured: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    serve_everything(fhir)
    body = with_server(load_example("order-sign-prefetch.json"), keep=("patient",))
    assert client.post(SIGN, json=body).status_code == 200
    events = [r for r in caplog.records if r.name == "cds_service.access"]
    assert len(events) == 1
    event = events[0].__dict__
    assert event["service"] == "prior-auth-order-sign"
    assert event["hookInstance"] == body["hookInstance"]
    assert event["status"] == 200
    assert event["fhirQueries"] == len(fhir.calls)
    assert isinstance(event["duration_ms"], float)
    logged = caplog.text + json.dumps([r.__dict__ for r in caplog.records], default=str)
    for secret in (TOKEN, PATIENT_ID, "1971-04-12", "Avery"):
        assert secret not in logged


# --- pure helpers ------------------------------------------------------------------


def test_flatten_opens_bundles_and_drops_outcomes() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"resourceType": "Condition", "id": "a"}, "search": {"mode": "match"}},
            {"resource": {"resourceType": "Medication", "id": "m"}, "search": {"mode": "include"}},
            {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}},
            {"resource": {"resourceType": "OperationOutcome", "id": "x"}},
            {"fullUrl": "no-resource"},
            "junk",
            {
                "resource": {
                    "resourceType": "Bundle",
                    "entry": [{"resource": {"resourceType": "Patient", "id": "p"}}],
                }
            },
        ],
    }
    assert refs(flatten(bundle)) == {"Condition/a", "Medication/m", "Patient/p"}
    assert flatten({"resourceType": "OperationOutcome"}) == []
    assert flatten(None) == []
    assert flatten({"id": "no-type"}) == []


def test_deduplicate_keeps_first_by_type_and_id() -> None:
    first = {"resourceType": "Condition", "id": "a", "note": "first"}
    resources = [
        first,
        {"resourceType": "Condition", "id": "a", "note": "second"},
        {"resourceType": "Patient", "id": "a"},
        {"resourceType": "Observation"},
        {"resourceType": "Observation"},
    ]
    unique = deduplicate(resources)
    assert unique[0] is first
    assert len(unique) == 3


def test_fill_template_tokens() -> None:
    context = {"patientId": "p-1", "userId": "PractitionerRole/r.9", "encounterId": "e1"}
    assert fill_template("Patient/{{context.patientId}}", context) == "Patient/p-1"
    assert fill_template("PractitionerRole/{{ userPractitionerRoleId }}", context) == (
        "PractitionerRole/r.9"
    )
    assert fill_template("X?who={{context.userId}}", context) == "X?who=PractitionerRole/r.9"
    with pytest.raises(NotApplicableError):
        fill_template("PractitionerRole?practitioner={{userPractitionerId}}", context)
    with pytest.raises(NotApplicableError):
        fill_template("Encounter/{{context.encounterId}}", {"patientId": "p"})
    for bad in ("1&_include=*", "../Group/1", "a b", "x" * 65, ""):
        with pytest.raises(FetchError):
            fill_template("Condition?patient={{context.patientId}}", {"patientId": bad})


@pytest.mark.parametrize(
    ("server", "allowed", "expected"),
    [
        ("http://127.0.0.1:8080/fhir", (), True),
        ("http://localhost/fhir", (), True),
        ("http://[::1]:9/fhir", (), True),
        ("https://ehr.example.org/fhir", (), False),
        ("http://127.0.0.1.example.org/fhir", (), False),
        ("http://user:pw@127.0.0.1/fhir", (), False),
        ("file:///etc/passwd", (), False),
        ("https://ehr.example.org/fhir/", ("https://ehr.example.org/fhir",), True),
        ("https://EHR.example.org:443/fhir/r4", ("https://ehr.example.org/fhir",), True),
        ("https://ehr.example.org/fhirx", ("https://ehr.example.org/fhir",), False),
        ("http://ehr.example.org/fhir", ("https://ehr.example.org/fhir",), False),
        ("https://ehr.example.org:8443/fhir", ("https://ehr.example.org/fhir",), False),
        ("http://127.0.0.1/fhir", ("https://ehr.example.org/fhir",), False),
    ],
)
def test_server_allowed_with_auth_disabled(
    server: str, allowed: tuple[str, ...], expected: bool
) -> None:
    """The one decision (cds_service.auth) the prefetch layer is given as a predicate."""
    assert fhir_server_allowed(None, server, auth_disabled_allowlist=allowed) is expected


def test_same_base_compares_origin_and_path() -> None:
    assert same_base("https://a.example/fhir/Patient?x=1", "https://a.example/fhir")
    assert not same_base("https://a.example/other/Patient", "https://a.example/fhir")
    assert not same_base("https://b.example/fhir/Patient", "https://a.example/fhir")
