"""One CDS Hooks call after the protocol layer: resources in, response body out.

    build_facts(context, resources, drugs) -> evaluate(pack.policy, facts, today) per order
    -> render(...) per pack

The protocol layer (`api.py`) validates the request, resolves prefetch and calls
`run`. Everything here is pure apart from the injected clock and uuid factory.

Routing: each draft order goes to the policy pack of its drug (`Engine.registry`, by
ingredient); several orders of one call may go to several packs, each decided by its own
pack's policy and answered with its own cards and coverage information. An order for a
drug no pack decides gets no card.

No order that may be for a drug of some pack ends in silence:
- when the patient's record could not be read (`CallContext.record_unreadable`: the
  required prefetch is missing and the FHIR server could not give it), every such order,
  and every order whose drug only the record could tell, gets a could-not-check card
  naming the data that could not be read and why;
- a draft order the service cannot read at all (the FHIR R5 `medication` element, codes
  no drug can be told from, no drug at order-sign; see `cds_service.orders`) gets one
  too, whatever the mapping made of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from cds_service import body_parts, orders
from cds_service.cards import (
    CardSettings,
    Evaluation,
    MissingData,
    NotEvaluated,
    render_response,
)
from cds_service.cards.safe_text import holds_no_lone_surrogate, without_lone_surrogates
from cds_service.crd.coverage import CoverageCall, PackBilling, rejection
from cds_service.crd.payer import CoverageNotHandledError, Payer, load_payer
from cds_service.dtr import answers
from cds_service.dtr import urls as dtr_urls
from cds_service.policy.engine import evaluate
from cds_service.policy.packs import Pack, Registry, default_registry
from fhir_mappings import budget, build_facts
from fhir_mappings.coverage import read_coverage_sets

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
    can be evaluated, each order of a pack's drug gets a card saying what could not be
    read."""
    coverage_information: bool = True
    """False: the caller asked for no coverage information (CRD configuration option)."""
    coverage_information_shown: bool = True
    """False: the calling client does not show coverage information (system actions) to the
    prescriber (`api.client_shows_coverage_information`): a criteria-met order keeps its
    card beside the coverage information."""
    public_base_url: str = ""
    """The service's external base URL (the policy links); empty: no policy link."""
    out_of_time: Callable[[], bool] | None = None
    """True once the call's deadline has passed: orders not decided by then get a
    could-not-check card (`OUT_OF_TIME`) instead of more work. None: no deadline."""


@dataclass(frozen=True)
class Engine:
    """What every call shares: the policy packs (validated at start-up) and the card
    settings of each pack."""

    registry: Registry
    card_settings: Mapping[str, CardSettings] = field(default_factory=dict)
    """Per pack id; a pack without an entry gets `default_card_settings`."""
    payer: Payer = field(default_factory=load_payer)
    """The payer coverage information is given for (default: the packaged demo payer)."""

    @property
    def drugs(self) -> frozenset[str]:
        """The ingredient names orders are routed for."""
        return self.registry.ingredients

    def settings_for(self, pack: Pack) -> CardSettings:
        found = self.card_settings.get(pack.id)
        return found if found is not None else default_card_settings(pack)


def default_card_settings(pack: Pack) -> CardSettings:
    return CardSettings(
        plan_name="Example Health Plan",
        policy_label=f"{pack.policy.id} {pack.policy.title}",
    )


def plan_card_settings(
    pack: Pack,
    *,
    plan_name: str,
    policy_url: str | None = None,
    documentation_form_url: str | None = None,
    smart_app_url: str | None = None,
) -> CardSettings:
    """The card settings of one pack under the plan's settings. `policy_url` may hold
    `{policy_id}`, replaced by the pack's id (one published page per policy)."""
    return CardSettings(
        plan_name=plan_name,
        policy_label=f"{pack.policy.id} {pack.policy.title}, {plan_name}",
        policy_url=policy_url.replace("{policy_id}", pack.id) if policy_url else None,
        documentation_form_url=documentation_form_url,
        smart_app_url=smart_app_url,
    )


def with_policy_link(settings: CardSettings, public_base_url: str, pack_id: str) -> CardSettings:
    """The pack's settings with the served policy text as the cards' policy link when the
    plan configures none (`CDS_POLICY_URL`): `<public base URL>/policies/<pack id>`
    (`GET /policies/<pack id>`, no patient data), so a fresh install links to a page that
    works; no base URL (a call outside a request): unchanged."""
    if settings.policy_url or not public_base_url:
        return settings
    url = f"{public_base_url.rstrip('/')}/policies/{pack_id}"
    return replace(settings, policy_url=url)


