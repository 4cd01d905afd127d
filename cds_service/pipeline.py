"""One CDS Hooks call after the protocol layer: resources in, response body out.

    build_facts(context, resources) -> evaluate(policy, facts, today) -> render(...)

The protocol layer (`api.py`) validates the request, resolves prefetch and calls
`run`. Everything here is pure apart from the injected clock and uuid factory.

No order that may be for anakinra ends in silence:
- when the patient's record could not be read (`CallContext.record_unreadable`: the
  required prefetch is missing and the FHIR server could not give it), every anakinra
  order, and every order whose drug only the record could tell, gets a could-not-check
  card naming the data that could not be read and why;
- a draft order the service cannot read at all (the FHIR R5 `medication` element, codes
  no drug can be told from, no drug at order-sign; see `cds_service.orders`) gets one
  too, whatever the mapping made of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cds_service import orders
from cds_service.cards import (
    CardSettings,
    Evaluation,
    MissingData,
    NotEvaluated,
    render_response,
)
from cds_service.policy.definition import Policy
from cds_service.policy.engine import evaluate, load_policy
from cds_service.policy.units import pack_units
from fhir_mappings import build_facts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallContext:
    """What a service call needs besides the FHIR data."""

    service_id: str
    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    now: datetime
    uuid_factory: Callable[[], str]
    missing_prefetch: tuple[str, ...] = ()
    """Optional prefetch keys whose data could not be obtained (a missing required key
    sets `record_unreadable`). Criteria that depend on them are `unknown`, never `not-met`
    for lack of data."""
    fhir_server_used: bool = False
    """True when some of the data was read from the client's FHIR server."""
    unavailable_types: frozenset[str] = frozenset()
    """Resource types of the missing prefetch keys (e.g. "AllergyIntolerance"): the policy
    answers "unknown" where it would otherwise conclude from their absence."""
    missing_data: tuple[MissingData, ...] = ()
    """Every prefetch key that could not be had, required or not, and why (for the
    evaluation extension and the could-not-check card)."""
    record_unreadable: bool = False
    """A required key (the patient, the medication orders) could not be had: no order
    can be evaluated, each anakinra order gets a card saying what could not be read."""


@dataclass(frozen=True)
class Engine:
    """What every call shares: the policy (validated at start-up) and the card settings."""

    policy: Policy
    card_settings: CardSettings


def default_card_settings(policy: Policy) -> CardSettings:
    return CardSettings(
        plan_name="Example Health Plan",
        policy_label=f"{policy.id} {policy.title}",
    )


INTERNAL_FAILURE = (
    "the service hit an internal error while checking this order; "
    "submit the prior authorization request for manual review"
)


def _draft_medication_refs(context: Mapping[str, Any]) -> list[str]:
    draft = context.get("draftOrders")
    entries = draft.get("entry") if isinstance(draft, Mapping) else None
    refs = []
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if isinstance(resource, Mapping) and resource.get("resourceType") == "MedicationRequest":
            refs.append(f"MedicationRequest/{resource.get('id', 'unknown')}")
    return refs


def evaluate_call(
    policy: Policy, call: CallContext, resources: Sequence[Mapping[str, Any]]
) -> list[Evaluation | NotEvaluated]:
    """Facts and a decision for every anakinra draft order of the call.

    A failure inside the mapping or the engine is a bug, but the prescriber must still
    learn that the order was not checked: it becomes a `NotEvaluated` item (a card
    saying so), and the exception type (never its message, which may quote data) is
    logged.
    """
    today = call.now.date()
    try:
        mapped = build_facts(
            call.context,
            resources,
            as_of=today,
            unavailable=call.unavailable_types,
            units=pack_units(),
        )
    except Exception as exc:
        _log_failure("mapping", exc)
        return [NotEvaluated(ref, INTERNAL_FAILURE) for ref in _draft_medication_refs(call.context)]
    evaluations: list[Evaluation | NotEvaluated] = []
    for facts in mapped.orders:
        try:
            evaluations.append(Evaluation(facts=facts, decision=evaluate(policy, facts, today)))
        except Exception as exc:
            _log_failure("policy", exc)
            evaluations.append(NotEvaluated(facts.order.ref, INTERNAL_FAILURE))
    drafts = {o.ref: o.resource for o in orders.draft_medication_requests(call.context, call.hook)}
    for order_ref, reason in mapped.failed_orders:
        # Failed orders are either anakinra orders that could not be read, or orders whose
        # drug could not be identified: only the first may be called Kineret on the card.
        draft = drafts.get(order_ref)
        known = draft is None or orders.names_anakinra(draft)
        evaluations.append(NotEvaluated(order_ref=order_ref, reason=reason, drug_known=known))
    return evaluations


