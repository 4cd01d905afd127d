"""A second drug policy of the same family needs only a new data file."""

from __future__ import annotations

from pathlib import Path

from cds_service.policy.engine import evaluate, load_policy
from cds_service.policy.model import Outcome
from tests.policy.case_builder import build_facts

SECOND = """
id: XX.TEST.1
title: A sibling IL-1 policy for testing
drug: anakinra
line_of_business: Medicaid
effective: "01.25"
last_review: "01.25"
version: "test-1"
references: {CP.PMN.53: Off-label use policy}
pathway:
  current_statuses: [active]
  ignored_statuses: [entered-in-error]
  continued_within_days: 30
indications:
  - {name: nomid, title: NOMID, valuesets: [nomid-cinca]}
common_criteria:
  - id: IV.C
    text: Hypersensitivity.
    check: hypersensitivity
    params: {valuesets: [anakinra]}
    documentation: Allergy history.
sections:
  - id: I.A
    title: NOMID
    pathway: initial
    indications: [nomid]
    approval_months: 3
    criteria:
      - id: I.A.1
        text: Age >= 2 years.
        check: minimum-age
        params: {years: 2}
        documentation: Date of birth.
      - id: I.A.2
        text: Dose <= 4 mg/kg/day.
        check: dose-limit
        params: {mg_per_kg_per_day: 4, weight_based_syringes: true}
        documentation: Weight and dose.
  - id: I.B
    title: Other
    pathway: initial
    indications: [other]
    off_label: true
    policy_references: [CP.PMN.53]
    criteria:
      - id: I.B
        text: Off-label.
        check: refer-to-policy
        params: {policies: [CP.PMN.53], reason: Off-label review.}
        documentation: Evidence.
  - id: II.A
    title: Continued
    pathway: continued
    indications: [nomid]
    approval_months: 12
    criteria:
      - id: II.A.1
        text: Currently receiving.
        check: currently-receiving
        documentation: Records.
  - id: II.B
    title: Other, continued
    pathway: continued
    indications: [other]
    off_label: true
    criteria:
      - id: II.B
        text: Off-label.
        check: refer-to-policy
        params: {policies: [CP.PMN.53], reason: Off-label review.}
        documentation: Evidence.
"""


def test_second_policy_from_data_only(tmp_path: Path) -> None:
    path = tmp_path / "second.yaml"
    path.write_text(SECOND, encoding="utf-8")
    policy = load_policy(path)
    spec = {
        "birth_date": "2020-01-01",
        "diagnoses": ["nomid-cinca"],
        "order": {
            "dose": {
                "mg_per_day": 100,
                "mg_per_administration": [100],
                "administrations_per_day": 1,
                "weight": {"kg": 20},
            }
        },
    }
    facts, today = build_facts(spec)
    decision = evaluate(policy, facts, today)
    assert (decision.policy_id, decision.section, decision.approval_months) == (
        "XX.TEST.1",
        "I.A",
        None,
    )
    assert decision.outcome is Outcome.CRITERIA_NOT_MET  # 5 mg/kg/day > 4
    spec["order"]["dose"]["mg_per_day"] = 80  # type: ignore[index]
    spec["order"]["dose"]["mg_per_administration"] = [80]  # type: ignore[index]
    facts, today = build_facts(spec)
    decision = evaluate(policy, facts, today)
    assert decision.outcome is Outcome.CRITERIA_MET
    assert decision.approval_months == 3
