"""COVID-19 care setting at the prescriber's screen (issue 12): a call without an
encounter, or whose encounter cannot be read, does not say the patient is an outpatient.
The setting is unknown and the card asks the prescriber to confirm admission (at
order-sign the documentation card itself: one card per order); a documented ambulatory
encounter gets the "not covered as an outpatient" warning, a coverage limit, not a safety
stop (docs/cards.md, indicator rule)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import ROOT

SCENARIOS = ROOT / "tests" / "scenarios" / "other"
SIGN = "/cds-services/anakinra-order-sign"
SELECT = "/cds-services/anakinra-order-select"
ORDER = "MedicationRequest/draft-anakinra-1"
CONFIRM = "Kineret for COVID-19: confirm the patient is admitted"
SIGN_CONFIRM = "Kineret PA needed: confirm the patient is admitted"


def scenario(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SCENARIOS / f"{name}.json").read_text("utf-8"))
    body.pop("_expect")
    return body


def criterion(answer: dict[str, Any], criterion_id: str) -> dict[str, Any]:
    [evaluation] = answer["extension"]["com.anakinra-cds.evaluation"]
    found: list[dict[str, Any]] = [c for c in evaluation["criteria"] if c["id"] == criterion_id]
    assert len(found) == 1
    return found[0]


def as_select(body: dict[str, Any]) -> dict[str, Any]:
    select = copy.deepcopy(body)
    select["hook"] = "order-select"
    select["context"]["selections"] = [ORDER]
    return select


def test_no_encounter_asks_to_confirm_the_setting_at_both_hooks(client: FlaskClient) -> None:
    body = scenario("covid_no_encounter")
    assert "encounterId" not in body["context"]
    answer = client.post(SIGN, json=body).get_json()
    result = criterion(answer, "I.D.1")
    assert result["status"] == "unknown"
    assert "No encounter was sent" in result["reason"]
    assert "outpatient use is not authorized" in result["reason"]
    # One card: the documentation card asks to confirm the admission, it does not decide.
    [card] = answer["cards"]
    assert card["indicator"] == "warning"
    assert card["summary"] == SIGN_CONFIRM
    assert "Confirm the patient is admitted" in card["detail"]
    # Nothing to remove (it may be an inpatient): the one suggestion adds the plan's form.
    actions = [a for s in card.get("suggestions", []) for a in s["actions"]]
    assert [(a["type"], a["resource"]["resourceType"]) for a in actions] == [("create", "Task")]

    select = client.post(SELECT, json=as_select(body)).get_json()
    [confirm] = select["cards"]
    assert confirm["summary"].startswith(CONFIRM)
    assert "hospitalized" in confirm["detail"]


def test_encounter_that_cannot_be_read_is_not_outpatient(client: FlaskClient) -> None:
    """The request names an encounter, the prefetch does not carry it and there is no
    FHIR server to read it from."""
    body = scenario("covid_no_encounter")
    body["context"]["encounterId"] = "enc-unreadable-1"
    body["prefetch"].pop("encounter", None)
    answer = client.post(SIGN, json=body).get_json()
    result = criterion(answer, "I.D.1")
    assert result["status"] == "unknown"
    assert "could not be read" in result["reason"]
    assert not [c for c in answer["cards"] if c["indicator"] == "critical"]
    assert [c for c in answer["cards"] if c["summary"].startswith(SIGN_CONFIRM)]
    [evaluation] = answer["extension"]["com.anakinra-cds.evaluation"]
    assert {m["prefetchKey"] for m in evaluation["missingData"]} >= {"encounter"}


@pytest.mark.parametrize("code", ["AMB", "VR"])
def test_documented_ambulatory_encounter_is_a_coverage_warning(
    client: FlaskClient, code: str
) -> None:
    body = scenario("covid_inpatient_acute_class")
    body["prefetch"]["encounter"]["class"] = {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": code,
    }
    answer = client.post(SIGN, json=body).get_json()
    assert criterion(answer, "I.D.1")["status"] == "not-met"
    [card] = answer["cards"]
    assert card["indicator"] == "warning"  # a coverage limit, not a clinical safety stop
    assert "hospitalized patients only" in card["summary"]
    assert not [c for c in answer["cards"] if c["summary"].startswith(CONFIRM)]


def test_inpatient_encounter_needs_no_confirmation(client: FlaskClient) -> None:
    answer = client.post(SIGN, json=scenario("covid_inpatient_acute_class")).get_json()
    assert criterion(answer, "I.D.1")["status"] == "met"
    assert not [c for c in answer["cards"] if c["summary"].startswith(CONFIRM)]


def test_emergency_encounter_asks_to_confirm(client: FlaskClient) -> None:
    answer = client.post(SIGN, json=scenario("covid_emergency_department_unknown")).get_json()
    assert criterion(answer, "I.D.1")["status"] == "unknown"
    assert [c for c in answer["cards"] if c["summary"].startswith(SIGN_CONFIRM)]
