"""What the policy engine decides: one `Decision` per evaluated order.

Cards, the CRD coverage-information action, the audit store and the
`cds-service evaluate` command all render from these objects alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    MET = "met"
    NOT_MET = "not-met"
    UNKNOWN = "unknown"


class Outcome(StrEnum):
    CRITERIA_MET = "criteria-met"
    DOCUMENTATION_NEEDED = "documentation-needed"
    CRITERIA_NOT_MET = "criteria-not-met"
    OFF_LABEL_REVIEW = "off-label-review"


class Pathway(StrEnum):
    INITIAL = "initial"
    CONTINUED = "continued"


@dataclass(frozen=True)
class CriterionResult:
    id: str
    """The policy's own numbering: "I.A.1", "III.B", "IV.C" ..."""
    text: str
    """The policy's words for the criterion."""
    check: str
    """The name of the reusable check that decided it, e.g. "dose-limit",
    "no-concurrent-therapy", "hypersensitivity", "care-setting"."""
    status: Status
    reason: str
    """One line, plain words, fit for a prescriber."""
    evidence: tuple[str, ...] = ()
    """`ResourceType/id` references the status was decided from."""
    documentation: str | None = None
    """What to submit, when the status is unknown."""
    details: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Check-specific values the cards need, e.g. for a dose limit
    {"ordered_mg_per_day": 200, "limit_mg_per_day": 100, "weight_kg": 20.0}, for a
    combination {"conflicts": [{"drug": "adalimumab", "ref": "...", "draft": true}]}."""


@dataclass(frozen=True)
class Decision:
    policy_id: str
    policy_version: str
    order_ref: str
    pathway: Pathway
    section: str
    """The policy section evaluated: "I.A", "I.B", "I.C", "I.D", "I.E", "II.A", "II.B", "II.C"."""
    indication: str
    """The indication evaluated, e.g. "rheumatoid-arthritis", "nomid", "dira",
    "covid-19", "other"."""
    outcome: Outcome
    criteria: tuple[CriterionResult, ...]
    approval_months: int | None = None
    documentation: tuple[str, ...] = ()
    """What to submit for every unknown criterion, in criterion order."""
    policy_references: tuple[str, ...] = ()
    """Other policies the decision points to (CP.PMN.53 / CP.PMN.255 / CP.PMN.16)."""
    considered: tuple[tuple[str, str, Outcome], ...] = ()
    """(section, outcome) of every indication evaluated, when more than one was."""

    def criterion(self, criterion_id: str) -> CriterionResult | None:
        for result in self.criteria:
            if result.id == criterion_id:
                return result
        return None
