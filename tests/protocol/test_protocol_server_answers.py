"""The service querying the EHR's FHIR server itself (no prefetch sent), against answers
real FHIR servers give: an answer the server says is not whole, or that is not what was
asked for, is data that could not be read, never "nothing there"."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import responses
from flask.testing import FlaskClient

from tests.conftest import load_example

SIGN = "/cds-services/prior-auth-order-sign"
BASE = "http://127.0.0.1:9999/fhir"
PATIENT = "Patient/pt-ra-1001"
STATEMENTS = re.compile(re.escape(f"{BASE}/MedicationStatement?") + ".*")
MTX = {"text": "methotrexate 15 mg tablet"}


@pytest.fixture
def fhir() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for kind in ("MedicationDispense", "MedicationAdministration"):
            mock.get(re.compile(re.escape(f"{BASE}/{kind}?") + ".*"), json=searchset())
        yield mock


def statement(ident: str, medication: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "id": ident,
        "status": "active",
        **medication,
        "subject": {"reference": PATIENT},
        "effectivePeriod": {"start": "2026-06-01"},
    }


def searchset(
    *resources: Mapping[str, Any],
    total: int | None = None,
    next_url: str | None = None,
    outcome: str | None = None,
) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if total is not None:
        bundle["total"] = total
    if next_url is not None:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    if outcome is not None:  # as Epic puts it beside the results
        bundle["entry"].append(
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": outcome, "code": "processing"}],
                },
                "search": {"mode": "outcome"},
            }
        )
    return bundle


def sign(client: FlaskClient, *fetched: str) -> dict[str, Any]:
    """The RA example (criteria met from its prefetch), with `fetched` keys left to the
    FHIR server; the evaluation of its anakinra order."""
    body = load_example("order-sign-prefetch.json")
    body["fhirServer"] = BASE
    body["fhirAuthorization"] = {"access_token": "server-answers-token", "token_type": "Bearer"}
    for key in (*fetched, "medicationDispenses", "medicationAdministrations"):
        del body["prefetch"][key]
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    [evaluation] = response.get_json()["extension"]["com.anakinra-cds.evaluation"]
    return dict(evaluation)


def status(evaluation: Mapping[str, Any], criterion: str) -> str:
    return str(next(c["status"] for c in evaluation["criteria"] if c["id"] == criterion))


def missing_keys(evaluation: Mapping[str, Any]) -> list[str]:
    return [m["prefetchKey"] for m in evaluation.get("missingData") or []]


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(searchset(outcome="error"), id="error-outcome-entry"),
        pytest.param(searchset(total=3), id="total-above-entries-no-next"),
    ],
)
def test_a_searchset_the_server_says_is_not_whole_is_not_read_as_no_biologic(
    client: FlaskClient, fhir: responses.RequestsMock, answer: dict[str, Any]
) -> None:
    fhir.get(STATEMENTS, json=answer)
    evaluation = sign(client, "medicationStatements")
    assert status(evaluation, "III.B") == "unknown"
    assert evaluation["outcome"] != "criteria-met"
    assert missing_keys(evaluation) == ["medicationStatements"]


def test_pages_that_together_carry_the_total_are_the_whole_list(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    page_2 = f"{BASE}/MedicationStatement?_getpages=abc&_page=2"
    fhir.get(page_2, json=searchset(statement("ms-2", {"medicationCodeableConcept": MTX}), total=2))
    fhir.get(
        STATEMENTS,
        json=searchset(
            statement("ms-1", {"medicationCodeableConcept": MTX}), total=2, next_url=page_2
        ),
    )
    evaluation = sign(client, "medicationStatements")
    assert missing_keys(evaluation) == []
    assert status(evaluation, "III.B") == "met"


def test_a_warning_outcome_leaves_the_list_whole(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    fhir.get(STATEMENTS, json=searchset(outcome="warning"))
    evaluation = sign(client, "medicationStatements")
    assert missing_keys(evaluation) == []


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


@pytest.mark.parametrize(
    ("reference", "read", "concurrent"),
    [
        (f"{BASE}/Medication/med-ada", True, "not-met"),
        ("Medication/med-ada/_history/3", True, "not-met"),
        ("https://other-ehr.example.org/fhir/Medication/med-ada", False, "unknown"),
    ],
)
def test_medications_referred_to_by_full_url_are_read_only_from_the_server_in_use(
    client: FlaskClient,
    fhir: responses.RequestsMock,
    reference: str,
    read: bool,
    concurrent: str,
) -> None:
    fhir.get(f"{BASE}/Medication/med-ada", json=ADALIMUMAB)
    fhir.get(
        STATEMENTS,
        json=searchset(statement("ms-ada", {"medicationReference": {"reference": reference}})),
    )
    evaluation = sign(client, "medicationStatements")
    reads = [
        str(call.request.url) for call in fhir.calls if "/Medication/" in str(call.request.url)
    ]
    assert reads == ([f"{BASE}/Medication/med-ada"] if read else [])
    assert status(evaluation, "III.B") == concurrent


def test_a_search_answered_with_a_single_resource_is_not_the_whole_list(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    fhir.get(STATEMENTS, json=statement("ms-1", {"medicationCodeableConcept": MTX}))
    evaluation = sign(client, "medicationStatements")
    assert missing_keys(evaluation) == ["medicationStatements"]
    assert status(evaluation, "III.B") == "unknown"


def test_a_merged_patient_record_is_not_evaluated_as_if_whole(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    fhir.get(
        f"{BASE}/Patient/pt-ra-1001",
        json={
            "resourceType": "Patient",
            "id": "pt-ra-1001",
            "active": False,
            "birthDate": "1971-04-12",
            "link": [{"type": "replaced-by", "other": {"reference": "Patient/pt-ra-2002"}}],
        },
    )
    body = load_example("order-sign-prefetch.json")
    body["fhirServer"] = BASE
    del body["prefetch"]["patient"]
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    [evaluation] = response.get_json()["extension"]["com.anakinra-cds.evaluation"]
    assert evaluation["outcome"] == "not-evaluated"
    [card] = response.get_json()["cards"]
    assert "replaced by another (merged)" in card["detail"]


def test_a_next_link_relative_to_the_server_base_is_followed(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    fhir.get(
        f"{BASE}/MedicationStatement?_getpages=abc&_page=2",
        json=searchset(statement("ms-2", {"medicationCodeableConcept": MTX})),
    )
    fhir.get(STATEMENTS, json=searchset(next_url="MedicationStatement?_getpages=abc&_page=2"))
    evaluation = sign(client, "medicationStatements")
    assert missing_keys(evaluation) == []
    assert any("MedicationStatement/ms-2" in c["evidence"] for c in evaluation["criteria"])


@pytest.mark.parametrize(("busy", "retry_after"), [(429, "0"), (503, "0")])
def test_a_busy_server_asking_to_retry_now_is_asked_again_once(
    client: FlaskClient, fhir: responses.RequestsMock, busy: int, retry_after: str
) -> None:
    fhir.get(STATEMENTS, status=busy, headers={"Retry-After": retry_after})
    fhir.get(STATEMENTS, json=searchset(statement("ms-2", {"medicationCodeableConcept": MTX})))
    evaluation = sign(client, "medicationStatements")
    assert missing_keys(evaluation) == []
    assert any("MedicationStatement/ms-2" in c["evidence"] for c in evaluation["criteria"])


def test_a_busy_server_asking_for_a_long_wait_leaves_the_data_unread(
    client: FlaskClient, fhir: responses.RequestsMock
) -> None:
    fhir.get(STATEMENTS, status=429, headers={"Retry-After": "120"})
    evaluation = sign(client, "medicationStatements")
    assert missing_keys(evaluation) == ["medicationStatements"]
    assert status(evaluation, "III.B") == "unknown"


def care_team(ident: str, patient: str | None) -> dict[str, Any]:
    team: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": ident,
        "status": "active",
        "participant": [
            {
                "role": [{"coding": [{"system": "http://snomed.info/sct", "code": "45440000"}]}],
                "member": {"reference": "Practitioner/pr-rheum-9"},
            }
        ],
    }
    if patient is not None:
        team["subject"] = {"reference": patient}
    return team


@pytest.mark.parametrize(
    ("teams", "consultation"),
    [
        # The server ignored patient=: a team naming no patient may be anyone's.
        ([care_team("ct-other", "Patient/someone-else"), care_team("ct-any", None)], "unknown"),
        # A server that filtered: a team naming no patient is this patient's.
        ([care_team("ct-any", None)], "met"),
        ([care_team("ct-other", "Patient/someone-else"), care_team("ct-own", PATIENT)], "met"),
    ],
)
def test_records_naming_no_patient_count_only_from_a_search_that_kept_to_the_patient(
    client: FlaskClient,
    fhir: responses.RequestsMock,
    teams: list[dict[str, Any]],
    consultation: str,
) -> None:
    fhir.get(re.compile(re.escape(f"{BASE}/CareTeam?") + ".*"), json=searchset(*teams))
    body = load_example("order-sign-prefetch.json")
    body["fhirServer"] = BASE
    family = {"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "207Q00000X"}]}
    body["prefetch"]["userRole"]["specialty"] = [family]
    del body["prefetch"]["careTeams"]
    response = client.post(SIGN, json=body)
    [evaluation] = response.get_json()["extension"]["com.anakinra-cds.evaluation"]
    assert status(evaluation, "I.A.2") == consultation
