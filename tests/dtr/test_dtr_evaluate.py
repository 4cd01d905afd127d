"""`POST /fhir/QuestionnaireResponse/$evaluate` in process (the chart in the request): the
answered open items decide their criteria, bad answers get an issue pointing at their item
while the good ones are still used, and an answer never overturns the chart."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from sandbox.scenarios import Scenario, load_all_scenarios, load_order
from tests.dtr.answer_sets import COMPLETIONS, ra_trial_and_score
from tests.dtr.package_helpers import PACKAGE, answered, chart_request, record

EVALUATE = "/fhir/QuestionnaireResponse/$evaluate"
SCENARIOS = {s.name: s for s in load_all_scenarios()}


def _chart(scenario: Scenario) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(scenario.bundle_path.read_text("utf-8"))
    return bundle


def _request(scenario: Scenario) -> dict[str, Any]:
    return chart_request(
        load_order(scenario), _chart(scenario), f"PractitionerRole/{scenario.role_id}"
    )


def _package(client: FlaskClient, scenario: Scenario) -> dict[str, Any]:
    resp = client.post(PACKAGE, json=_request(scenario))
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    answer: dict[str, Any] = resp.json  # type: ignore[assignment]
    return answer


def _evaluate(client: FlaskClient, scenario: Scenario, response: dict[str, Any]) -> dict[str, Any]:
    body = _request(scenario)
    body["parameter"].append({"name": "response", "resource": response})
    resp = client.post(EVALUATE, json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    out: dict[str, Any] = {}
    criteria: dict[str, dict[str, Any]] = {}
    for param in resp.json["parameter"]:  # type: ignore[index]
        if param["name"] == "criterion":
            parts = {p["name"]: p for p in param["part"]}
            criteria[parts["id"]["valueString"]] = {
                "status": parts["status"]["valueCode"],
                "reason": parts["reason"]["valueString"],
                "evidence": [p["valueString"] for p in param["part"] if p["name"] == "evidence"],
            }
        else:
            out[param["name"]] = param.get("resource") or param.get("valueCode")
    out["criteria"] = criteria
    return out


@pytest.mark.parametrize("name", sorted(COMPLETIONS))
def test_answering_the_open_items_meets_the_criteria(client: FlaskClient, name: str) -> None:
    scenario = SCENARIOS[name]
    package = _package(client, scenario)
    response = answered(package, COMPLETIONS[name](package))
    result = _evaluate(client, scenario, response)
    assert result["outcome"] == "criteria-met", result["criteria"]
    assert [i["severity"] for i in result["issues"]["issue"]] == ["information"]
    assert result["response"] == response  # returned as sent
    for criterion in scenario.expected_unknown:
        found = result["criteria"][criterion]
        assert "documented by the prescriber" in found["reason"]
        assert any(
            e.startswith(f"QuestionnaireResponse/{response['id']}#") for e in found["evidence"]
        )


def test_bad_answers_are_reported_and_good_ones_still_used(client: FlaskClient) -> None:
    scenario = SCENARIOS["ra-documentation-needed"]
    package = _package(client, scenario)
    groups = ra_trial_and_score(package, start="2099-01-01")  # a trial starting in the future
    groups["I.A.4"][0]["item"][3]["answer"] = [  # the dose in an unknown unit
        {"valueQuantity": {"value": 3, "unit": "tablets", "code": "{tbl}"}}
    ]
    groups["I.A.5"] = [record("I.A.99/trial", start={"valueDate": "2025-01-01"})]
    result = _evaluate(client, scenario, answered(package, groups))
    assert result["outcome"] == "documentation-needed"
    assert result["criteria"]["I.A.6"]["status"] == "met"  # the good answer is used
    assert result["criteria"]["I.A.4"]["status"] == "unknown"
    issues = {i["expression"][0]: i for i in result["issues"]["issue"]}
    start = "QuestionnaireResponse.item.descendants().where(linkId='I.A.4/first-line/trial/start')"
    assert "in the future" in issues[start]["diagnostics"]
    dose = "QuestionnaireResponse.item.descendants().where(linkId='I.A.4/first-line/trial/dose')"
    assert "unit" in issues[dose]["diagnostics"]
    missing = "QuestionnaireResponse.item.descendants().where(linkId='I.A.99/trial')"
    assert issues[missing]["code"] == "not-found"


def test_an_answer_never_overturns_the_chart(client: FlaskClient) -> None:
    scenario = SCENARIOS["ra-age-16"]
    package = _package(client, scenario)
    groups = {"I.A.3": [record("I.A.3/birth-date", value={"valueDate": "1970-01-01"})]}
    result = _evaluate(client, scenario, answered(package, groups))
    assert result["outcome"] == "criteria-not-met"
    age = result["criteria"]["I.A.3"]
    assert age["status"] == "not-met"
    assert "Documentation conflict" in age["reason"]
    assert any("contradicts the chart" in i["diagnostics"] for i in result["issues"]["issue"])


def test_the_response_must_be_for_the_orders_patient_and_questionnaire(client: FlaskClient) -> None:
    scenario = SCENARIOS["ra-documentation-needed"]
    package = _package(client, scenario)
    response = answered(package, {})
    body = _request(scenario)
    body["parameter"].append(
        {"name": "response", "resource": {**response, "subject": {"reference": "Patient/other"}}}
    )
    refused = client.post(EVALUATE, json=body)
    assert refused.status_code == 400
    assert refused.json["issue"][0]["expression"] == ["QuestionnaireResponse.subject"]  # type: ignore[index]
    body["parameter"][-1]["resource"] = {
        **response,
        "questionnaire": "http://x/fhir/Questionnaire/NO.SUCH",
    }
    assert client.post(EVALUATE, json=body).status_code == 400
    assert client.post(EVALUATE, json=_request(scenario)).status_code == 400  # no response
