"""The unit of each pack's product (drug.json `unit`), by ingredient name.

The dose arithmetic (`fhir_mappings.build_facts(..., units=...)`) needs each product's unit
to read doses in mL or in units of the product and to count units. Until the pack registry
hands them over, they are read here from every pack folder's drug.json; the ingredient is
drug.json's `ingredient.name`, else the pack's policy.yaml `drug`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import yaml

from cds_service.policy.definition import PACKS_DIR
from fhir_mappings.product_unit import ProductUnit, ProductUnitError


class UnitFileError(ValueError):
    """A drug.json whose unit block cannot be read (the message names the file)."""


def _ingredient(folder: Path, drug: Mapping[str, object]) -> str | None:
    ingredient = drug.get("ingredient")
    if isinstance(ingredient, Mapping) and isinstance(ingredient.get("name"), str):
        return str(ingredient["name"])
    policy = folder / "policy.yaml"
    if policy.is_file():
        data = yaml.safe_load(policy.read_text(encoding="utf-8"))
        if isinstance(data, Mapping) and isinstance(data.get("drug"), str):
            return str(data["drug"])
    return None


def read_units(directory: Path) -> Mapping[str, ProductUnit]:
    """{ingredient name: unit} for every pack folder under `directory` with a drug.json."""
    found: dict[str, ProductUnit] = {}
    for path in sorted(directory.glob("*/drug.json")):
        drug = json.loads(path.read_text(encoding="utf-8"))
        unit = drug.get("unit") if isinstance(drug, Mapping) else None
        if not isinstance(unit, Mapping):
            continue
        name = _ingredient(path.parent, drug)
        if name is None:
            raise UnitFileError(f"{path}: no ingredient name (drug.json or policy.yaml drug)")
        try:
            found[name] = ProductUnit.from_json(unit)
        except ProductUnitError as exc:
            raise UnitFileError(f"{path}: {exc}") from exc
    return MappingProxyType(found)


@lru_cache(maxsize=1)
def pack_units() -> Mapping[str, ProductUnit]:
    """The units of the packs shipped with the service (read once)."""
    return read_units(PACKS_DIR)


def unit_of(drug: str) -> ProductUnit | None:
    """The unit of the product of `drug` (an ingredient name), if a pack gives one."""
    return pack_units().get(drug)


@lru_cache(maxsize=32)
def unit_of_pack(policy_id: str) -> ProductUnit | None:
    """The unit in the drug.json of the pack folder named `policy_id`, if there is one."""
    path = PACKS_DIR / policy_id / "drug.json"
    if "/" in policy_id or ".." in policy_id or not path.is_file():
        return None
    unit = json.loads(path.read_text(encoding="utf-8")).get("unit")
    return ProductUnit.from_json(unit) if isinstance(unit, Mapping) else None
