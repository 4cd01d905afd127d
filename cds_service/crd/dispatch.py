"""The order-dispatch hook for medication orders sent to a pharmacy (CDS Hooks order-dispatch
1.0; CRD STU 2.2 names it a 'primary' hook, like order-sign).

The context names the signed orders being dispatched (`dispatchedOrders`, references such
as "MedicationRequest/123"), the `performer` they go to, and optionally `fulfillmentTasks`.
The orders themselves are not in the request: they are found among the patient's
MedicationRequests (the `medicationRequests` prefetch key, sent by the EHR or read from its
FHIR server). Each one found is then evaluated exactly as at order-sign: it becomes an entry
of `draftOrders` of the context the rest of the service reads (`order_context`).

Who ordered: at dispatch `context.userId`, when sent, is the person dispatching, not the
prescriber, so it is dropped; the prescriber is the orders' `requester` and, when every
dispatched order names the same Practitioner or PractitionerRole, the context takes it as
its user so that the prescriber's roles are read with the requester templates
(`REQUESTER_PREFETCH`, read from the FHIR server: an EHR does not send them at dispatch).

A dispatched MedicationRequest that cannot be found gets a could-not-check card naming
it (`unread_reason`): its drug is unknown, so it might be one a policy decides.
Orders of other types (ServiceRequest ...) are not this service's. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from cds_service.cards import Evaluation, MissingData, NotEvaluated, render_response

if TYPE_CHECKING:
    from cds_service.pipeline import Engine

ORDERS_KEY: Final = "medicationRequests"
"""The prefetch key whose results hold the dispatched orders."""
MEDICATION_REQUEST: Final = "MedicationRequest"
REQUESTER_PREFETCH: Final[Mapping[str, str]] = {
    "requesterRole": "PractitionerRole/{{userPractitionerRoleId}}",
    "requesterRoles": "PractitionerRole?practitioner={{userPractitionerId}}",
}
"""The prescriber's roles, filled from the requester the context takes as its user.
Not published in discovery."""
REQUESTER_TYPES: Final = frozenset({"Practitioner", "PractitionerRole"})


def medication_refs(context: Mapping[str, Any]) -> list[str]:
    """The dispatched orders that are MedicationRequests, once each, in order."""
    refs = context.get("dispatchedOrders")
    found = (
        ref.strip()
        for ref in (refs if isinstance(refs, list) else [])
        if isinstance(ref, str) and ref.strip().startswith(f"{MEDICATION_REQUEST}/")
    )
    return list(dict.fromkeys(found))


def find_orders(
    refs: Sequence[str], resources: Iterable[Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], list[str]]:
    """(the MedicationRequests of `refs` found in `resources`, in the order of `refs`;
    the refs not found)."""
    by_ref = {
        f"{r['resourceType']}/{r.get('id')}": r
        for r in resources
        if r.get("resourceType") == MEDICATION_REQUEST
    }
    found = [by_ref[ref] for ref in refs if ref in by_ref]
    return found, [ref for ref in refs if ref not in by_ref]


def requester(orders: Sequence[Mapping[str, Any]]) -> str | None:
    """The one Practitioner / PractitionerRole reference every order names as requester."""
    refs = set()
    for order in orders:
        who = order.get("requester")
        ref = who.get("reference") if isinstance(who, Mapping) else None
        if not isinstance(ref, str) or ref.split("/", 1)[0] not in REQUESTER_TYPES:
            return None
        refs.add(ref)
    return refs.pop() if len(refs) == 1 else None


def order_context(
    context: Mapping[str, Any], orders: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The context the rest of the service reads: the dispatched orders as `draftOrders`,
    the prescriber (when one) as `userId`, the dispatching user dropped."""
    out = {k: v for k, v in context.items() if k != "userId"}
    out["draftOrders"] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": dict(order)} for order in orders],
    }
    prescriber = requester(orders)
    if prescriber is not None:
        out["userId"] = prescriber
    return out


def with_orders_prefetch(
    body: Mapping[str, Any], resources: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """`body` with what was read for `ORDERS_KEY` as its prefetch (so it is not read twice)."""
    sent = body.get("prefetch")
    prefetch = dict(sent) if isinstance(sent, Mapping) else {}
    prefetch[ORDERS_KEY] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": dict(r)} for r in resources],
    }
    return {**body, "prefetch": prefetch}


def unread_reason(why: str | None) -> str:
    """Why a dispatched MedicationRequest could not be checked (plain words, no PHI)."""
    if why:
        return (
            "the dispatched order could not be read: the patient's medication orders "
            f"could not be had ({why})"
        )
    return (
        "the dispatched order could not be read: it is not among the patient's "
        "medication orders the EHR sent or its FHIR server returned"
    )


def unread_response(
    engine: Engine,
    hook: str,
    refs: Sequence[str],
    reason: str,
    missing: Sequence[MissingData],
    *,
    uuid_factory: Callable[[], str],
    now: datetime,
) -> dict[str, Any]:
    """A could-not-check card for each dispatched MedicationRequest in `refs` (not found),
    under the registry's fallback pack (the drug, hence the pack, is unknown)."""
    pack = engine.registry.fallback
    items: list[Evaluation | NotEvaluated] = [
        NotEvaluated(ref, reason, tuple(missing), drug_known=False, policy_id=pack.id)
        for ref in refs
    ]
    return render_response(
        hook,
        items,
        settings=engine.settings_for(pack),
        card_texts=engine.registry.texts_for,
        uuid_factory=uuid_factory,
        now=now,
    )