def build_engine(
    registry: Registry, settings_of: Callable[[Pack], CardSettings], payer: Payer | None = None
) -> Engine:
    """An engine for every pack of `registry`, each with the card settings `settings_of`
    gives it, answering for `payer` (default: the packaged demo payer)."""
    return Engine(
        registry=registry,
        card_settings=MappingProxyType({p.id: settings_of(p) for p in registry.packs.values()}),
        payer=payer if payer is not None else load_payer(),
    )


@dataclass(frozen=True)
class Routed:
    """An item of the answer and the pack it is answered under."""

    item: Evaluation | NotEvaluated
    pack: Pack | None
    """None: the order's drug could not be told (answered under the call's first pack)."""


INTERNAL_FAILURE = (
    "the service hit an internal error while checking this order; "
    "submit the prior authorization request for manual review"
)


OUT_OF_TIME = (
    "the coverage check could not be completed in time; "
    "submit the prior authorization request for manual review"
)


def _expired(call: CallContext) -> bool:
    return call.out_of_time is not None and call.out_of_time()


def _never() -> bool:
    return False


def out_of_time(call: CallContext, registry: Registry, stage: str) -> list[Routed]:
    """A could-not-check item (`OUT_OF_TIME`) for every order that may be for a pack's
    drug, when the call's deadline passed before they were decided."""
    _log_out_of_time(stage)
    items: list[Routed] = []
    drugs = registry.ingredients
    for order in orders.covered_or_unknown(call.context, call.hook, drugs):
        known = orders.medication_kind(order.resource, drugs) == "covered"
        drug = orders.covered_drug(order.resource, drugs) if known else None
        items.append(
            Routed(
                NotEvaluated(order.ref, OUT_OF_TIME, drug_known=known),
                registry.for_ingredient(drug) if drug else None,
            )
        )
    return items


def _log_out_of_time(stage: str) -> None:
    log.warning(
        "call deadline passed: orders not yet decided get a could-not-check card",
        extra={"event": "call-out-of-time", "stage": stage},
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
    registry: Registry, call: CallContext, resources: Sequence[Mapping[str, Any]]
) -> list[Routed]:
    """Facts and a decision for every draft order of the call whose drug a pack decides,
    each by its own pack's policy.

    A failure inside the mapping or the engine is a bug, but the prescriber must still
    learn that the order was not checked: it becomes a `NotEvaluated` item (a card
    saying so), and the exception type (never its message, which may quote data) is
    logged.
    """
    today = call.now.date()
    if _expired(call):
        return out_of_time(call, registry, "before-mapping")
    try:
        # Completed documentation templates add the prescriber's records (cds_service.dtr).
        resources, documented = answers.read_answers(registry, call.context, resources, today)
        with budget.within(call.out_of_time or _never):
            mapped = build_facts(
                call.context,
                resources,
                drugs=registry.ingredients,
                as_of=today,
                unavailable=call.unavailable_types,
                units=registry.units,
                chart=body_parts.chart_key(resources),
            )
    except budget.OutOfTimeError:
        return out_of_time(call, registry, "mapping")
    except Exception as exc:
        _log_failure("mapping", exc)
        return [
            Routed(NotEvaluated(ref, INTERNAL_FAILURE), None)
            for ref in _draft_medication_refs(call.context)
        ]
    evaluations: list[Routed] = []
    late = False
    for facts, drug in zip(mapped.orders, mapped.order_drugs, strict=True):
        pack = registry.by_ingredient[drug]
        if late or _expired(call):
            if not late:
                _log_out_of_time("evaluation")
            late = True
            evaluations.append(Routed(NotEvaluated(facts.order.ref, OUT_OF_TIME), pack))
            continue
        try:
            decision = answers.relabel(evaluate(pack.policy, facts, today), documented)
            evaluations.append(Routed(Evaluation(facts=facts, decision=decision), pack))
        except Exception as exc:
            _log_failure("policy", exc)
            evaluations.append(Routed(NotEvaluated(facts.order.ref, INTERNAL_FAILURE), pack))
    drafts = {o.ref: o.resource for o in orders.draft_medication_requests(call.context, call.hook)}
    for (order_ref, reason), routed in zip(mapped.failed_orders, mapped.failed_drugs, strict=True):
        # Failed orders are either orders of a pack's drug that could not be read, or
        # orders whose drug could not be identified: only the first may be named on the card.
        draft = drafts.get(order_ref)
        known = draft is None or orders.names_covered_drug(draft, registry.ingredients)
        if routed is None and draft is not None:
            routed = orders.covered_drug(draft, registry.ingredients)
        item = NotEvaluated(order_ref=order_ref, reason=reason, drug_known=known)
        evaluations.append(Routed(item, registry.for_ingredient(routed) if routed else None))
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


