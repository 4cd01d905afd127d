"""The patient's active Coverages, with who pays each (for choosing the plan's own).

    read_coverages(resources, patient_ref) -> tuple[CoverageRecord, ...]

A Coverage counts when its status is `active` and its beneficiary or subscriber is the
patient (any Coverage when the call names no patient), the same rule as
`practitioner.coverage_refs`. Each payor is kept as sent (reference, logical identifier,
display) together with the name and identifiers of the Organization it points to when that
Organization is among the resources (or contained in the Coverage). Nothing here knows which
payer is "ours": that is the CRD layer's configuration.

Pure; reads the resources defensively (a malformed field is skipped, never raised on).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_mappings.fields import reference

Identifier = tuple[str, str]
"""(system, value)."""


@dataclass(frozen=True)
class Payor:
    """One `Coverage.payor` entry."""

    reference: str | None
    """`Organization/<id>` (or `#id` for a contained one), without a server base."""
    identifier: Identifier | None
    """`payor.identifier` (a logical reference), when sent."""
    display: str | None
    organization_name: str | None = None
    """`Organization.name` of the resource the reference points to, when present."""
    organization_identifiers: tuple[Identifier, ...] = ()
    """`Organization.identifier` of that resource, when present."""


@dataclass(frozen=True)
class CoverageRecord:
    """One active Coverage of the patient."""

    ref: str
    """`Coverage/<id>`."""
    payors: tuple[Payor, ...]
    classes: tuple[tuple[str, str], ...]
    """(class type code, value) of each `Coverage.class`, e.g. ("plan", "MEDICAID-STD")."""
    order: int | None
    """`Coverage.order` (1 = the primary coverage), when sent."""
    status: str | None = "active"
    """`Coverage.status` as sent (None: the Coverage has none)."""
    period_end: str | None = None
    """`Coverage.period.end` (a FHIR date or dateTime), when sent."""
    people: frozenset[str] = frozenset()
    """`Patient/<id>` references of the beneficiary and the subscriber, when sent."""
    beneficiary: str | None = None
    """`Patient/<id>` of the beneficiary (the member), when sent."""


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _identifier(value: Any) -> Identifier | None:
    if not isinstance(value, Mapping):
        return None
    system, code = _text(value.get("system")), _text(value.get("value"))
    return (system, code) if system and code else None


def _identifiers(resource: Mapping[str, Any]) -> tuple[Identifier, ...]:
    items = resource.get("identifier")
    found = [_identifier(i) for i in (items if isinstance(items, list) else [])]
    return tuple(i for i in found if i is not None)


def _of_types(
    resources: Sequence[Any],
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(the Organizations, the Coverages) among `resources`, in input order: one pass,
    plain dicts tested first (a chart holds thousands of other resources)."""
    organizations: list[Mapping[str, Any]] = []
    coverages: list[Mapping[str, Any]] = []
    for resource in resources:
        if type(resource) is dict or isinstance(resource, Mapping):
            kind = resource.get("resourceType")
            if kind == "Coverage":
                coverages.append(resource)
            elif kind == "Organization":
                organizations.append(resource)
    return organizations, coverages


def _organizations(resources: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for resource in resources:
        rid = _text(resource.get("id"))
        if rid:
            out.setdefault(f"Organization/{rid}", resource)
    return out


def _contained(coverage: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    items = coverage.get("contained")
    out: dict[str, Mapping[str, Any]] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and item.get("resourceType") == "Organization":
            rid = _text(item.get("id"))
            if rid:
                out[f"#{rid}"] = item
    return out


def _payors(
    coverage: Mapping[str, Any], organizations: Mapping[str, Mapping[str, Any]]
) -> tuple[Payor, ...]:
    contained = _contained(coverage)
    items = coverage.get("payor")
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        ref = reference(item)
        org = contained.get(ref or "") or organizations.get(ref or "")
        out.append(
            Payor(
                reference=ref,
                identifier=_identifier(item.get("identifier")),
                display=_text(item.get("display")),
                organization_name=_text(org.get("name")) if org else None,
                organization_identifiers=_identifiers(org) if org else (),
            )
        )
    return tuple(out)


def _classes(coverage: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    items = coverage.get("class")
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        value = _text(item.get("value"))
        kind = item.get("type")
        # R4 CodeableConcept; the Da Vinci reference client sends a bare Coding.
        codings = kind.get("coding") if isinstance(kind, Mapping) else None
        if not isinstance(codings, list):
            codings = [kind]
        for coding in codings:
            code = _text(coding.get("code")) if isinstance(coding, Mapping) else None
            if code and value:
                out.append((code, value))
    return tuple(out)


def _order(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _period_end(resource: Mapping[str, Any]) -> str | None:
    period = resource.get("period")
    return _text(period.get("end")) if isinstance(period, Mapping) else None


def _coverages(
    resources: Sequence[Any], keep: Callable[[Mapping[str, Any], frozenset[str]], bool]
) -> tuple[CoverageRecord, ...]:
    """Every Coverage among `resources` that `keep(resource, people)` accepts (people: the
    beneficiary and subscriber references), each once, in input order."""
    return _kept(*_of_types(resources), keep)


def _kept(
    organization_resources: Sequence[Mapping[str, Any]],
    coverage_resources: Sequence[Mapping[str, Any]],
    keep: Callable[[Mapping[str, Any], frozenset[str]], bool],
) -> tuple[CoverageRecord, ...]:
    if not coverage_resources:
        return ()
    organizations = _organizations(organization_resources)
    seen: set[str] = set()
    out = []
    for resource in coverage_resources:
        rid = _text(resource.get("id"))
        people = frozenset(
            p
            for p in (reference(resource.get("beneficiary")), reference(resource.get("subscriber")))
            if p
        )
        if rid is None or f"Coverage/{rid}" in seen or not keep(resource, people):
            continue
        seen.add(f"Coverage/{rid}")
        status = resource.get("status")
        out.append(
            CoverageRecord(
                ref=f"Coverage/{rid}",
                payors=_payors(resource, organizations),
                classes=_classes(resource),
                order=_order(resource.get("order")),
                status=status if isinstance(status, str) and status else None,
                period_end=_period_end(resource),
                people=people,
                beneficiary=reference(resource.get("beneficiary")),
            )
        )
    return tuple(out)


def read_all_coverages(resources: Sequence[Any]) -> tuple[CoverageRecord, ...]:
    """Every Coverage among `resources` whatever its status or beneficiary, each once, in
    input order (for the CRD choice of the call's primary Coverage, which must also see
    Coverages that are no longer in force)."""
    return _coverages(resources, _every)


def read_coverages(resources: Sequence[Any], patient_ref: str | None) -> tuple[CoverageRecord, ...]:
    """The patient's active Coverages (see the module), each once, in input order."""
    return _coverages(resources, _active_for(patient_ref))


def _every(_resource: Mapping[str, Any], _people: frozenset[str]) -> bool:
    return True


def _active_for(patient_ref: str | None) -> Callable[[Mapping[str, Any], frozenset[str]], bool]:
    return lambda resource, people: (
        resource.get("status") == "active" and (patient_ref is None or patient_ref in people)
    )


def read_coverage_sets(
    resources: Sequence[Any], patient_ref: str | None
) -> tuple[tuple[CoverageRecord, ...], tuple[CoverageRecord, ...]]:
    """(`read_coverages`, `read_all_coverages`) of the same resources, found in one pass."""
    found = _of_types(resources)
    return _kept(*found, _active_for(patient_ref)), _kept(*found, _every)
