"""Cards that propose orders, from the pack's `companions` and `alternates` (pure).

- companion [companion] (info, CRD response type "Identify Additional Orders", topic
  clinical-reminder as in the IG's example): a criterion of the block is unknown and the
  chart holds no record for it (no evidence, and the record types it would rest on were
  read). One suggestion per order, each a single `create` action of a draft
  ServiceRequest; no links (the IG's additionalOrders profile allows none).
- alternate [alternate] (info, CRD "Propose Alternate Request", topic
  therapy-alternatives-req): a criterion of the block is unknown with no record (or, when
  the block says so, not met). One suggestion per product, each a `delete` of the draft
  order and a `create` of a draft MedicationRequest (the IG's alternateRequest shape).

Resources copy the draft order's patient, encounter and requester (references only) and
are drafts the prescriber completes; nothing of the request is changed in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from cds_service.cards.texts import CardTexts
from cds_service.crd.types import card_type
from cds_service.policy.checks import CHECKS
from cds_service.policy.model import CriterionResult, Decision, Status
from cds_service.policy.proposals import WHEN_NO_RECORD, WHEN_NOT_MET, Proposal, ProposedOrder
from fhir_mappings.facts import PolicyFacts

CRD_RESPONSE_TYPES: Final[Mapping[str, str]] = {
    "companion": "clinical-reminder",
    "alternate": "therapy-alternatives-req",
}
"""Card kind -> CRD response type code (ValueSet cardType, the card's `source.topic`).
To be folded into `cds_service/crd/types.py` (the one mapping of every card kind)."""

RESULT_RECORDS: Final = frozenset({"Observation"})
"""Where a test or measurement result would be: a companion's "no record" is believed
only when these were read."""

_REFERENCES: Final = ("subject", "encounter", "requester")


@dataclass(frozen=True)
class ProposalCard:
    """What the renderer needs to build one card (it adds uuid, source, extension)."""

    kind: str
    summaries: tuple[str, ...]
    """Candidate summaries, fullest first."""
    paragraph: str
    topic: str
    suggestions: tuple[dict[str, Any], ...]


def _no_record(result: CriterionResult, facts: PolicyFacts, extra_reads: frozenset[str]) -> bool:
    """Unknown with nothing found in the chart, and the records it would rest on read."""
    if result.status is not Status.UNKNOWN or result.evidence:
        return False
    check = CHECKS.get(result.check)
    reads = (check.reads if check else frozenset()) | extra_reads
    return not (reads & facts.unavailable)


def triggering(proposal: Proposal, decision: Decision, facts: PolicyFacts) -> list[CriterionResult]:
    """The decision's results of the block's criteria in the state the block answers."""
    extra = RESULT_RECORDS if proposal.kind == "companion" else frozenset()
    found = []
    for result in decision.criteria:
        if not proposal.applies(result.id):
            continue
        if (WHEN_NO_RECORD in proposal.when and _no_record(result, facts, extra)) or (
            WHEN_NOT_MET in proposal.when and result.status is Status.NOT_MET
        ):
            found.append(result)
    return found


def _base(draft: Mapping[str, Any], today: date | None) -> dict[str, Any]:
    """status / intent / the draft order's references / authoredOn of a new draft."""
    resource: dict[str, Any] = {"status": "draft", "intent": "original-order"}
    for key in _REFERENCES:
        value = draft.get(key)
        if isinstance(value, Mapping) and isinstance(value.get("reference"), str):
            resource[key] = {"reference": value["reference"]}
    authored = today.isoformat() if today else draft.get("authoredOn")
    if isinstance(authored, str):
        resource["authoredOn"] = authored
    return resource


def service_request(
    order: ProposedOrder, draft: Mapping[str, Any], today: date | None
) -> dict[str, Any]:
    """A draft ServiceRequest (CRD profile-servicerequest) for a companion order."""
    base = _base(draft, today)
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": base.pop("status"),
        "intent": base.pop("intent"),
    }
    if order.category:
        resource["category"] = [{"coding": [c.to_json() for c in order.category]}]
    resource["code"] = {"coding": [c.to_json() for c in order.code], "text": order.name}
    resource.update(base)
    return resource


def medication_request(
    order: ProposedOrder, draft: Mapping[str, Any], today: date | None
) -> dict[str, Any]:
    """A draft MedicationRequest (CRD profile-medicationrequest) for an alternate product."""
    base = _base(draft, today)
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": base.pop("status"),
        "intent": base.pop("intent"),
        "medicationCodeableConcept": {
            "coding": [c.to_json() for c in order.code],
            "text": order.name,
        },
    }
    resource.update(base)
    if order.dosage_text:
        resource["dosageInstruction"] = [{"text": order.dosage_text}]
    return resource


def _companion(
    proposal: Proposal,
    results: Sequence[CriterionResult],
    facts: PolicyFacts,
    texts: CardTexts,
    today: date | None,
) -> ProposalCard:
    draft = facts.order.resource
    return _proposal_card(
        "companion",
        proposal,
        results,
        texts,
        lambda order: [
            {
                "type": "create",
                "description": texts.text("companion", "action", order=order.name),
                "resource": service_request(order, draft, today),
            }
        ],
    )


def _alternate(
    proposal: Proposal,
    results: Sequence[CriterionResult],
    facts: PolicyFacts,
    texts: CardTexts,
    today: date | None,
) -> ProposalCard:
    draft = facts.order.resource
    return _proposal_card(
        "alternate",
        proposal,
        results,
        texts,
        lambda order: [
            {
                "type": "delete",
                "description": texts.text("alternate", "remove_action"),
                "resourceId": facts.order.ref,
            },
            {
                "type": "create",
                "description": texts.text("alternate", "create_action", order=order.name),
                "resource": medication_request(order, draft, today),
            },
        ],
    )


def _proposal_card(
    kind: str,
    proposal: Proposal,
    results: Sequence[CriterionResult],
    texts: CardTexts,
    actions: Callable[[ProposedOrder], list[dict[str, Any]]],
) -> ProposalCard:
    """The card of one proposal block: the pack's `kind` texts, one suggestion per proposed
    order with that order's `actions`."""
    criteria = ", ".join(r.id for r in results)
    orders = "; ".join(o.name for o in proposal.orders)
    suggestions = tuple(
        {
            "label": texts.text(kind, "order_label", order=order.name),
            "actions": actions(order),
        }
        for order in proposal.orders
    )
    return ProposalCard(
        kind=kind,
        summaries=(
            texts.text(kind, "summary", need=proposal.need, criteria=criteria),
            texts.text(kind, "summary_short", criteria=criteria),
        ),
        paragraph=texts.text(kind, "detail", need=proposal.need, criteria=criteria, orders=orders),
        topic=card_type(kind),
        suggestions=suggestions,
    )


def proposal_cards(
    facts: PolicyFacts, decision: Decision, texts: CardTexts, today: date | None
) -> list[ProposalCard]:
    """The companion cards, then the alternate cards, of one evaluated order: one per
    block of the pack whose criteria are in the state it answers."""
    cards: list[ProposalCard] = []
    for proposal in texts.proposals.companions:
        results = triggering(proposal, decision, facts)
        if results:
            cards.append(_companion(proposal, results, facts, texts, today))
    for proposal in texts.proposals.alternates:
        results = triggering(proposal, decision, facts)
        if results:
            cards.append(_alternate(proposal, results, facts, texts, today))
    return cards
