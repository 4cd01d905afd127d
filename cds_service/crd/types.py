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
    "care_setting": "off-guideline",
    "not_covered": "off-guideline",
    "active_condition": "contraindication",
    "dose": "limits",
    "switch": "duplicate-therapy",
    "not_met": "off-guideline",
    "step_therapy": "therapy-alternatives-req",
    "documentation_needed": "appropriate-use",
    "criteria_met": "guideline",
    "off_label": "off-guideline",
    "could_not_check": "guideline",
    "companion": "clinical-reminder",
    "alternate": "therapy-alternatives-req",
}
"""Card kind -> CRD card type: what the card asks the prescriber to do.

Coverage information itself is never a card (CRD resp-25): it is the coverage-information
system action, whose type is `coverage-info` (`COVERAGE_INFO`). No card carries that type:

- `care_setting`, `not_covered`, `not_met`, `off_label` -> off-guideline: the order as
  written is outside the plan's policy (a setting, a use the policy excludes, a criterion
  not met, a use outside the labeled indications); the card shows which clause of the
  policy and offers to view it or change / delete the order.
- `step_therapy` -> therapy-alternatives-req: a therapy the policy requires first.
- `documentation_needed` -> appropriate-use: the card lists the documentation the policy
  needs to show the use is appropriate before it can be decided.
- `criteria_met` -> guideline: the policy's criteria are documented; the card points to
  the policy and the request to send. Sent only when no coverage-information extension
  goes to the order (CRD resp-12: with it, the card would only repeat it; see
  `cds_service.cards.render`), or the client does not show coverage information.
- `could_not_check` -> guideline: the order falls under a policy the service could not
  check; the card names the policy to apply by hand.
- `combination`, `hypersensitivity`, `active_condition` -> contraindication; `duplicate`,
  `switch` -> duplicate-therapy; `dose` -> limits (the policy's dose limit).
- `companion` (orders a criterion needs, e.g. a test: the IG's "additional orders" card,
  topic clinical-reminder as in the IG's example) and `alternate` (a preferred product
  proposed in place of the order) are the cards of `cds_service.cards.proposals`.
"""

COVERAGE_INFO: Final = "coverage-info"
"""The type of the coverage-information system action (never of a card: resp-25)."""


def card_type(kind: str) -> str:
    """The CRD card type code of a card kind; KeyError for a kind not mapped (a bug)."""
    return KIND_TYPES[kind]


def topic(code: str) -> dict[str, str]:
    """`card.source.topic` for a CRD card type code."""
    return {"system": CARD_TYPE_SYSTEM, "code": code, "display": CARD_TYPES[code]}