def record_unreadable(call: CallContext, registry: Registry) -> list[Routed]:
    """A could-not-check item for every order that may be for a pack's drug, when the
    record could not be read (see `CallContext.record_unreadable`)."""
    reason = record_unreadable_reason(
        [m for m in call.missing_data if m.required] or call.missing_data
    )
    items: list[Routed] = []
    drugs = registry.ingredients
    for order in orders.covered_or_unknown(call.context, call.hook, drugs):
        known = orders.medication_kind(order.resource, drugs) == "covered"
        text = (
            reason
            if known
            else "the drug of this order could not be identified (its Medication resource "
            "was not sent), and " + reason
        )
        drug = orders.covered_drug(order.resource, drugs) if known else None
        items.append(
            Routed(
                NotEvaluated(order.ref, text, call.missing_data, drug_known=known),
                registry.for_ingredient(drug) if drug else None,
            )
        )
    return items


def unreadable_orders(
    call: CallContext, handled: frozenset[str], registry: Registry
) -> list[Routed]:
    """A could-not-check item for every relevant draft order, not already answered for,
    that the service cannot read (see `cds_service.orders.unreadable_reason`)."""
    items: list[Routed] = []
    drugs = registry.ingredients
    for order in orders.draft_medication_requests(call.context, call.hook):
        if order.ref in handled:
            continue
        reason = orders.unreadable_reason(order.resource, call.hook, drugs)
        if reason is not None:
            known = orders.names_covered_drug(order.resource, drugs)
            drug = orders.covered_drug(order.resource, drugs) if known else None
            items.append(
                Routed(
                    NotEvaluated(order.ref, reason, drug_known=known),
                    registry.for_ingredient(drug) if drug else None,
                )
            )
    return items


def evaluate_orders(
    registry: Registry, call: CallContext, resources: Sequence[Mapping[str, Any]]
) -> list[Routed]:
    """An item for every order of the call that may be for a pack's drug, with its pack:
    evaluated, or not evaluated with the reason (record unreadable, order unreadable,
    internal failure)."""
    if call.record_unreadable:
        evaluations = record_unreadable(call, registry)
    else:
        evaluations = evaluate_call(registry, call, resources)
    handled = frozenset(_order_ref(r.item) for r in evaluations)
    return evaluations + unreadable_orders(call, handled, registry)


def _order_ref(item: Evaluation | NotEvaluated) -> str:
    return item.order_ref if isinstance(item, NotEvaluated) else item.facts.order.ref


def by_pack(routed: Sequence[Routed], registry: Registry) -> list[tuple[Pack, list[Routed]]]:
    """The items grouped by the pack they are answered under, packs in the order their
    first item comes. An item whose drug could not be told goes with the call's first
    pack (the registry's `fallback` when no order of the call has one)."""
    first = next((r.pack for r in routed if r.pack is not None), None) or registry.fallback
    groups: dict[str, tuple[Pack, list[Routed]]] = {}
    for item in routed:
        pack = item.pack or first
        groups.setdefault(pack.id, (pack, []))[1].append(item)
    return list(groups.values())


def _named(routed: Routed) -> Evaluation | NotEvaluated:
    """The item, an order not evaluated carrying the pack its drug goes to (so its card
    names that drug, not another pack's of the same call)."""
    item = routed.item
    if isinstance(item, NotEvaluated) and item.policy_id is None and routed.pack is not None:
        return replace(item, policy_id=routed.pack.id)
    return item


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


