"""Words the official CDS Hooks sandbox showed wrong (docs/cards.md), as a prescriber reads them
now: a dose card says what is still to confirm, a diagnosis reads in lower case mid-sentence,
an off-label card names the recorded diagnosis even when no value set knows it, and the
coverage information's reason names no policy section."""

from __future__ import annotations

import json
from typing import Any

from cds_service import create_app
from cds_service.cards import Evaluation, render_response
from cds_service.policy.model import Outcome, Status
from tests.answers import coverage_information
from tests.cards.builders import NOW, SETTINGS, criterion, decision, facts, replace, uuid_counter
from tests.cards.card_rules import CLAUSE_ID, coverage_reasons
from tests.cards.cases import NOMID_CRITERIA
from tests.conftest import PINNED_NOW, base_config
from tests.scenarios.harness import ORDER_NOW, SCENARIOS_DIR, SERVICES


def scenario_cards(name: str) -> list[dict[str, Any]]:
    body = json.loads((SCENARIOS_DIR / name).read_text("utf-8"))
    body.pop("_expect", None)
    app = create_app(base_config(CLOCK=lambda: PINNED_NOW))
    answer = app.test_client().post(f"/cds-services/{SERVICES[body['hook']]}", json=body)
    assert answer.status_code == 200
    cards: list[dict[str, Any]] = answer.get_json()["cards"]
    return cards


def nomid_dose_card(specialty: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "MedicationRequest",
        "id": "kineret-peds",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"text": "Kineret"},
        "subject": {"reference": "Patient/p1"},
    }
    criteria = replace(NOMID_CRITERIA, specialty)
    evaluation = Evaluation(
        facts(resource, mg_per_day=200, administrations_per_day=1, weight_kg=20.0),
        decision(
            Outcome.CRITERIA_NOT_MET,
            criteria,
            order_ref="MedicationRequest/kineret-peds",
            section="I.B",
            indication="nomid",
        ),
    )
    response = render_response(
        "order-sign", [evaluation], settings=SETTINGS, uuid_factory=uuid_counter(), now=NOW
    )
    cards: list[dict[str, Any]] = response["cards"]
    (card,) = cards
    return card


def test_a_dose_card_says_the_prescribers_specialty_is_still_to_confirm() -> None:
    # The sandbox signs as a Practitioner with no role: the specialty cannot be read.
    unknown = criterion(
        "I.B.2",
        Status.UNKNOWN,
        check="prescriber-specialty",
        reason="The prescriber's specialty is not available",
        details={"confirm_specialty": True},
    )
    card = nomid_dose_card(unknown)

    assert card["summary"].startswith("Kineret 10 mg/kg/day is over the plan limit")
    assert card["detail"].endswith(
        "Also needed for the prior authorization: confirm the prescriber is a rheumatologist."
    )


def test_a_dose_card_with_nothing_else_missing_says_only_the_dose() -> None:
    met = criterion("I.B.2", check="prescriber-specialty", reason="Pediatric rheumatologist")

    assert "Also needed" not in nomid_dose_card(met)["detail"]


def test_a_dose_card_names_documentation_still_to_add() -> None:
    cards = scenario_cards("other/nomid_continued_dose_increase_over_limit.json")

    (dose,) = [c for c in cards if "over the plan limit" in c["summary"]]
    assert "Also needed for the prior authorization: add " in dose["detail"]


def test_a_recorded_diagnosis_reads_in_lower_case_mid_sentence_but_keeps_its_proper_noun():
    (card,) = scenario_cards("other/off_label_adult_onset_stills_m06_1.json")

    assert card["summary"].startswith("Off-label: Kineret for adult-onset Still's disease,")
    assert "Kineret for adult-onset Still's disease is not a use" in card["detail"]


def test_an_off_label_card_names_a_diagnosis_no_value_set_knows() -> None:
    (card,) = scenario_cards("other/off_label_gout.json")

    assert card["summary"].startswith("Off-label: Kineret for gout")
    assert "this diagnosis" not in card["detail"]


def test_unmatched_conditions_are_words_only_and_change_no_decision() -> None:
    body = json.loads((SCENARIOS_DIR / "other/off_label_gout.json").read_text("utf-8"))
    expect = body.pop("_expect")
    app = create_app(base_config(CLOCK=lambda: PINNED_NOW))
    answer = app.test_client().post(f"/cds-services/{SERVICES[body['hook']]}", json=body)
    (evaluation,) = answer.get_json()["extension"]["com.anakinra-cds.evaluation"]

    assert evaluation["outcome"] == expect["outcome"]


def test_the_coverage_reason_names_the_policy_but_no_section() -> None:
    body = json.loads((SCENARIOS_DIR / "ra/ia3_turns_18_tomorrow.json").read_text("utf-8"))
    body.pop("_expect", None)
    app = create_app(base_config(CLOCK=lambda: ORDER_NOW))
    answer = app.test_client().post(f"/cds-services/{SERVICES[body['hook']]}", json=body)
    data = answer.get_json()

    [reason] = list(coverage_reasons(data))
    assert reason.startswith("Not covered as ordered under NH.PHAR.244: ")
    assert CLAUSE_ID.search(reason) is None
    # Each criterion's id stays in its own detail's code, for systems.
    [extension] = coverage_information(data).values()
    codes = [
        part["valueCodeableConcept"].get("text", "")
        for detail in extension["extension"]
        if detail["url"] == "detail"
        for part in detail["extension"]
        if part["url"] == "code"
    ]
    assert "NH.PHAR.244 I.A.3" in codes
