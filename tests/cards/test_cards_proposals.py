"""Cards that propose orders from the pack's data: companions (IL1.RIL.01: a TB screen, a body
weight the chart does not hold) and alternates (NH.PHAR.244 I.A.5: a preferred product when no
trial of one is on file), in the shapes of the Da Vinci CRD response types."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from cds_service.cards import Evaluation, render_response
from cds_service.cards.proposals import CRD_RESPONSE_TYPES
from cds_service.cards.texts import texts_for
from cds_service.policy.model import CriterionResult, Decision, Outcome, Status
from fhir_mappings import r4
from tests.cards.builders import (
    NOW,
    RA_MET,
    SETTINGS,
    criterion,
    decision,
    facts,
    medication_request,
    replace,
    uuid_counter,
)

SCHEMA = Path(__file__).resolve().parents[2] / "hooks" / "schemas" / "response.schema.json"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"


def _draft(order_id: str) -> dict[str, Any]:
    draft = medication_request(order_id)
    draft["requester"] = {"reference": "Practitioner/dr-1"}
    draft["encounter"] = {"reference": "Encounter/enc-1"}
    return draft


def _render(evaluation: Evaluation, hook: str = "order-sign") -> dict[str, Any]:
    return render_response(
        hook, [evaluation], settings=SETTINGS, uuid_factory=uuid_counter(), now=NOW
    )


def _with_topic(response: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [c for c in response["cards"] if c["source"]["topic"]["code"] == code]


def _valid(response: dict[str, Any]) -> None:
    validator = Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert [e.message for e in validator.iter_errors(response)] == []


# --- IL1.RIL.01 companions ------------------------------------------------------------------

RIL = "IL1.RIL.01"


def _ril(*criteria: CriterionResult, section: str = "I.A", **facts_kw: Any) -> Evaluation:
    draft = _draft("arcalyst-1")
    found = dataclasses.replace(facts(draft), **facts_kw)
    made: Decision = dataclasses.replace(
        decision(
            Outcome.DOCUMENTATION_NEEDED,
            criteria,
            order_ref="MedicationRequest/arcalyst-1",
            section=section,
            indication="caps",
        ),
        policy_id=RIL,
        policy_version="2027.01-1",
    )
    return Evaluation(found, made)


NO_TB_SCREEN = criterion(
    "I.A.5",
    Status.UNKNOWN,
    check="test-negative-within",
    reason="No Tuberculin skin test or IGRA result within 12 months before the order is on file.",
)
INDETERMINATE_IGRA = dataclasses.replace(
    NO_TB_SCREEN,
    reason="IGRA on 2026-02-01: indeterminate (an indeterminate result is not a negative one).",
    evidence=("Observation/igra-1",),
)
NEGATIVE_IGRA = dataclasses.replace(
    NO_TB_SCREEN,
    status=Status.MET,
    reason="IGRA on 2026-02-01: negative.",
    evidence=("Observation/igra-1",),
)
AGE_MET = criterion("I.A.3", check="minimum-age", reason="Age 41 on the order date")


def test_no_tb_screen_on_file_gets_a_card_offering_the_screening_orders() -> None:
    response = _render(_ril(AGE_MET, NO_TB_SCREEN))
    _valid(response)
    (card,) = _with_topic(response, CRD_RESPONSE_TYPES["companion"])
    assert card["indicator"] == "info"
    # The CRD card type of the IG's additional-orders example (its system is the one of
    # every card's topic, see cards/codes.py).
    assert card["source"]["topic"]["code"] == "clinical-reminder"
    assert card["source"]["topic"]["display"] == "Clinical Reminder"
    assert "Arcalyst" in card["summary"]
    assert "I.A.5" not in card["summary"]  # the policy's clause numbers are not for the card
    assert len(card["summary"]) < 140
    assert "tuberculosis screening" in card["detail"]
    assert card["selectionBehavior"] == "at-most-one"
    assert "links" not in card  # the IG's additionalOrders profile allows none
    assert card["extension"]["davinci-crd.associated-resource"] == [
        {"reference": "MedicationRequest/arcalyst-1"}
    ]
    codes = []
    for suggestion in card["suggestions"]:
        assert suggestion["uuid"]
        assert suggestion["label"].startswith("Add an order:")
        (action,) = suggestion["actions"]
        assert action["type"] == "create"
        assert "resourceId" not in action
        request = action["resource"]
        assert request["resourceType"] == "ServiceRequest"
        assert request["status"] == "draft"
        assert request["subject"] == {"reference": "Patient/p1"}
        assert request["requester"] == {"reference": "Practitioner/dr-1"}
        assert request["encounter"] == {"reference": "Encounter/enc-1"}
        assert request["authoredOn"] == NOW.date().isoformat()
        assert request["category"][0]["coding"][0]["code"] == "108252007"
        _, problems = r4.validate(request)
        assert problems == ()
        codes.append({(c["system"], c["code"]) for c in request["code"]["coding"]})
    assert codes == [{(LOINC, "71773-6")}, {(SNOMED, "28163009"), (LOINC, "39263-9")}]


def test_a_tb_screen_on_file_gets_no_order_proposal() -> None:
    for result in (NEGATIVE_IGRA, INDETERMINATE_IGRA):
        response = _render(_ril(AGE_MET, result))
        assert _with_topic(response, "clinical-reminder") == [], result.reason


def test_no_proposal_when_the_results_could_not_be_read() -> None:
    """Observations the EHR could not give prove nothing: ordering a test on that would
    be a suggestion the chart may already answer."""
    response = _render(_ril(AGE_MET, NO_TB_SCREEN, unavailable=frozenset({"Observation"})))
    assert _with_topic(response, "clinical-reminder") == []


def test_order_select_gets_no_order_proposal() -> None:
    response = _render(_ril(AGE_MET, NO_TB_SCREEN), hook="order-select")
    assert _with_topic(response, "clinical-reminder") == []


def test_no_recent_weight_gets_a_body_weight_order() -> None:
    no_weight = criterion(
        "I.B.3",
        Status.UNKNOWN,
        check="minimum-weight",
        reason="No body weight recorded within 90 days of the order.",
    )
    response = _render(_ril(no_weight, section="I.B"))
    _valid(response)
    (card,) = _with_topic(response, "clinical-reminder")
    assert "body weight" in card["summary"]
    (suggestion,) = card["suggestions"]
    request = suggestion["actions"][0]["resource"]
    assert request["code"]["coding"] == [
        {"system": LOINC, "code": "29463-7", "display": "Body weight"}
    ]
    assert r4.validate(request)[1] == ()


def test_one_card_per_companion_however_many_of_its_criteria_match() -> None:
    """The TB block names I.A.5, I.B.5 and I.C.5; a decision has one of them per section,
    but a card listing two would still be one card."""
    other = dataclasses.replace(NO_TB_SCREEN, id="I.B.5")
    response = _render(_ril(NO_TB_SCREEN, other))
    (card,) = _with_topic(response, "clinical-reminder")
    assert "tuberculosis screening" in card["detail"]
    assert "I.A.5" not in card["detail"]
    assert "I.B.5" not in card["detail"]


# --- NH.PHAR.244 alternates -----------------------------------------------------------------


def _ra(i_a_5: CriterionResult, **facts_kw: Any) -> Evaluation:
    draft = _draft("kineret-1")
    return Evaluation(
        dataclasses.replace(facts(draft), **facts_kw),
        decision(Outcome.DOCUMENTATION_NEEDED, replace(RA_MET, i_a_5)),
    )


NO_TRIAL = criterion(
    "I.A.5",
    Status.UNKNOWN,
    check="trial-or-intolerance",
    reason="No trial of a preferred product is documented.",
)


def test_no_preferred_product_tried_gets_the_alternate_request_card() -> None:
    response = _render(_ra(NO_TRIAL))
    _valid(response)
    (card,) = _with_topic(response, CRD_RESPONSE_TYPES["alternate"])
    assert card["indicator"] == "info"
    assert card["summary"].startswith("Kineret needs a preferred product tried first")
    assert "links" not in card
    assert card["selectionBehavior"] == "at-most-one"
    # It says no more than the policy: a trial comes first unless adverse effects or
    # contraindications prevented it, and the products may need prior authorization.
    assert "adverse effects" in card["detail"]
    assert "may need prior authorization" in card["detail"]
    products = []
    for suggestion in card["suggestions"]:
        delete, create = suggestion["actions"]
        # The IG's alternateRequest shape: one delete of this order and one create.
        assert delete == {
            "type": "delete",
            "description": "Remove this Kineret order",
            "resourceId": "MedicationRequest/kineret-1",
        }
        assert create["type"] == "create"
        assert "resourceId" not in create
        new = create["resource"]
        assert new["resourceType"] == "MedicationRequest"
        assert new["status"] == "draft"
        assert new["subject"] == {"reference": "Patient/p1"}
        assert new["requester"] == {"reference": "Practitioner/dr-1"}
        assert r4.validate(new)[1] == ()
        (coding,) = new["medicationCodeableConcept"]["coding"]
        assert coding["system"] == RXNORM
        products.append(coding["code"])
    assert products == ["1357547", "1741049", "1441530"]


def test_a_trial_on_file_gets_no_alternate() -> None:
    """A preferred product taken (met), or taken for an unknown length (unknown with the
    records as evidence: the documentation card asks for its dates), is no reason to
    propose another product."""
    taken = dataclasses.replace(NO_TRIAL, status=Status.MET, evidence=("MedicationStatement/1",))
    open_run = dataclasses.replace(NO_TRIAL, evidence=("MedicationRequest/toci-1",))
    for result in (taken, open_run):
        assert _with_topic(_render(_ra(result)), "therapy-alternatives-req") == []


def test_no_alternate_when_the_medication_records_could_not_be_read() -> None:
    unread = _ra(NO_TRIAL, unavailable=frozenset({"MedicationStatement"}))
    assert _with_topic(_render(unread), "therapy-alternatives-req") == []


@pytest.mark.parametrize("pack", [RIL, "NH.PHAR.244"])
def test_every_proposed_order_has_a_label_and_codes(pack: str) -> None:
    proposals = texts_for(pack).proposals
    assert proposals
    for proposal in (*proposals.companions, *proposals.alternates):
        for order in proposal.orders:
            assert order.name
            assert order.code
            assert all(c.display for c in order.code)
