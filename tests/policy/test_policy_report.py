"""The plain-text table and the machine-readable JSON of a decision."""

from __future__ import annotations

import json

from cds_service.policy.engine import evaluate, load_policy
from cds_service.policy.model import Decision
from cds_service.policy.report import decision_to_json, format_table
from tests.policy.case_builder import build_facts, case_facts_spec


def _decide(base: str, facts: dict[str, object] | None = None) -> Decision:
    spec = case_facts_spec({"base": base, "facts": facts or {}})
    built, today = build_facts(spec)
    return evaluate(load_policy(), built, today)


def test_table_header_and_rows() -> None:
    decision = _decide("ra-initial-met", {"prescriber": {"specialties": [], "has_role_data": True}})
    table = format_table(decision)
    assert "Order:    MedicationRequest/order-1" in table
    assert "Pathway:  initial" in table
    assert "Section:  I.A (rheumatoid-arthritis)" in table
    assert "Outcome:  documentation-needed" in table
    assert "Approval: not applicable" in table
    for result in decision.criteria:
        assert any(line.startswith(result.id.ljust(8)) for line in table.splitlines())
    assert "Documentation to submit:" in table
    assert "unknown" in table


def test_table_shows_approval_and_evidence_when_met() -> None:
    decision = _decide("ra-initial-met")
    table = format_table(decision)
    assert "Approval: 6 months" in table
    assert "Observation/" in table  # the CDAI evidence


def test_json_has_every_criterion_and_is_serialisable() -> None:
    decision = _decide(
        "ra-initial-met",
        {"medications": [{"drug": "adalimumab", "status": "active", "start": -10}]},
    )
    data = decision_to_json(decision)
    json.dumps(data)
    assert data["order"] == "MedicationRequest/order-1"
    assert data["policy"] == {"id": "NH.PHAR.244", "version": load_policy().version}
    assert (data["pathway"], data["section"], data["outcome"]) == (
        "initial",
        "I.A",
        "criteria-not-met",
    )
    assert [c["id"] for c in data["criteria"]] == [r.id for r in decision.criteria]
    iii_b = next(c for c in data["criteria"] if c["id"] == "III.B")
    assert iii_b["status"] == "not-met"
    assert iii_b["check"] == "no-concurrent-therapy"
    assert iii_b["details"]["conflicts"][0]["drug"] == "adalimumab"
    assert iii_b["evidence"] == [iii_b["details"]["conflicts"][0]["ref"]]


def test_json_off_label_references() -> None:
    decision = _decide(
        "nomid-initial-met",
        {"order": {"reasons": ["caps-fcas-mws"]}, "diagnoses": ["caps-fcas-mws"]},
    )
    data = decision_to_json(decision)
    assert data["outcome"] == "off-label-review"
    assert data["policyReferences"] == ["CP.PMN.53", "CP.PMN.255", "CP.PMN.16"]
    assert data["approvalMonths"] is None
    assert data["documentation"]
