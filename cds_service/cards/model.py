"""Inputs of the card renderer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cds_service.policy.model import Decision
from fhir_mappings.facts import PolicyFacts


@dataclass(frozen=True)
class Evaluation:
    """One drug order that was evaluated: its facts and the deciding policy's decision."""

    facts: PolicyFacts
    decision: Decision


@dataclass(frozen=True)
class MissingData:
    """Data of the patient's record that could not be read for a call."""

    prefetch_key: str
    """The service's prefetch key, e.g. "patient"."""
    resource_type: str
    """What the key reads, e.g. "Patient"."""
    issue: str
    """FHIR issue type code of the failure, e.g. "security", "timeout", "not-found"."""
    reason: str
    """Plain words, no URL, token or patient data."""
    required: bool = False
    """The service cannot evaluate any order without it (the patient, the orders)."""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prefetchKey": self.prefetch_key,
            "resourceType": self.resource_type,
            "issue": self.issue,
            "reason": self.reason,
        }
        if self.required:
            body["required"] = True
        return body


@dataclass(frozen=True)
class NotEvaluated:
    """An order that may be for a policy's drug and could not be evaluated (never rendered
    as silence)."""

    order_ref: str
    """`MedicationRequest/<id>` of the draft order."""
    reason: str
    """Plain words, no PHI: why the check could not be completed."""
    missing_data: tuple[MissingData, ...] = ()
    """The record data that could not be read, when that is why."""
    drug_known: bool = True
    """False when the order's drug itself could not be told (it may be another drug)."""
    policy_id: str | None = None
    """The policy (pack) the order would have gone to, when known: its card texts are
    used. None: the call's first evaluated order's policy, else the default pack."""


@dataclass(frozen=True)
class CardSettings:
    """What the plan configures about its cards."""

    plan_name: str
    policy_label: str
    """E.g. "<policy id> <policy title> — <plan name>"."""
    policy_url: str | None = None
    """Where the plan publishes the policy; no policy link when unset."""
    documentation_form_url: str | None = None
    """An absolute web form for sending the documentation (shown as an absolute link)."""
    smart_app_url: str | None = None
    """A SMART app launch URL for sending the documentation (shown as a smart link);
    used instead of the form when both are set."""
    override_reason_system: str = "https://anakinra-cds.example.org/fhir/CodeSystem/override-reason"
    """Code system of our override reasons (see `codes.OVERRIDE_REASONS`)."""
