"""Which prefetch discovery asks the EHR for (CRD found-27, found-28): the operator's choice,
`CDS_PREFETCH`.

- `full` (the default): every template the service reads. An EHR that gives the service no
  access to its FHIR server still sends all a decision needs.
- `minimal`: only what every call of the hook needs (`EVERY_CALL`): the patient and the
  coverage (the patient's identity and age, and the payer check, read for every order the
  service decides on); at order-dispatch also `medicationRequests`, among which the
  dispatched orders are found (the context holds only their references, so every call
  needs them to know the drug). The draft orders themselves travel in the context, not in
  prefetch. Everything else (conditions, medications, observations, the prescriber's role,
  the encounter, ...) is queried from the EHR's FHIR server, and only in a call with an
  order for a drug of a loaded pack (`cds_service.orders.needs_data`).

In both settings the service keeps every template (`ServiceDefinition.prefetch`): a key the
EHR does not send is read with its template when, and only when, the call has such an
order; a call whose orders no pack covers reads nothing. Only the discovery entries differ.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from cds_service.hooks import Catalog

PREFETCH_MODES: Final = ("full", "minimal")
EVERY_CALL: Final = ("patient", "coverage")
"""Prefetch keys every call of every hook needs."""
EVERY_CALL_BY_HOOK: Final[Mapping[str, tuple[str, ...]]] = {
    "order-dispatch": ("medicationRequests",),
}
"""More keys every call of one hook needs."""


def minimal_keys(hook: str, keys: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys of `keys` that `minimal` keeps for `hook`, in their order."""
    wanted = set(EVERY_CALL) | set(EVERY_CALL_BY_HOOK.get(hook, ()))
    return tuple(key for key in keys if key in wanted)


def advertised(discovery: Mapping[str, Any], hook: str, mode: str) -> dict[str, Any]:
    """One discovery entry as published under `mode`."""
    entry = dict(discovery)
    prefetch = entry.get("prefetch")
    if mode == "minimal" and isinstance(prefetch, Mapping):
        entry["prefetch"] = {key: prefetch[key] for key in minimal_keys(hook, prefetch)}
    return entry


def for_mode(catalog: Catalog, mode: str) -> Catalog:
    """`catalog` with the discovery entries `mode` publishes (templates unchanged)."""
    if mode == "full":
        return catalog
    services = {
        service_id: replace(service, discovery=advertised(service.discovery, service.hook, mode))
        for service_id, service in catalog.services.items()
    }
    return replace(catalog, services=services)
