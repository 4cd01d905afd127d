"""`indications[].claim_from_history`: a recurring indication (recurrent pericarditis) whose
Conditions are all resolved (between episodes, in remission on the drug) is claimed from the
condition history instead of falling to the off-label section; the section's own criteria
still decide, and an order's reason or an active diagnosis still decides first."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cds_service.policy.definition import PolicyFileError, parse_policy
from cds_service.policy.engine import evaluate
from cds_service.policy.model import Decision, Outcome
from cds_service.policy.packs import default_registry
from tests.policy.case_builder import build_facts, case_facts_spec, load_yaml

PACK = default_registry().packs["IL1.RIL.01"]
BASES = PACK.directory / "cases" / "bases"
RESOLVED = [
    {"valuesets": ["pericarditis"], "onset": -300, "abatement": -280, "status": "resolved"},
    {"valuesets": ["pericarditis"], "onset": -60, "abatement": -40, "status": "resolved"},
]


def _decide(facts_over: dict[str, Any], policy: Any = None) -> Decision:
    spec = case_facts_spec({"base": "rp-initial-met", "facts": facts_over}, BASES)
    facts, today = build_facts(spec, unit=PACK.drug.unit)
    return evaluate(policy or PACK.policy, facts, today)


def _history(**change: Any) -> list[dict[str, Any]]:
    return [{**record, **change} for record in RESOLVED]


def test_resolved_episodes_claim_recurrent_pericarditis() -> None:
    decision = _decide({"diagnoses": [], "condition_history": _history()})
    assert (decision.section, decision.indication) == ("I.C", "recurrent-pericarditis")
    assert decision.outcome is Outcome.CRITERIA_MET


def test_without_the_option_resolved_episodes_claim_nothing() -> None:
    indications = tuple(
        dataclasses.replace(i, claim_from_history=False) for i in PACK.policy.indications
    )
    policy = dataclasses.replace(PACK.policy, indications=indications)
    decision = _decide({"diagnoses": [], "condition_history": _history()}, policy)
    assert decision.section == "I.D"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"verification": "provisional"}, "a working diagnosis is not a confirmed history"),
        ({"verification": "differential"}, "nor a differential one"),
        ({"source": "observation"}, "a finding is not a diagnosis"),
    ],
)
def test_only_confirmed_conditions_claim(change: dict[str, Any], why: str) -> None:
    decision = _decide({"diagnoses": [], "condition_history": _history(**change)})
    assert decision.section == "I.D", why


def test_an_active_diagnosis_claims_first() -> None:
    nomid = {"valuesets": ["nomid-cinca"], "code": "239826001", "display": "NOMID"}
    decision = _decide({"diagnoses": [nomid], "condition_history": _history()})
    assert decision.section == "I.E"  # not covered; the old pericarditis does not outbid it


def test_the_order_reason_decides_before_the_history() -> None:
    still = {
        "valuesets": ["uncovered-arthritis"],
        "code": "M06.1",
        "system": "http://hl7.org/fhir/sid/icd-10-cm",
        "display": "Adult-onset Still's disease",
    }
    decision = _decide(
        {"diagnoses": [], "condition_history": _history(), "order": {"reasons": [still]}}
    )
    assert decision.section == "I.D"


def test_the_option_must_be_a_boolean() -> None:
    raw = load_yaml(PACK.directory / "policy.yaml")
    raw["indications"][-1]["claim_from_history"] = "yes"
    with pytest.raises(PolicyFileError, match="claim_from_history"):
        parse_policy(raw)


def test_the_pack_sets_it_for_recurrent_pericarditis_only() -> None:
    claiming = [i.name for i in PACK.policy.indications if i.claim_from_history]
    assert claiming == ["recurrent-pericarditis"]
