"""Medications referred to but not sent (issue 12): a MedicationRequest, Statement or
Dispense whose `medicationReference` names a Medication that is neither contained nor in
the data is resolved by reading `Medication/<id>` from the FHIR server, with the same
server pinning, token and deadline as the other queries, at most a capped number per
call. A read that fails leaves the reference unresolved; the call still answers."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from cds_service import pipeline
from cds_service.prefetch import FetchError, FetchLimits, medication_references, resolve_prefetch
from tests.conftest import load_example

SIGN = "/cds-services/prior-auth-order-sign"
BASE = "http://127.0.0.1:9999/fhir"
TOKEN = "medication-read-token"
PATIENT = "Patient/pt-ra-1001"
ADALIMUMAB = {
    "resourceType": "Medication",
    "id": "med-ada",
    "code": {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "327361",
                "display": "adalimumab",
            }
        ]
    },
}


@pytest.fixture
def fhir() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[pipeline.CallContext, list[Any]]]:
    calls: list[tuple[pipeline.CallContext, list[Any]]] = []
    real = pipeline.run

    def record(call: pipeline.CallContext, resources: Any, engine: Any = None) -> dict[str, Any]:
        calls.append((call, list(resources)))
        return real(call, resources, engine)

    monkeypatch.setattr(pipeline, "run", record)
    return calls


def statement(ident: str, medication: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "id": ident,
        "status": "active",
        "medicationReference": {"reference": medication},
        "subject": {"reference": PATIENT},
        "effectivePeriod": {"start": "2026-09-01"},
    }


def dispense(ident: str, medication: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationDispense",
        "id": ident,
        "status": "completed",
        "medicationReference": {"reference": medication},
        "subject": {"reference": PATIENT},
        "whenHandedOver": "2026-11-01",
        "daysSupply": {"value": 28, "unit": "d", "system": "http://unitsofmeasure.org"},
    }


def searchset(*resources: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }


def request_with(*records: Mapping[str, Any], server: str | None = BASE) -> dict[str, Any]:
    """The RA example (criteria met), its statements replaced by `records`."""
    body = load_example("order-sign-prefetch.json")
    body["prefetch"]["medicationStatements"] = searchset(*records)
    if server is not None:
        body["fhirServer"] = server
        body["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer"}
    return body


def medication_gets(mock: responses.RequestsMock) -> list[str]:
    urls = [str(c.request.url) for c in mock.calls]
    return [url for url in urls if "/Medication/" in url]


def test_referenced_medication_is_read_with_the_token(
    client: FlaskClient, fhir: responses.RequestsMock, captured: list[Any]
) -> None:
    fhir.get(f"{BASE}/Medication/med-ada", json=ADALIMUMAB)
    body = request_with(statement("ms-ada", "Medication/med-ada"))
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert medication_gets(fhir) == [f"{BASE}/Medication/med-ada"]
    assert fhir.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    _, resources = captured[0]
    assert "Medication/med-ada" in {f"{r['resourceType']}/{r.get('id')}" for r in resources}
    # The read tells the drug: an active adalimumab, a combination the policy refuses.
    [evaluation] = response.get_json()["extension"]["com.anakinra-cds.evaluation"]
    assert evaluation["outcome"] == "criteria-not-met"
    assert any(c["indicator"] == "critical" for c in response.get_json()["cards"])


def test_dispense_references_are_read_too(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    fhir.get(f"{BASE}/Medication/med-ada", json=ADALIMUMAB)
    body = request_with()
    body["prefetch"]["medicationDispenses"] = searchset(dispense("md-ada", "Medication/med-ada"))
    assert client.post(SIGN, json=body).status_code == 200
    assert medication_gets(fhir) == [f"{BASE}/Medication/med-ada"]


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 404, "json": {"resourceType": "OperationOutcome"}},
        {"status": 401, "json": {"resourceType": "OperationOutcome"}},
        {"status": 500, "body": "down"},
        {"status": 200, "json": {"resourceType": "OperationOutcome"}},
    ],
    ids=["404", "401", "500", "operation-outcome"],
)
def test_medication_that_cannot_be_read_stays_unresolved(
    client: FlaskClient, fhir: responses.RequestsMock, failure: dict[str, Any]
) -> None:
    fhir.get(f"{BASE}/Medication/med-gone", **failure)
    body = request_with(statement("ms-gone", "Medication/med-gone"))
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert response.get_json()["cards"]
    assert medication_gets(fhir) == [f"{BASE}/Medication/med-gone"]


def test_sent_included_and_contained_medications_are_not_read_again(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    trap = fhir.get(re.compile(re.escape(f"{BASE}/Medication/") + ".*"), json=ADALIMUMAB)
    contained = statement("ms-contained", "#m1")
    contained["contained"] = [{**ADALIMUMAB, "id": "m1"}]
    body = request_with(statement("ms-ada", "Medication/med-ada"), contained)
    body["prefetch"]["medicationStatements"]["entry"].append(
        {"resource": ADALIMUMAB, "search": {"mode": "include"}}
    )
    assert client.post(SIGN, json=body).status_code == 200
    assert trap.call_count == 0


def test_no_server_or_a_server_not_allowed_is_never_asked(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    trap = fhir.get(re.compile(r".*"), json=ADALIMUMAB)
    for server in (None, "https://ehr.example.org/fhir"):
        body = request_with(statement("ms-ada", "Medication/med-ada"), server=server)
        assert client.post(SIGN, json=body).status_code == 200
    assert trap.call_count == 0


def test_reads_are_capped(client: FlaskClient, fhir: responses.RequestsMock) -> None:
    fhir.get(re.compile(re.escape(f"{BASE}/Medication/") + ".*"), json=ADALIMUMAB)
    records = [statement(f"ms-{i}", f"Medication/med-{i}") for i in range(30)]
    assert client.post(SIGN, json=request_with(*records)).status_code == 200
    assert len(medication_gets(fhir)) == FetchLimits(1, 1, 1, 1, 1, 1).max_medication_reads


class HangingOnMedication:
    """Answers searches at once; every Medication read hangs until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.medication_asked = threading.Event()

    def get(self, url: str, headers: Any, timeout: Any, deadline: float, max_bytes: int) -> Any:
        if "/Medication/" in url:
            self.medication_asked.set()
            self.release.wait(timeout=30)
            raise FetchError("timeout", "too late")
        return searchset()

    def close(self) -> None:
        pass


