"""`cds-service evaluate`: the service's evaluation, run offline on a saved file.

Two inputs are understood:

- a CDS Hooks request (`hook`, `context`, `prefetch`) as an EHR would send it: the
  context and the prefetch are used as they are, nothing is fetched, and what the
  service's prefetch asks for but the request does not carry counts as unavailable (the
  criteria resting on it are unknown, as the service would answer after a failed read);
- a FHIR Bundle of the patient's record plus `--order`, a draft MedicationRequest:
  the context is built from them (patient from the order's subject or the Bundle's only
  Patient, user from the order's requester, encounter from the order's encounter).

The same mapping, policy packs and serialiser as the service are used (each order by the
pack of its drug), so what this prints is what the service would decide for the same data
on the same day.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from cds_service.cards import Evaluation, NotEvaluated
from cds_service.cards.serialize import not_evaluated_to_json
from cds_service.config import Settings
from cds_service.hooks import load_catalog
from cds_service.pipeline import CallContext, evaluate_orders
from cds_service.policy.packs import Registry, default_registry
from cds_service.policy.report import decision_to_json, format_table
from cds_service.prefetch import flatten, unanswered_keys


class InputError(ValueError):
    """The file cannot be evaluated; the message says why, in plain words."""


@dataclass(frozen=True)
class EvaluationReport:
    items: tuple[Evaluation | NotEvaluated, ...]
    other_orders: int
    drugs: tuple[str, ...] = ()
    """The ingredients the packs decide (what an order must be for to be evaluated)."""

    def to_json(self) -> str:
        out: list[dict[str, Any]] = []
        for item in self.items:
            if isinstance(item, Evaluation):
                out.append(decision_to_json(item.decision))
            else:
                out.append(not_evaluated_to_json(item.order_ref, item.reason))
        return json.dumps({"evaluations": out}, indent=2)

    def to_text(self) -> str:
        if not self.items:
            names = " / ".join(self.drugs) or "policy pack drug"
            return (
                f"No {names} order found in the draft orders "
                f"({self.other_orders} other order(s) ignored)."
            )
        blocks = []
        for item in self.items:
            if isinstance(item, Evaluation):
                blocks.append(format_table(item.decision))
            else:
                blocks.append(f"{item.order_ref}: not evaluated: {item.reason}")
        return "\n\n".join(blocks)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc})") from None


def _reference(resource: Mapping[str, Any], name: str) -> str | None:
    value = resource.get(name)
    ref = value.get("reference") if isinstance(value, Mapping) else None
    return ref if isinstance(ref, str) and ref else None


def context_from_bundle(
    bundle: Mapping[str, Any], order: Mapping[str, Any]
) -> tuple[dict[str, Any], list[Mapping[str, Any]]]:
    """A CDS Hooks order-sign context and the resources, from a record Bundle and an order."""
    if order.get("resourceType") != "MedicationRequest":
        raise InputError("--order must be a MedicationRequest")
    resources = flatten(bundle)
    subject = _reference(order, "subject")
    if subject and subject.startswith("Patient/"):
        patient_id = subject.removeprefix("Patient/")
    else:
        patients = [r for r in resources if r.get("resourceType") == "Patient"]
        if len(patients) != 1 or not isinstance(patients[0].get("id"), str):
            raise InputError(
                "the order has no Patient subject and the Bundle has no single Patient"
            )
        patient_id = str(patients[0]["id"])
    context: dict[str, Any] = {
        "patientId": patient_id,
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": order}],
        },
    }
    requester = _reference(order, "requester")
    context["userId"] = requester or "Practitioner/unknown"
    encounter = _reference(order, "encounter")
    if encounter and encounter.startswith("Encounter/"):
        context["encounterId"] = encounter.removeprefix("Encounter/")
    return context, resources


def unavailable_types(request: Mapping[str, Any], hooks_dir: Path) -> frozenset[str]:
    """Resource types this saved request did not carry although the service's prefetch asks
    for them: nothing is fetched offline, so their data is unknown, not empty."""
    catalog = load_catalog(hooks_dir)
    hook = request.get("hook")
    for service in catalog.services.values():
        if service.hook == hook:
            return service.resource_types(unanswered_keys(service.prefetch, request))
    return frozenset()


def request_inputs(request: Mapping[str, Any]) -> tuple[Mapping[str, Any], list[Mapping[str, Any]]]:
    context = request.get("context")
    if not isinstance(context, Mapping):
        raise InputError("the request has no context object")
    prefetch = request.get("prefetch")
    resources: list[Mapping[str, Any]] = []
    if isinstance(prefetch, Mapping):
        seen: set[tuple[str, str]] = set()
        for value in prefetch.values():
            for resource in flatten(value):
                key = (str(resource.get("resourceType")), str(resource.get("id")))
                if resource.get("id") is not None and key in seen:
                    continue
                seen.add(key)
                resources.append(resource)
    return context, resources


def evaluate_inputs(
    context: Mapping[str, Any],
    resources: Sequence[Mapping[str, Any]],
    today: date,
    hook: str = "order-sign",
    unavailable: frozenset[str] = frozenset(),
    registry: Registry | None = None,
) -> EvaluationReport:
    registry = registry if registry is not None else default_registry()
    call = CallContext(
        service_id="cli",
        hook=hook,
        hook_instance="cli",
        context=context,
        now=datetime.combine(today, time(12, 0), tzinfo=UTC),
        uuid_factory=lambda: "cli",
        unavailable_types=unavailable,
    )
    items = [routed.item for routed in evaluate_orders(registry, call, resources)]
    draft = context.get("draftOrders")
    entries = draft.get("entry") if isinstance(draft, Mapping) else None
    total = len(entries) if isinstance(entries, list) else 0
    return EvaluationReport(
        items=tuple(items),
        other_orders=max(0, total - len(items)),
        drugs=tuple(sorted(registry.ingredients)),
    )


def evaluate_file(
    path: Path,
    order_path: Path | None,
    today: date,
    hooks_dir: Path | None = None,
    packs_dir: Path | None = None,
) -> EvaluationReport:
    """Evaluate a saved request (or a Bundle plus `order_path`) with the packs of
    `packs_dir` (default: `CDS_POLICY_PACKS_DIR`, else the packaged ones)."""
    registry = default_registry(packs_dir)
    data = _read_json(path)
    if not isinstance(data, Mapping):
        raise InputError(f"{path} holds no JSON object")
    if order_path is not None:
        if data.get("resourceType") != "Bundle":
            raise InputError("with --order, FILE must be a FHIR Bundle of the patient's record")
        order = _read_json(order_path)
        if not isinstance(order, Mapping):
            raise InputError(f"{order_path} holds no JSON object")
        built, record = context_from_bundle(data, order)
        return evaluate_inputs(built, record, today, registry=registry)
    if data.get("resourceType") == "Bundle":
        raise InputError("FILE is a FHIR Bundle: name the draft order with --order ORDER.json")
    if "context" not in data:
        raise InputError("FILE is neither a CDS Hooks request nor a FHIR Bundle")
    context, resources = request_inputs(data)
    hook = data.get("hook") if data.get("hook") in ("order-sign", "order-select") else "order-sign"
    missing = unavailable_types(data, hooks_dir or Settings().hooks_dir)
    return evaluate_inputs(context, resources, today, str(hook), missing, registry)
