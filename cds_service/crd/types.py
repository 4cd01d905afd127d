"""The CRD card type of every card this service returns: one mapping from our card kind
(the kinds of a pack's cards.yaml, see `cds_service/packs/cards.schema.json`) to a code
of the CRD Response Types value set (http://hl7.org/fhir/us/davinci-crd/ValueSet/cardType,
CRD STU 2.2: every code of http://terminology.hl7.org/CodeSystem/cdshooks-card-type).

CRD carries the type on the card as `source.topic` (a Coding, required on every card);
clients filter on it and the configuration options switch types on and off by code
(`cds_service.crd.configuration`). Pure data and functions: no I/O.
"""

from __future__ import annotations

from typing import Final

CARD_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/cdshooks-card-type"

CARD_TYPES: Final[dict[str, str]] = {
    "coverage-info": "Coverage Information",
    "unsolicited-determ": "Unsolicited Determination",
    "claim": "Claim",
    "insurance": "Insurance",
    "limits": "Limits",
    "network": "Network",
    "appropriate-use": "Appropriate Use",
    "cost": "Cost",
    "therapy-alternatives-opt": "Optional Therapy Alternatives",
    "therapy-alternatives-req": "Required Therapy Alternatives",
    "clinical-reminder": "Clinical Reminder",
    "duplicate-therapy": "Duplicate Therapy",
    "contraindication": "Contraindication",
    "guideline": "Guideline",
    "off-guideline": "Off Guideline",
}
"""Every code of the CRD Response Types value set, with its display."""

KIND_TYPES: Final[dict[str, str]] = {
    "combination": "contraindication",
    "duplicate": "duplicate-therapy",
    "hypersensitivity": "contraindication",
    "care_setting": "coverage-info",
    "not_covered": "coverage-info",
    "active_condition": "contraindication",
    "dose": "limits",
    "switch": "duplicate-therapy",
    "not_met": "coverage-info",
    "step_therapy": "therapy-alternatives-req",
    "documentation_needed": "coverage-info",
    "criteria_met": "coverage-info",
    "off_label": "coverage-info",
    "could_not_check": "coverage-info",
    "companion": "clinical-reminder",
    "alternate": "therapy-alternatives-req",
}
"""Card kind -> CRD card type. `step_therapy` is the not-met card when a criterion of
the pack's `step_therapy_criteria` fails (a therapy that must be tried first).
`companion` (orders a criterion needs, e.g. a test: the IG's "additional orders" card, topic
clinical-reminder as in the IG's example) and `alternate` (a preferred product proposed in
place of the order) are the cards of `cds_service.cards.proposals`."""

COVERAGE_INFO: Final = "coverage-info"
"""The type of the coverage-information system action as well as of coverage cards."""


def card_type(kind: str) -> str:
    """The CRD card type code of a card kind; KeyError for a kind not mapped (a bug)."""
    return KIND_TYPES[kind]


def topic(code: str) -> dict[str, str]:
    """`card.source.topic` for a CRD card type code."""
    return {"system": CARD_TYPE_SYSTEM, "code": code, "display": CARD_TYPES[code]}
