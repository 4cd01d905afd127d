"""`POST /fhir/Questionnaire/$questionnaire-package` in process, the chart given in the request:
the prefilled response leaves open exactly the criteria the order's decision left unknown,
every prefilled answer names where it came from, and bad input gets a 400 OperationOutcome.
(tests/e2e/test_e2e_dtr_package.py reads the chart from the real FHIR sandbox instead.)"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from flask import Flask
from flask.testing import FlaskClient

from cds_service.auth import AuthError, Principal
from cds_service.dtr.prepopulate import INFORMATION_ORIGIN, answer_source_url
from sandbox.scenarios import Scenario, load_all_scenarios, load_order
from tests.dtr.package_helpers import (
    PACKAGE,
    chart_request,
    open_of,
    parameters,
    resources,
)

SCENARIOS = load_all_scenarios()
DOC_NEEDED = [s for s in SCENARIOS if s.expected_outcome == "documentation-needed"]
MET = [s for s in SCENARIOS if s.expected_outcome == "criteria-met"]


def chart(scenario: Scenario) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(scenario.bundle_path.read_text("utf-8"))
    return bundle


def ask(client: FlaskClient, scenario: Scenario) -> dict[str, Any]:
    body = chart_request(
        load_order(scenario), chart(scenario), f"PractitionerRole/{scenario.role_id}"
    )
    resp = client.post(PACKAGE, json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    assert resp.content_type.startswith("application/fhir+json")
    answer: dict[str, Any] = resp.json  # type: ignore[assignment]
    return answer


def _answers(items: list[Mapping[str, Any]]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for item in items:
        for answer in item.get("answer", []):
            yield str(item["linkId"]), answer
        yield from _answers(item.get("item", []))


def test_there_are_documentation_needed_patients_of_both_packs() -> None:
    assert {s.directory for s in DOC_NEEDED} == {s.directory for s in SCENARIOS}


@pytest.mark.parametrize("scenario", DOC_NEEDED, ids=lambda s: s.name)
def test_open_items_are_the_unknown_criteria(client: FlaskClient, scenario: Scenario) -> None:
    answer = ask(client, scenario)
    Bundle.model_validate(answers_bundle := answer["parameter"][0]["resource"])
    kinds = {e["resource"]["resourceType"] for e in answers_bundle["entry"]}
    assert kinds == {"Questionnaire", "Library", "ValueSet", "QuestionnaireResponse"}
    assert sorted(open_of(answer)) == sorted(scenario.expected_unknown)


@pytest.mark.parametrize("scenario", MET[:3], ids=lambda s: s.name)
def test_a_met_order_leaves_nothing_open(client: FlaskClient, scenario: Scenario) -> None:
    assert open_of(ask(client, scenario)) == []


def test_every_prefilled_answer_is_auto_with_its_sources(client: FlaskClient) -> None:
    scenario = DOC_NEEDED[0]
    answer = ask(client, scenario)
    (response,) = resources(answer, "QuestionnaireResponse")
    (questionnaire,) = resources(answer, "Questionnaire")
    assert response["questionnaire"] == f"{questionnaire['url']}|{questionnaire['version']}"
    assert response["subject"] == {"reference": f"Patient/{scenario.patient_id}"}
    source_url = answer_source_url("http://localhost")
    with_sources = 0
    for link, given in _answers(response["item"]):
        origins = [e for e in given["extension"] if e["url"] == INFORMATION_ORIGIN]
        assert origins == [
            {"url": INFORMATION_ORIGIN, "extension": [{"url": "source", "valueCode": "auto"}]}
        ], link
        refs = [
            e["valueReference"]["reference"] for e in given["extension"] if e["url"] == source_url
        ]
        with_sources += bool(refs)
        ids = {
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in chart(scenario)["entry"]
        }
        ids.add(f"MedicationRequest/{load_order(scenario)['id']}")
        assert set(refs) <= ids, f"{link}: sources not in the chart: {set(refs) - ids}"
    assert with_sources > 0


def _problem(client: FlaskClient, body: Any, status: int = 400) -> dict[str, Any]:
    resp = client.post(PACKAGE, json=body)
    assert resp.status_code == status, resp.get_data(as_text=True)
    outcome: dict[str, Any] = resp.json  # type: ignore[assignment]
    assert outcome["resourceType"] == "OperationOutcome"
    return dict(outcome["issue"][0])


def test_bad_requests_say_what_is_wrong(client: FlaskClient) -> None:
    scenario = DOC_NEEDED[0]
    order = load_order(scenario)
    assert "Parameters" in _problem(client, {"resourceType": "Bundle"})["diagnostics"]
    missing = _problem(client, parameters({"name": "chart", "resource": chart(scenario)}))
    assert "`order`" in missing["diagnostics"]
    wrong = _problem(client, parameters({"name": "order", "resource": chart(scenario)}))
    assert wrong["expression"] == ["Parameters.parameter[0]"]
    assert "MedicationRequest" in wrong["diagnostics"]
    unknown = chart_request(order, chart(scenario))
    unknown["parameter"].append({"name": "colour", "valueString": "blue"})
    assert "unknown parameter `colour`" in _problem(client, unknown)["diagnostics"]
    no_chart = _problem(client, parameters({"name": "order", "resource": order}))
    assert "fhirServer" in no_chart["diagnostics"]
    no_subject = {k: v for k, v in order.items() if k != "subject"}
    issue = _problem(client, chart_request(no_subject, chart(scenario)))
    assert "subject" in issue["diagnostics"]
    other = chart_request(order, chart(scenario))
    other["parameter"].append(
        {"name": "questionnaire", "valueCanonical": "http://localhost/fhir/Questionnaire/X.Y"}
    )
    assert "its questionnaire is" in _problem(client, other)["diagnostics"]


def test_an_order_no_policy_decides_has_no_template(client: FlaskClient) -> None:
    scenario = DOC_NEEDED[0]
    order = load_order(scenario)
    order["medicationCodeableConcept"] = {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "314076",
                "display": "lisinopril 10 MG Oral Tablet",
            }
        ]
    }
    order.pop("medicationReference", None)
    issue = _problem(client, chart_request(order, chart(scenario)))
    assert issue["code"] == "not-supported"


def test_a_chart_without_the_patient_cannot_be_read(client: FlaskClient) -> None:
    scenario = DOC_NEEDED[0]
    bundle = chart(scenario)
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"]
    issue = _problem(client, chart_request(load_order(scenario), bundle), 422)
    assert "no Patient" in issue["diagnostics"]


class _OnlyGood:
    def authenticate(self, authorization_header: str | None, audience: str) -> Principal:
        if authorization_header != "Bearer good":
            raise AuthError("refused")
        return Principal(
            iss="https://ehr.example.org", sub=None, jti="j", tenant=None, fhir_servers=()
        )


def test_secured_like_the_hooks(make_app: Callable[..., Flask]) -> None:
    app = make_app(CDS_AUTH="enabled", AUTHENTICATOR=_OnlyGood())
    client = app.test_client()
    scenario = DOC_NEEDED[0]
    body = chart_request(
        load_order(scenario), chart(scenario), f"PractitionerRole/{scenario.role_id}"
    )
    assert client.post(PACKAGE, json=body).status_code == 401
    ok = client.post(PACKAGE, json=body, headers={"Authorization": "Bearer good"})
    assert ok.status_code == 200
    assert client.get("/fhir/Questionnaire/NH.PHAR.244").status_code == 200  # no patient data
