"""One CDS Hooks call after the protocol layer: resources in, response body out.

    build_facts(context, resources) -> evaluate(policy, facts, today) -> render(...)

The protocol layer (`api.py`) validates the request, resolves prefetch and calls
`run`. Everything here is pure apart from the injected clock and uuid factory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cds_service.cards import CardSettings, Evaluation, NotEvaluated, render_response
from cds_service.policy.definition import Policy
from cds_service.policy.engine import evaluate, load_policy
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
    """Prefetch keys whose data could not be obtained (optional ones only: a missing
    required key ends the call with 412 before the pipeline runs). Criteria that depend
    on them are `unknown`, never `not-met` for lack of data."""
    fhir_server_used: bool = False
    """True when some of the data was read from the client's FHIR server."""
    unavailable_types: frozenset[str] = frozenset()
    """Resource types of the missing prefetch keys (e.g. "AllergyIntolerance"): the policy
    answers "unknown" where it would otherwise conclude from their absence."""


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
            call.context, resources, as_of=today, unavailable=call.unavailable_types
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
    for order_ref, reason in mapped.failed_orders:
        evaluations.append(NotEvaluated(order_ref=order_ref, reason=reason))
    return evaluations


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

    Orders for other drugs get no card; an anakinra order that cannot be evaluated gets
    a card that says so (never silence).
    """
    if engine is None:
        policy = load_policy()
        engine = Engine(policy=policy, card_settings=default_card_settings(policy))
    evaluations = evaluate_call(engine.policy, call, resources)
    return render_response(
        call.hook,
        evaluations,
        settings=engine.card_settings,
        uuid_factory=call.uuid_factory,
        now=call.now,
    )
