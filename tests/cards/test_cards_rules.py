"""Behaviour a prescriber or an EHR would notice, across every card case."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from cds_service.cards import COVERAGE_INFORMATION_URL, Evaluation, render_response
from cds_service.policy.model import Outcome
from tests.cards.builders import NOW, SETTINGS, decision, facts, medication_request, uuid_counter
from tests.cards.cases import CASES

SCHEMA = Path(__file__).resolve().parents[2] / "hooks" / "schemas" / "response.schema.json"


def _render(name: str) -> dict[str, Any]:
    hook, evaluations = CASES[name]()
    return render_response(
        hook, evaluations, settings=SETTINGS, uuid_factory=uuid_counter(), now=NOW
    )


def _walk(value: Any, path: str = "$") -> list[str]:
    found = []
    if value is None or (isinstance(value, str | list | dict) and not value):
        found.append(path)
    if isinstance(value, dict):
        for key, item in value.items():
            found += _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _walk(item, f"{path}[{index}]")
    return found


@pytest.mark.parametrize("name", sorted(CASES))
def test_response_is_valid_cds_hooks(name: str) -> None:
    response = _render(name)
    validator = Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert [e.message for e in validator.iter_errors(response)] == []
    empties = [p for p in _walk({k: v for k, v in response.items() if k != "cards"})]
    empties += [p for card in response["cards"] for p in _walk(card)]
    assert empties == []
    for card in response["cards"]:
        assert len(card["summary"]) < 140
        # The criteria table stays in the evaluation extension, not on the card.
        assert "| Criterion | Status | Reason |" not in card["detail"]
        assert card["extension"]["davinci-crd.associated-resource"][0]["reference"].startswith(
            "MedicationRequest/"
        )
        if card["indicator"] in {"warning", "critical"}:
            assert all(r["system"] and r["code"] and r["display"] for r in card["overrideReasons"])
        else:
            assert "overrideReasons" not in card


@pytest.mark.parametrize("name", sorted(CASES))
def test_input_order_is_never_mutated(name: str) -> None:
    hook, evaluations = CASES[name]()
    before = [
        copy.deepcopy(dict(e.facts.order.resource))
        for e in evaluations
        if isinstance(e, Evaluation)
    ]
    render_response(hook, evaluations, settings=SETTINGS, uuid_factory=uuid_counter(), now=NOW)
    after = [dict(e.facts.order.resource) for e in evaluations if isinstance(e, Evaluation)]
    assert after == before


def test_combination_copies_give_one_card_with_a_delete_for_the_draft() -> None:
    cards = _render("combination_draft")["cards"]
    assert [c["indicator"] for c in cards] == ["critical"]
    deletes = [a["resourceId"] for s in cards[0]["suggestions"] for a in s["actions"]]
    assert deletes == ["MedicationRequest/humira-draft", "MedicationRequest/kineret-1"]
    assert cards[0]["selectionBehavior"] == "at-most-one"


def test_order_select_shows_clinical_cards_only() -> None:
    cards = _render("order_select_clinical_only")["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["contraindication"]
    assert all("documentation" not in c["summary"] for c in cards)


def test_order_sign_shows_documentation_card_with_what_to_submit() -> None:
    (card,) = _render("documentation_needed")["cards"]
    assert card["indicator"] == "warning"
    # The item's label is not said twice: its words are the start of the item.
    assert "- **A baseline CDAI or RAPID3** score." in card["detail"]
    assert {link["type"] for link in card["links"]} == {"absolute"}


def test_dose_suggestion_for_ra_is_100_mg_once_daily_and_caps_dispense() -> None:
    (card,) = _render("dose_over_ra")["cards"]
    resource = card["suggestions"][0]["actions"][0]["resource"]
    (line,) = resource["dosageInstruction"]
    assert line["doseAndRate"][0]["doseQuantity"]["value"] == 100
    assert line["timing"]["repeat"]["frequency"] == 1
    assert resource["dispenseRequest"]["quantity"]["value"] == 28
    assert "200 mg/day" in card["summary"]
    assert "100 mg/day" in card["summary"]


def test_dose_suggestion_for_nomid_keeps_frequency_within_8_mg_per_kg() -> None:
    (card,) = _render("dose_over_nomid")["cards"]
    resource = card["suggestions"][0]["actions"][0]["resource"]
    (line,) = resource["dosageInstruction"]
    per_dose = line["doseAndRate"][0]["doseQuantity"]["value"]
    assert line["timing"]["repeat"]["frequency"] == 2
    assert per_dose * 2 <= 8 * 20.0
    assert per_dose == 80


def test_no_weight_means_no_dose_guess() -> None:
    hook, evaluations = CASES["dose_over_nomid"]()
    (item,) = evaluations
    assert isinstance(item, Evaluation)
    no_weight = Evaluation(
        facts(dict(item.facts.order.resource), mg_per_day=200, administrations_per_day=2),
        decision(
            Outcome.CRITERIA_NOT_MET,
            tuple(
                # no weight: the check gives the limit per kg, not per day
                c
                if c.check != "dose-limit"
                else type(c)(
                    **{
                        **c.__dict__,
                        "details": {"limit_mg_per_kg_per_day": 8, "syringe_band_mg": 105},
                    }
                )
                for c in item.decision.criteria
            ),
            order_ref=item.decision.order_ref,
            section="I.B",
            indication="nomid",
        ),
    )
    response = render_response(
        hook, [no_weight], settings=SETTINGS, uuid_factory=uuid_counter(), now=NOW
    )
    (card,) = response["cards"]
    assert "suggestions" not in card
    assert "record a current weight" in card["detail"]


def _coverage_parts(response: dict[str, Any]) -> dict[str, list[Any]]:
    (action,) = response["systemActions"]
    (ext,) = [e for e in action["resource"]["extension"] if e["url"] == COVERAGE_INFORMATION_URL]
    parts: dict[str, list[Any]] = {}
    for part in ext["extension"]:
        parts.setdefault(part["url"], []).append(part)
    return parts


@pytest.mark.parametrize(
    ("name", "covered", "pa_needed"),
    [
        ("criteria_met", "covered", "auth-needed"),
        ("documentation_needed", "covered", "auth-needed"),
        ("dose_over_ra", "not-covered", None),
        ("off_label", "conditional", "auth-needed"),
    ],
)
def test_coverage_information_follows_crd_invariants(
    name: str, covered: str, pa_needed: str | None
) -> None:
    parts = _coverage_parts(_render(name))
    assert parts["covered"][0]["valueCode"] == covered
    assert [p["valueCode"] for p in parts.get("pa-needed", [])] == (
        [pa_needed] if pa_needed else []
    )
    conditional = any(
        p["valueCode"] == "conditional"
        for key in ("covered", "pa-needed", "doc-needed")
        for p in parts.get(key, [])
    )
    assert conditional == ("info-needed" in parts)  # crd-ci-q3
    assert "satisfied-pa-id" not in parts  # crd-ci-q5: we never answer "satisfied"
    if "doc-purpose" in parts:  # crd-ci-q8
        assert parts["reason"][0]["valueCodeableConcept"]["text"]
    assert len(parts["coverage-assertion-id"]) == 1
    assert parts["date"][0]["valueDate"] == "2026-03-02"


def test_criteria_met_expiry_is_date_plus_approval_months() -> None:
    parts = _coverage_parts(_render("criteria_met"))
    assert parts["expiry-date"][0]["valueDate"] == "2026-09-02"


def test_old_coverage_information_is_replaced_not_stacked() -> None:
    resource = medication_request()
    resource["extension"] = [{"url": COVERAGE_INFORMATION_URL, "extension": [{"url": "x"}]}]
    evaluation = Evaluation(facts(resource), decision(Outcome.CRITERIA_MET, approval_months=6))
    response = render_response(
        "order-sign", [evaluation], settings=SETTINGS, uuid_factory=uuid_counter(), now=NOW
    )
    extensions = response["systemActions"][0]["resource"]["extension"]
    assert len(extensions) == 1
    assert extensions[0]["extension"][0]["url"] == "coverage"


def test_no_coverage_means_no_system_action_but_still_cards() -> None:
    evaluation = Evaluation(
        facts(coverage_refs=()), decision(Outcome.CRITERIA_MET, approval_months=6)
    )
    response = render_response(
        "order-sign", [evaluation], settings=SETTINGS, uuid_factory=uuid_counter(), now=NOW
    )
    assert "systemActions" not in response
    assert len(response["cards"]) == 1


def test_not_evaluated_is_never_silent_at_either_hook() -> None:
    hook, evaluations = CASES["not_evaluated"]()
    for hook in ("order-select", "order-sign"):
        response = render_response(
            hook, evaluations, settings=SETTINGS, uuid_factory=uuid_counter(), now=NOW
        )
        assert [c["indicator"] for c in response["cards"]] == ["warning"]
        assert "manual review" in response["cards"][0]["summary"]


def test_evaluation_extension_lists_every_criterion() -> None:
    response = _render("other_not_met")
    (evaluation,) = response["extension"]["com.anakinra-cds.evaluation"]
    assert evaluation["outcome"] == "criteria-not-met"
    assert evaluation["policy"] == {"id": "NH.PHAR.244", "version": "2025-04"}
    statuses = {c["id"]: c["status"] for c in evaluation["criteria"]}
    assert statuses["I.A.3"] == "not-met"
    assert statuses["I.A.1"] == "met"