def test_a_hanging_medication_read_ends_with_the_call_deadline(
    make_app: Callable[..., Flask],
) -> None:
    hanging = HangingOnMedication()
    app = make_app(CDS_REQUEST_DEADLINE=0.3, FHIR_CLIENT_FACTORY=lambda: hanging)
    body = request_with(statement("ms-slow", "Medication/med-slow"))
    try:
        response = app.test_client().post(SIGN, json=body)
        answered_first = not hanging.release.is_set()
    finally:
        hanging.release.set()
    assert hanging.medication_asked.is_set()
    assert answered_first
    assert response.status_code == 200
    assert response.get_json()["cards"]


def test_resolve_prefetch_reports_unread_references() -> None:
    class Refusing:
        def get(self, url: str, *args: Any) -> Any:
            raise FetchError("security", "the FHIR server answered 401")

        def close(self) -> None:
            pass

    request = request_with(statement("ms-a", "Medication/a"), statement("ms-b", "Medication/b"))
    result = resolve_prefetch(
        {"medicationStatements": "MedicationStatement?patient={{context.patientId}}"},
        frozenset(),
        request,
        server_allowed=lambda url: True,
        client_factory=Refusing,
        limits=FetchLimits(1.0, 1.0, 1, 10, 2, 1_000_000, max_medication_reads=1),
        deadline=float("inf"),
    )
    assert sorted(result.unread) == ["Medication/a", "Medication/b"]  # one refused, one capped
    assert result.queries == 1
    assert result.missing == ()


def test_medication_references_reads_only_relative_medication_targets() -> None:
    records = [
        statement("s1", "Medication/x"),
        statement("s2", "#contained"),
        statement("s3", "https://other.example.org/fhir/Medication/y"),
        dispense("d1", "Medication/x"),
        dispense("d2", "Medication/z"),
        {"resourceType": "Observation", "medicationReference": {"reference": "Medication/o"}},
    ]
    assert medication_references(records) == ["Medication/x", "Medication/z"]