RESOURCE_WORDS = {
    "Patient": "the patient's demographics",
    "MedicationRequest": "the patient's medication orders",
    "MedicationStatement": "the patient's medication statements",
    "MedicationDispense": "the patient's medication dispenses",
    "Condition": "the patient's conditions",
    "AllergyIntolerance": "the patient's allergies",
    "Observation": "the patient's results",
    "Encounter": "the encounter",
}


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def record_unreadable_reason(missing: Sequence[MissingData]) -> str:
    """ "the patient's record could not be read from the EHR: <which data> (<why>)"."""
    by_reason: dict[str, list[str]] = {}
    for item in missing:
        words = RESOURCE_WORDS.get(item.resource_type, item.resource_type)
        what = f"{words} ({item.resource_type})"
        if what not in by_reason.setdefault(item.reason, []):
            by_reason[item.reason].append(what)
    parts = [f"{_join(whats)}: {reason}" for reason, whats in by_reason.items()]
    return "the patient's record could not be read from the EHR: " + "; ".join(parts or ["no data"])


def record_unreadable(call: CallContext) -> list[Evaluation | NotEvaluated]:
    """A could-not-check item for every order that may be for anakinra, when the record
    could not be read (see `CallContext.record_unreadable`)."""
    reason = record_unreadable_reason(
        [m for m in call.missing_data if m.required] or call.missing_data
    )
    items: list[Evaluation | NotEvaluated] = []
    for order in orders.anakinra_or_unknown(call.context, call.hook):
        known = orders.medication_kind(order.resource) == "anakinra"
        text = (
            reason
            if known
            else "the drug of this order could not be identified (its Medication resource "
            "was not sent), and " + reason
        )
        items.append(NotEvaluated(order.ref, text, call.missing_data, drug_known=known))
    return items


def unreadable_orders(
    call: CallContext, handled: frozenset[str]
) -> list[Evaluation | NotEvaluated]:
    """A could-not-check item for every relevant draft order, not already answered for,
    that the service cannot read (see `cds_service.orders.unreadable_reason`)."""
    items: list[Evaluation | NotEvaluated] = []
    for order in orders.draft_medication_requests(call.context, call.hook):
        if order.ref in handled:
            continue
        reason = orders.unreadable_reason(order.resource, call.hook)
        if reason is not None:
            known = orders.names_anakinra(order.resource)
            items.append(NotEvaluated(order.ref, reason, drug_known=known))
    return items


def evaluate_orders(
    policy: Policy, call: CallContext, resources: Sequence[Mapping[str, Any]]
) -> list[Evaluation | NotEvaluated]:
    """An item for every order of the call that may be for anakinra: evaluated, or not
    evaluated with the reason (record unreadable, order unreadable, internal failure)."""
    if call.record_unreadable:
        evaluations = record_unreadable(call)
    else:
        evaluations = evaluate_call(policy, call, resources)
    handled = frozenset(
        item.order_ref if isinstance(item, NotEvaluated) else item.facts.order.ref
        for item in evaluations
    )
    return evaluations + unreadable_orders(call, handled)


def _log_failure(stage: str, exc: Exception) -> None:
    tb = exc.__traceback__
    where = []
    while tb is not None:
        where.append(f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}")
        tb = tb.tb_next
    log.error(
        "order could not be evaluated",
        extra={
            "event": "evaluation-failed",
            "stage": stage,
            "exception": type(exc).__name__,
            "where": where[-3:],
        },
    )


def run(
    call: CallContext, resources: Sequence[Mapping[str, Any]], engine: Engine | None = None
) -> dict[str, Any]:
    """Evaluate every anakinra draft order in the call and return the response body.

    Orders for other drugs get no card; an order that may be for anakinra and cannot be
    evaluated gets a card that says so (never silence).
    """
    if engine is None:
        policy = load_policy()
        engine = Engine(policy=policy, card_settings=default_card_settings(policy))
    evaluations = evaluate_orders(engine.policy, call, resources)
    return render_response(
        call.hook,
        evaluations,
        settings=engine.card_settings,
        uuid_factory=call.uuid_factory,
        now=call.now,
        missing_data=call.missing_data,
    )