def merge_responses(responses: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One response body from the responses of each pack: cards, system actions and
    evaluation entries in turn (one pack: that response unchanged)."""
    if len(responses) == 1:
        return dict(responses[0])
    merged: dict[str, Any] = {"cards": [c for r in responses for c in r.get("cards", [])]}
    actions = [a for r in responses for a in r.get("systemActions", [])]
    if actions:
        merged["systemActions"] = actions
    extension: dict[str, list[Any]] = {}
    for response in responses:
        for key, value in response.get("extension", {}).items():
            extension.setdefault(key, []).extend(value)
    if extension:
        merged["extension"] = extension
    return merged


def _patient_ref(context: Mapping[str, Any]) -> str | None:
    patient = context.get("patientId")
    if not isinstance(patient, str) or not patient:
        return None
    return patient if patient.startswith("Patient/") else f"Patient/{patient}"


def coverage_call(
    engine: Engine,
    call: CallContext,
    resources: Sequence[Mapping[str, Any]],
    routed: Sequence[Routed],
) -> CoverageCall:
    """What the coverage information of the call needs (`cds_service.crd.coverage`)."""
    patient = _patient_ref(call.context)
    drafts = orders.draft_medication_requests(call.context, call.hook)
    coverages, sent_coverages = read_coverage_sets(resources, patient)
    return CoverageCall(
        payer=engine.payer,
        enabled=call.coverage_information,
        shown_by_client=call.coverage_information_shown,
        policy_base_url=call.public_base_url or None,
        packs={
            p.id: PackBilling(p.version, p.drug.billing_hcpcs, p.drug.billing_ndc)
            for p in engine.registry.packs.values()
        },
        coverages=coverages,
        drafts={o.ref: o.resource for o in drafts},
        order_packs={
            r.item.order_ref: r.pack.id
            for r in routed
            if isinstance(r.item, NotEvaluated) and r.pack is not None
        },
        patient_ref=patient or "",
        record_incomplete=bool(call.missing_data),
        sent_coverages=sent_coverages,
        coverage_unreadable=any(m.resource_type == "Coverage" for m in call.missing_data),
        questionnaires=pack_questionnaires(engine.registry, call.public_base_url),
    )


def pack_questionnaires(registry: Registry, public_base_url: str) -> dict[str, tuple[str, ...]]:
    """The documentation template of every pack, as the canonical `url|version` the coverage
    information names (`cds_service.dtr.urls`: `<public base URL>/fhir/Questionnaire/<pack
    id>`, the pack's version); none without a base URL (a call outside a request)."""
    if not public_base_url:
        return {}
    return {
        p.id: (f"{dtr_urls.questionnaire_url(public_base_url, p.id)}|{p.version}",)
        for p in registry.packs.values()
    }


def answered_orders(crd: CoverageCall, routed: Sequence[Routed]) -> list[Mapping[str, Any]]:
    """The draft orders the call's answer is about (those of a pack's drug)."""
    out: list[Mapping[str, Any]] = []
    for r in routed:
        if isinstance(r.item, Evaluation):
            out.append(r.item.facts.order.resource)
        elif r.pack is not None and r.item.order_ref in crd.drafts:
            out.append(crd.drafts[r.item.order_ref])
    return out


def run(
    call: CallContext, resources: Sequence[Mapping[str, Any]], engine: Engine | None = None
) -> dict[str, Any]:
    """Evaluate every draft order of the call whose drug a pack decides, each by its own
    pack, and return the response body.

    Orders for other drugs get no card; an order that may be for a pack's drug and cannot
    be evaluated gets a card that says so (never silence). Raises `CoverageNotHandledError` when
    the payer rejects calls whose primary Coverage it does not handle (CRD hook-13) and an
    answered order's is not.
    """
    if engine is None:
        engine = Engine(registry=default_registry())
    routed = evaluate_orders(engine.registry, call, resources)
    if not routed:
        return {"cards": []}
    crd = coverage_call(engine, call, resources, routed)
    refused = rejection(crd, answered_orders(crd, routed), call.now.date())
    if refused is not None:
        raise CoverageNotHandledError(refused)
    responses = [
        render_response(
            call.hook,
            [_named(r) for r in items],
            settings=with_policy_link(engine.settings_for(pack), call.public_base_url, pack.id),
            card_texts=engine.registry.texts_for,
            uuid_factory=call.uuid_factory,
            now=call.now,
            missing_data=call.missing_data,
            coverage=crd,
        )
        for pack, items in by_pack(routed, engine.registry)
    ]
    # Chart text with a lone surrogate (from a FHIR server's answer) would make the
    # response and its audit record impossible to encode.
    answer = merge_responses(responses)
    if holds_no_lone_surrogate(answer):  # nearly always: the walk below is then not needed
        return answer
    return without_lone_surrogates(answer)  # type: ignore[no-any-return]
