"""`fhir_mappings.build_facts` routed for the drugs the packaged policy packs decide.

The mapping names no drug: which orders go to a policy is the registry's knowledge. Tests
of the mapping route exactly as the service does, through this helper."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from cds_service.policy.packs import default_registry
from fhir_mappings import MappingResult
from fhir_mappings import build_facts as _build_facts
from fhir_mappings.product_unit import ProductUnit


def build_facts(
    context: Mapping[str, Any],
    resources: Sequence[Mapping[str, Any]],
    *,
    as_of: date | None = None,
    unavailable: frozenset[str] = frozenset(),
    units: Mapping[str, ProductUnit] | None = None,
) -> MappingResult:
    registry = default_registry()
    return _build_facts(
        context,
        resources,
        drugs=registry.ingredients,
        as_of=as_of,
        unavailable=unavailable,
        units=registry.units if units is None else units,
    )
