"""Cards of the second pack (IL1.RIL.01, Arcalyst, vials) in its own words: a weekly dose
over the limit, the switch from the drug it replaces, and a use the policy does not cover."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from cds_service.cards import Evaluation, render_response
from cds_service.cards.texts import texts_for
from cds_service.policy.checks import run_check
from cds_service.policy.definition import PACKS_DIR
from cds_service.policy.model import CriterionResult, Decision, Outcome, Status
from tests.cards.builders import NOW, SETTINGS, criterion, decision, facts, uuid_counter
from tests.mappings.mapping_builders import dosage
from tests.policy.test_dose_schedules import CAPS_PARAMS, WEEKLY, ctx, facts_for, supply

PACK = "IL1.RIL.01"
ORDER = "MedicationRequest/arcalyst-1"


def _decision(outcome: Outcome, *criteria: CriterionResult, section: str = "I.A") -> Decision:
    return dataclasses.replace(
        decision(outcome, criteria, order_ref=ORDER, section=section, indication="caps"),
        policy_id=PACK,
        policy_version="2025.10-1",
    )


def _render(evaluation: Evaluation, hook: str = "order-sign") -> dict[str, Any]:
    return render_response(
        hook, [evaluation], settings=SETTINGS, uuid_factory=uuid_counter(), now=NOW
    )


def test_the_pack_has_the_texts_of_every_card_its_policy_triggers() -> None:
    texts = texts_for(PACK)
    assert texts.product == "Arcalyst"
    for kind in ("dose", "switch", "not_covered", "combination", "duplicate", "off_label"):
        assert texts.has(kind), kind
    nh = texts_for("NH.PHAR.244")
    assert nh.has("dose")
    assert not nh.has("switch")  # its policy has no switch_from
    assert not nh.has("not_covered")  # nor a use it does not cover


def test_a_weekly_dose_over_the_limit_names_vials_and_the_weekly_schedule() -> None:
    # An adult with CAPS: 320 mg (2 vials) every week, 8 vials for 28 days; the limit is
    # 160 mg (1 vial) once weekly after the loading dose, 4 vials per 28 days.
    order_facts = facts_for([dosage(320, timing=WEEKLY)], dispense=supply(8))
    verdict = run_check("dose-limit", CAPS_PARAMS, order_facts, ctx())
    assert verdict.status is Status.NOT_MET
    result = criterion(
        "I.A.7",
        Status.NOT_MET,
        check="dose-limit",
        reason=verdict.reason,
        details=dict(verdict.details),
    )
    evaluation = Evaluation(order_facts, _decision(Outcome.CRITERIA_NOT_MET, result))
    (card,) = _render(evaluation)["cards"]
    summary = card["summary"]
    # The fix in words, whole (the ordered and allowed schedules are in the detail's table).
    assert summary == (
        "Arcalyst dose is over the plan limit: change to 160 mg once weekly; dispense 4 vials "
        "for 28 days"
    )
    assert len(summary) < 140
    assert card["indicator"] == "warning"
    assert "| Dispensed for 28 days | 8 vials | 4 vials |" in card["detail"]
    assert "220 mg single-dose vial" in card["detail"]  # the pack's words on its unit
    (suggestion,) = card["suggestions"]
    assert suggestion["label"] == "Change to 160 mg once weekly"
    new = suggestion["actions"][0]["resource"]
    assert new["dispenseRequest"]["quantity"]["value"] == 4
    words = " ".join([summary, card["detail"], suggestion["label"]])
    for other_pack_word in ("Kineret", "syringe", "Appendix E"):
        assert other_pack_word not in words


def test_only_the_quantity_over_the_limit_keeps_the_dose_in_vials() -> None:
    order_facts = facts_for([dosage(160, timing=WEEKLY)], dispense=supply(8))
    verdict = run_check("dose-limit", CAPS_PARAMS, order_facts, ctx())
    result = criterion("I.A.7", Status.NOT_MET, check="dose-limit", details=dict(verdict.details))
    (card,) = _render(Evaluation(order_facts, _decision(Outcome.CRITERIA_NOT_MET, result)))["cards"]
    assert card["summary"] == (
        "Arcalyst: 8 vials for 28 days is over the plan limit of 4 vials; dispense 4 vials "
        "for 28 days"
    )


def _switching(status: Status) -> CriterionResult:
    details: dict[str, Any] = {
        "conflicts": [],
        "uncertain": [],
        "switch_from": [
            {"drug": "anakinra", "ref": "MedicationRequest/kineret-current", "status": "active"}
        ],
    }
    if status is Status.NOT_MET:
        details["conflicts"] = [
            {"drug": "adalimumab", "ref": "MedicationRequest/humira-1", "draft": False}
        ]
    return criterion(
        "I.B.6",
        status,
        check="no-concurrent-therapy",
        reason="anakinra (MedicationRequest/kineret-current) is the drug being replaced",
        details=details,
    )


def test_the_switch_card_tells_to_stop_the_replaced_drug_at_both_hooks() -> None:
    evaluation = Evaluation(
        facts(), _decision(Outcome.CRITERIA_MET, _switching(Status.MET), section="I.B")
    )
    for hook in ("order-select", "order-sign"):
        cards = _render(evaluation, hook)["cards"]
        (card,) = [c for c in cards if c["source"]["topic"]["code"] == "duplicate-therapy"]
        assert card["indicator"] == "info"
        assert card["summary"] == (
            "Switching to Arcalyst: stop anakinra when Arcalyst starts, at the time of the next "
            "anakinra dose"
        )
        assert card["detail"].startswith("Stop anakinra when Arcalyst starts")
        assert "MedicationRequest/" not in card["detail"]
        assert "I.B.6" not in card["detail"]
    assert len(_render(evaluation, "order-select")["cards"]) == 1  # nothing else at select


def test_a_switch_with_a_real_combination_gets_both_cards() -> None:
    evaluation = Evaluation(
        facts(), _decision(Outcome.CRITERIA_NOT_MET, _switching(Status.NOT_MET), section="I.B")
    )
    cards = _render(evaluation, "order-select")["cards"]
    assert [c["indicator"] for c in cards] == ["critical", "info"]
    assert cards[0]["summary"].startswith("Arcalyst with adalimumab")
    assert "stop anakinra" in cards[1]["summary"]


def test_no_switch_card_without_records_of_a_replaced_drug() -> None:
    plain = criterion("I.B.6", check="no-concurrent-therapy", details={"conflicts": []})
    evaluation = Evaluation(facts(), _decision(Outcome.CRITERIA_MET, plain, section="I.B"))
    # Criteria met and coverage information sent: no card at all (CRD resp-12), no switch card.
    assert _render(evaluation)["cards"] == []
    assert _render(evaluation)["systemActions"]


def _nomid_reason() -> str:
    policy = yaml.safe_load((PACKS_DIR / PACK / "policy.yaml").read_text(encoding="utf-8"))
    (section,) = [s for s in policy["sections"] if s["id"] == "I.E"]
    params = section["criteria"][0]["params"]
    verdict = run_check("not-covered", params, facts(), ctx())
    assert verdict.status is Status.NOT_MET
    return verdict.reason


def test_a_use_the_policy_does_not_cover_states_the_reason() -> None:
    reason = _nomid_reason()
    result = criterion("III.B", Status.NOT_MET, check="not-covered", reason=reason)
    evaluation = Evaluation(facts(), _decision(Outcome.CRITERIA_NOT_MET, result, section="I.E"))
    for hook in ("order-select", "order-sign"):
        (card,) = _render(evaluation, hook)["cards"]
        assert card["indicator"] == "warning"
        # The pack's plain words for III.B, the check's reason in the detail.
        assert card["summary"] == "Arcalyst not covered: NOMID is covered only with Kineret"
        assert "III.B" not in card["summary"] + card["detail"]
        assert card["detail"].startswith("Do not sign this order; consider anakinra (Kineret)")
        assert f"Found: {reason.strip().rstrip('.')}" in card["detail"].replace("\\", "")
        assert card["suggestions"][0]["label"] == "Remove this Arcalyst order"


def test_a_reason_too_long_for_the_summary_gets_the_short_one() -> None:
    # A criterion the pack has no words for (an id the engine adds): the check's reason,
    # here too long for a summary.
    result = criterion(
        "Other", Status.NOT_MET, check="not-covered", reason="A use not covered. " * 10
    )
    evaluation = Evaluation(facts(), _decision(Outcome.CRITERIA_NOT_MET, result))
    (card,) = _render(evaluation)["cards"]
    assert card["summary"] == ("Arcalyst is not covered for this use: do not sign this order")
