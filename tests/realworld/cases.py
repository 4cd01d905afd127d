"""Every case (one per sample chart, one per variant) with its chart ready for both paths.

A variant changes a copy of a real chart. So that the FHIR sandbox can hold the original and
every variant at once, a variant's resources are renamed: each id gets the suffix `-vNN` and
every reference to them follows (the draft order's patient, requester, encounter and user
too). Logical references by identifier (an NPI) are not ids and stay as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from tests.realworld.charts import Chart, Json, chart_by_key
from tests.realworld.ehr import OrderSpec
from tests.realworld.expectations import CHART_CASES, Case
from tests.realworld.variants import VARIANT_CASES

ALL_CASES: Final[tuple[Case, ...]] = (*CHART_CASES, *VARIANT_CASES)
CASES_BY_NAME: Final[dict[str, Case]] = {case.name: case for case in ALL_CASES}


@dataclass(frozen=True)
class Prepared:
    case: Case
    chart: Chart
    spec: OrderSpec


def _rename(value: Any, mapping: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            key: (
                mapping.get(item, item)
                if key == "reference" and isinstance(item, str)
                else _rename(item, mapping)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_rename(item, mapping) for item in value]
    return value


def renamed(resources: list[Json], suffix: str) -> tuple[list[Json], dict[str, str]]:
    """The resources with `suffix` added to every id, and the old -> new reference map."""
    mapping = {
        f"{r['resourceType']}/{r['id']}": f"{r['resourceType']}/{r['id']}{suffix}"
        for r in resources
        if r.get("id")
    }
    out: list[Json] = []
    for resource in resources:
        copy_ = _rename(resource, mapping)
        if copy_.get("id"):
            copy_["id"] = f"{copy_['id']}{suffix}"
        out.append(copy_)
    return out, mapping


def _renamed_ref(ref: str | None, mapping: Mapping[str, str]) -> str | None:
    return mapping.get(ref, ref) if ref else ref


@cache
def prepare(name: str) -> Prepared:
    """The case's chart (changed and renamed for a variant) and order spec."""
    case = CASES_BY_NAME[name]
    base = chart_by_key(case.chart)
    if case.transform is None and case.edit_order is None:
        return Prepared(case, base, case.spec)
    resources = base.fresh_resources()
    if case.transform is not None:
        resources = case.transform(resources)
    suffix = f"-v{VARIANT_CASES.index(case) + 1:02d}"
    resources, mapping = renamed(resources, suffix)
    encounter = case.spec.encounter
    spec = dataclasses.replace(
        case.spec,
        requester=_renamed_ref(case.spec.requester, mapping),
        user=_renamed_ref(case.spec.user, mapping),
        encounter=f"{encounter}{suffix}" if encounter else None,
    )
    chart = Chart(case.name, base.path, f"{base.patient_id}{suffix}", tuple(resources))
    return Prepared(case, chart, spec)
