"""The unit a drug product is dispensed and given in (a prefilled syringe, a vial), as data.

A policy pack's `drug.json` describes it in its `unit` block; the caller builds a
`ProductUnit` from that block and passes it to the dose arithmetic
(`fhir_mappings.build_facts(..., units={ingredient: unit})`), which needs it to turn
"1 syringe", "2 vials" or a volume in mL into mg, and a dose in mg into the units one
administration takes. Nothing here names a drug.

    {"name": "vial", "plural": "vials", "ucum": "{vial}", "aliases": ["VIAL"],
     "content_mg": 220, "content_ml": 2.75, "deliverable_mg": 160}

- `content_mg` in `content_ml`: the product's concentration (mg per mL = content_mg /
  content_ml), used to read a dose or a dispense quantity written in mL;
- `deliverable_mg`: the most one unit gives in one administration; a dose of D mg takes
  ceil(D / deliverable_mg) units, and "N units" as a dose is N x deliverable_mg.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

_ROUND: Final = 6
_ONE_OF_THE_PRODUCT: Final = frozenset({"{each}", "each", "ea", "{pill}"})
"""Count units that mean one unit of the chosen product (the CDS Hooks sandbox codes every
dose as UCUM {pill})."""


class ProductUnitError(ValueError):
    """A `unit` block that cannot describe a product unit (the message names the field)."""


@dataclass(frozen=True)
class ProductUnit:
    name: str
    """One unit in words, e.g. "syringe", "vial"."""
    plural: str
    ucum: str
    """The UCUM annotation the unit is coded with, e.g. "{syringe}"."""
    aliases: tuple[str, ...]
    """Other spellings of the unit in orders ("PFS", "{Syringe}")."""
    content_mg: float
    content_ml: float
    deliverable_mg: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProductUnit:
        """A unit from a drug.json `unit` block; `ProductUnitError` names a bad field."""

        def text(key: str) -> str:
            value = data.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ProductUnitError(f"unit.{key}: a non-empty text is required")
            return value.strip()

        def amount(key: str) -> float:
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ProductUnitError(f"unit.{key}: a positive number is required")
            return float(value)

        aliases = data.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ProductUnitError("unit.aliases: a list of texts is required")
        return cls(
            name=text("name"),
            plural=text("plural"),
            ucum=text("ucum"),
            aliases=tuple(aliases),
            content_mg=amount("content_mg"),
            content_ml=amount("content_ml"),
            deliverable_mg=amount("deliverable_mg"),
        )

    @property
    def mg_per_ml(self) -> float:
        return self.content_mg / self.content_ml

    def words(self) -> frozenset[str]:
        """Lower-case unit keys that mean one unit of this product."""
        names = {self.name, self.plural, self.ucum, *self.aliases}
        names |= {f"{{{self.name}}}", f"{{{self.plural}}}"}
        return frozenset(n.strip().lower() for n in names) | _ONE_OF_THE_PRODUCT

    def means_unit(self, key: str) -> bool:
        """`key` (a lower-case unit code or text) counts units of this product."""
        name, plural = self.name.lower(), self.plural.lower()
        return key in self.words() or key.endswith(f" {name}") or key.endswith(f" {plural}")

    def units_for(self, mg: float) -> int:
        """Units one administration of `mg` takes: ceil(mg / deliverable_mg)."""
        return math.ceil(round(mg / self.deliverable_mg, _ROUND))

    def count(self, n: float) -> str:
        """ "1 vial", "2 vials", "0.5 syringes"."""
        shown = str(round(n)) if abs(n - round(n)) < 1e-9 else f"{n:.2f}".rstrip("0").rstrip(".")
        return f"{shown} {self.name if abs(n - 1) < 1e-9 else self.plural}"
