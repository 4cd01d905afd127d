"""An active serious infection at the start of therapy (`no-active-condition` not met, e.g.
IL1.RIL.01 III.C) is a safety stop: a critical card of its own that names the condition in
the chart's words, at both hooks. A use the policy does not cover (NOMID, III.B) stays a
coverage warning."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds_service.cards import Evaluation, render_response
from cds_service.cards.texts import CardTextsError, load_card_texts
from cds_service.policy.checks import run_check
from cds_service.policy.definition import PACKS_DIR
from cds_service.policy.model import CriterionResult, Decision, Outcome, Status
from fhir_mappings.facts import ConditionRecord, PolicyFacts
from tests.cards.builders import NOW, SETTINGS, criterion, decision, facts, uuid_counter
from tests.cards.test_cards_texts import OTHER_ID, nh_cards, policy_with, write_pack
from tests.policy.test_dose_schedules import ctx

PACK = "IL1.RIL.01"
ORDER = "MedicationRequest/arcalyst-1"


def _infection(
    ref: str, code: str, display: str, verification: str = "confirmed"
) -> ConditionRecord:
    return ConditionRecord(
        valuesets=frozenset({"serious-infection"}),
        system="http://hl7.org/fhir/sid/icd-10-cm",
        code=code,
        display=display,
        ref=ref,
        source="encounter-diagnosis",
        onset=date(2026, 2, 18),
        onset_latest=date(2026, 2, 18),
        abatement=None,
        abatement_earliest=None,
        abated=False,
        clinical_status="active",
        verification=verification,
    )


def _iii_c_params() -> dict[str, Any]:
    policy = yaml.safe_load((PACKS_DIR / PACK / "policy.yaml").read_text(encoding="utf-8"))
    (common,) = [c for c in policy["common_criteria"] if c["id"] == "III.C"]
    params: dict[str, Any] = common["params"]
    return params


def _with(*records: ConditionRecord) -> PolicyFacts:
    return dataclasses.replace(facts(), condition_history=records)


def _decision(*criteria: CriterionResult, outcome: Outcome = Outcome.CRITERIA_NOT_MET) -> Decision:
    return dataclasses.replace(
        decision(outcome, criteria, order_ref=ORDER, section="I.A", indication="caps"),
        policy_id=PACK,
        policy_version="2027.01-1",
    )


def _iii_c(chart: PolicyFacts) -> CriterionResult:
    verdict = run_check("no-active-condition", _iii_c_params(), chart, ctx())
    return criterion(
        "III.C",
        verdict.status,
        check="no-active-condition",
        reason=verdict.reason,
        evidence=verdict.evidence,
    )


def _cards(chart: PolicyFacts, result: CriterionResult, hook: str) -> list[dict[str, Any]]:
    outcome = (
        Outcome.CRITERIA_NOT_MET
        if result.status is Status.NOT_MET
        else Outcome.DOCUMENTATION_NEEDED
    )
    evaluation = Evaluation(chart, _decision(criterion("I.A.1"), result, outcome=outcome))
    response = render_response(
        hook, [evaluation], settings=SETTINGS, uuid_factory=uuid_counter(), now=NOW
    )
    cards: list[dict[str, Any]] = response["cards"]
    return cards


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_an_active_serious_infection_is_a_critical_card_naming_it(hook: str) -> None:
    chart = _with(_infection("Condition/sepsis", "A41.9", "Sepsis, unspecified organism"))
    result = _iii_c(chart)
    assert result.status is Status.NOT_MET
    (card,) = _cards(chart, result, hook)  # no second "criteria not met" warning for it
    assert card["indicator"] == "critical"
    # The recorded name, lower-cased mid-sentence.
    assert "(sepsis, unspecified organism)" in card["summary"]
    assert card["summary"].startswith("Do not start Arcalyst")
    # The action first; what was found after it, by name, not by record id or clause.
    assert card["detail"].startswith("Treat the infection and start Arcalyst once it has resolved")
    assert (
        "Found: Active serious infection recorded: Sepsis, unspecified organism."
        in (card["detail"])
    )
    assert "Condition/sepsis" not in card["detail"]
    assert "III.C" not in card["detail"]
    assert card["source"]["topic"]["code"] == "contraindication"
    assert card["suggestions"][0]["label"] == "Remove this Arcalyst order"
    assert {r["code"] for r in card["overrideReasons"]} == {
        "data-out-of-date",
        "benefit-outweighs-risk",
    }


def test_several_infections_are_named_and_shrink_to_fit() -> None:
    chart = _with(
        _infection("Condition/sepsis", "A41.9", "Sepsis, unspecified organism"),
        _infection("Condition/pna", "J18.9", "Pneumonia, unspecified organism"),
        _infection("Condition/tb", "A15.0", "Tuberculosis of lung"),
    )
    (card,) = _cards(chart, _iii_c(chart), "order-sign")
    assert card["indicator"] == "critical"
    assert len(card["summary"]) < 140
    assert card["summary"] == (
        "Do not start Arcalyst during an active serious infection (sepsis, unspecified "
        "organism and 2 more): treat it first"
    )


def test_a_working_diagnosis_of_infection_is_no_stop_card() -> None:
    chart = _with(_infection("Condition/pna", "J18.9", "Pneumonia?", "provisional"))
    result = _iii_c(chart)
    assert result.status is Status.UNKNOWN
    cards = _cards(chart, result, "order-sign")
    assert [c["indicator"] for c in cards] == ["warning"]  # documentation needed
    assert _cards(chart, result, "order-select") == []


def test_an_infection_the_chart_cannot_name_gets_the_short_summary() -> None:
    result = criterion(
        "III.C", Status.NOT_MET, check="no-active-condition", reason="Active infection."
    )
    (card,) = _cards(facts(), result, "order-sign")
    assert card["indicator"] == "critical"
    assert card["summary"] == (
        "Do not start Arcalyst during an active serious infection: treat it first"
    )


def test_a_pack_with_no_active_condition_needs_the_texts(tmp_path: Path) -> None:
    cards = nh_cards()
    folder = write_pack(tmp_path / OTHER_ID, cards, policy_with("no-active-condition"))
    with pytest.raises(CardTextsError, match="active_condition: missing"):
        load_card_texts(folder)


def test_nomid_not_covered_stays_an_off_guideline_warning() -> None:
    policy = yaml.safe_load((PACKS_DIR / PACK / "policy.yaml").read_text(encoding="utf-8"))
    (section,) = [s for s in policy["sections"] if s["id"] == "I.E"]
    verdict = run_check("not-covered", section["criteria"][0]["params"], facts(), ctx())
    result = criterion("III.B", Status.NOT_MET, check="not-covered", reason=verdict.reason)
    (card,) = _cards(facts(), result, "order-sign")
    assert card["indicator"] == "warning"
    # Outside the plan's policy (never a coverage-info card: CRD resp-25).
    assert card["source"]["topic"]["code"] == "off-guideline"
