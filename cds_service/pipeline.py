"""One CDS Hooks call after the protocol layer: resources in, response body out.

    build_facts(context, resources) -> evaluate(policy, facts, today) -> render(...)

The protocol layer (`api.py`) validates the request, resolves prefetch and calls
`run`. Everything here is pure apart from the injected clock and uuid factory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cds_service.cards import CardSettings, Evaluation, NotEvaluated, render_response
from cds_service.policy.definition import Policy
from cds_service.policy.engine import evaluate, load_policy
from fhir_mappings import MappingResult, build_facts


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


def evaluate_call(
    policy: Policy, call: CallContext, resources: Sequence[Mapping[str, Any]]
) -> tuple[list[Evaluation | NotEvaluated], MappingResult]:
    """Facts and a decision for every anakinra draft order of the call."""
    today = call.now.date()
    mapped = build_facts(call.context, resources, as_of=today)
    evaluations: list[Evaluation | NotEvaluated] = []
    for facts in mapped.orders:
        evaluations.append(Evaluation(facts=facts, decision=evaluate(policy, facts, today)))
    for order_ref, reason in mapped.failed_orders:
        evaluations.append(NotEvaluated(order_ref=order_ref, reason=reason))
    return evaluations, mapped


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
    evaluations, _ = evaluate_call(engine.policy, call, resources)
    return render_response(
        call.hook,
        evaluations,
        settings=engine.card_settings,
        uuid_factory=call.uuid_factory,
        now=call.now,
    )
