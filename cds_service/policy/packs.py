"""Policy packs: one folder per plan policy, loaded and validated once at start-up.

    registry = load_packs()                       # every pack under PACKS_DIR, validated
    pack = registry.for_ingredient("<name>")       # the pack whose drug an order is for
    pack = registry.for_identities(["<name>", ...])
    pack.policy, pack.drug, pack.id, pack.version

A pack folder (`cds_service/packs/<policy id>/`) holds `pack.json` (the manifest,
`pack.schema.json`), `policy.yaml` (criteria, checks and parameters, approval durations;
`definition.POLICY_SCHEMA`) and `drug.json` (the drug's identity, `drug.schema.json`), plus
the texts people read (the source policy, its interpretation, its verified codes). Every
subfolder with a `pack.json` is a pack; a folder without one is not read.

A pack that does not fit stops the service: `load_packs` raises `PolicyFileError` naming the
file, the place in it and what is wrong. Besides the schemas: the manifest's id and version
equal the policy's, the folder is named by the id, the drug's ingredient equals the policy's
drug, and no two packs decide the same ingredient (routing would be ambiguous).

Routing is a dictionary lookup by ingredient name (the ingredient's value set in the shared
terminology, `fhir_mappings/valuesets/<name>.json`, which is what the FHIR mapping tells an
order's drug by); product codes and NDCs of `drug.json` are indexed too, for callers that
hold a bare code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import jsonschema

from cds_service.cards.texts import CardTexts, load_card_texts
from cds_service.policy.definition import PACKS_DIR, Policy, PolicyFileError, read_policy_file
from fhir_mappings.product_unit import ProductUnit, ProductUnitError

__all__ = [
    "DRUG_FILE",
    "MANIFEST_FILE",
    "PACKS_DIR",
    "PACKS_DIR_ENV",
    "POLICY_FILE",
    "Pack",
    "PackDrug",
    "PolicyFileError",
    "ProductCode",
    "Registry",
    "default_registry",
    "load_pack",
    "load_packs",
    "packs_dir",
]

PACKS_DIR_ENV: Final = "CDS_POLICY_PACKS_DIR"
"""Environment variable naming another folder of packs (default: the packaged ones)."""
MANIFEST_FILE: Final = "pack.json"
POLICY_FILE: Final = "policy.yaml"
DRUG_FILE: Final = "drug.json"
SCHEMA_DIR: Final = Path(__file__).resolve().parent.parent / "packs"
"""The pack format's JSON Schemas (`pack.schema.json`, `drug.schema.json`) live here, next
to the packaged packs, whichever folder the packs are loaded from."""


@dataclass(frozen=True)
class ProductCode:
    system: str
    """"rxnorm", "ndc" or "hcpcs"."""
    code: str
    display: str


@dataclass(frozen=True)
class PackDrug:
    """The drug a pack decides (`drug.json`)."""

    ingredient: str
    """The ingredient's value set name in the shared terminology: what routes orders."""
    rxnorm: str
    """RxNorm ingredient (IN) RxCUI."""
    brand: str
    products: tuple[ProductCode, ...]
    billing_hcpcs: tuple[str, ...]
    billing_ndc: tuple[str, ...]
    route: str
    unit: ProductUnit
    """What one administration unit holds (a syringe, a vial) and what it can give; units per
    administration = ceil(dose mg / deliverable_mg)."""

    @property
    def names(self) -> tuple[str, str]:
        """(ingredient, brand): the words that name this drug."""
        return (self.ingredient, self.brand)


@dataclass(frozen=True)
class Pack:
    """One loaded, validated policy pack."""

    directory: Path
    manifest: Mapping[str, Any]
    policy: Policy
    drug: PackDrug
    card_texts: CardTexts
    """The pack's card texts (`cards.yaml`), checked against its policy at load."""

    @property
    def id(self) -> str:
        return self.policy.id

    @property
    def version(self) -> str:
        return self.policy.version

    @property
    def title(self) -> str:
        return str(self.manifest["title"])

    @property
    def effective(self) -> str:
        """YYYY-MM."""
        return str(self.manifest["effective"])


def normal_code(system: str, code: str) -> tuple[str, str]:
    """The key a product code is indexed by: NDCs as 11 digits without hyphens (a 10-digit
    NDC with hyphens is padded in its short segment), other codes as written."""
    if system != "ndc":
        return system, code.strip()
    parts = code.strip().split("-")
    if len(parts) == 3:
        widths = (5, 4, 2)
        return system, "".join(p.zfill(w) for p, w in zip(parts, widths, strict=True))
    return system, code.strip()


@dataclass(frozen=True)
class Registry:
    """Every pack, by id, by ingredient name and by product code."""

    packs: Mapping[str, Pack]
    by_ingredient: Mapping[str, Pack]
    by_code: Mapping[tuple[str, str], Pack]
    """(system, code) -> pack; system "rxnorm" / "ndc" / "hcpcs", NDCs as 11 digits."""

    @cached_property
    def units(self) -> Mapping[str, ProductUnit]:
        """{ingredient name: the unit of its pack's product}, for the dose arithmetic."""
        return MappingProxyType({name: p.drug.unit for name, p in self.by_ingredient.items()})

    @cached_property
    def ingredients(self) -> frozenset[str]:
        """The ingredient names some pack decides (the drugs orders are routed for)."""
        return frozenset(self.by_ingredient)

    def for_ingredient(self, name: str) -> Pack | None:
        return self.by_ingredient.get(name)

    def for_identities(self, identities: Iterable[str]) -> Pack | None:
        """The pack of the first ingredient name that some pack decides."""
        for name in identities:
            pack = self.by_ingredient.get(name)
            if pack is not None:
                return pack
        return None

    def for_code(self, system: str, code: str) -> Pack | None:
        return self.by_code.get(normal_code(system, code))

    def texts_for(self, policy_id: str) -> CardTexts:
        """The card texts of pack `policy_id` (the fallback pack's for an unknown id)."""
        pack = self.packs.get(policy_id)
        return (pack or self.fallback).card_texts

    @property
    def fallback(self) -> Pack:
        """The pack whose settings an order whose drug cannot be told is answered under:
        the longest-standing policy (earliest effective date, then id)."""
        return min(self.packs.values(), key=lambda p: (p.effective, p.id))


# --------------------------------------------------------------------------- reading


def _where(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


@lru_cache(maxsize=4)
def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _read_json(path: Path, schema: str) -> Any:
    """A JSON file checked against one of the pack format's schemas."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PolicyFileError(f"{path}: missing (every pack needs one)") from exc
    except OSError as exc:
        raise PolicyFileError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyFileError(
            f"{path}: line {exc.lineno} column {exc.colno}: not valid JSON: {exc.msg}"
        ) from exc
    errors = sorted(
        _validator(schema).iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]
    )
    if errors:
        first = errors[0]
        raise PolicyFileError(f"{path}: {_where(first.absolute_path)}: {first.message}")
    return data


def _drug(data: Mapping[str, Any]) -> PackDrug:
    unit = data["unit"]
    return PackDrug(
        ingredient=data["ingredient"]["name"],
        rxnorm=data["ingredient"]["rxnorm"],
        brand=data["brand"],
        products=tuple(ProductCode(p["system"], p["code"], p["display"]) for p in data["products"]),
        billing_hcpcs=tuple(data["billing"]["hcpcs"]),
        billing_ndc=tuple(data["billing"]["ndc"]),
        route=data["route"],
        unit=ProductUnit.from_json(unit),
    )


def load_pack(directory: Path) -> Pack:
    """Read and validate one pack folder. Raises `PolicyFileError`."""
    manifest_path = directory / MANIFEST_FILE
    manifest = _read_json(manifest_path, "pack.schema.json")
    policy_path = directory / POLICY_FILE
    if not policy_path.is_file():
        raise PolicyFileError(f"{policy_path}: missing (every pack needs one)")
    policy = read_policy_file(policy_path)
    for key in ("id", "version"):
        if manifest[key] != getattr(policy, key):
            raise PolicyFileError(
                f"{manifest_path}: {key}: {manifest[key]!r} differs from {POLICY_FILE}'s "
                f"{getattr(policy, key)!r}"
            )
    if directory.name != manifest["id"]:
        raise PolicyFileError(
            f"{manifest_path}: id: {manifest['id']!r} differs from the pack folder's name "
            f"{directory.name!r}"
        )
    source = directory / manifest["source"]
    if not source.is_file():
        raise PolicyFileError(
            f"{manifest_path}: source: no file {manifest['source']!r} in the pack"
        )
    drug_path = directory / DRUG_FILE
    try:
        drug = _drug(_read_json(drug_path, "drug.schema.json"))
    except ProductUnitError as exc:
        raise PolicyFileError(f"{drug_path}: {exc}") from exc
    if drug.ingredient != policy.drug:
        raise PolicyFileError(
            f"{drug_path}: ingredient.name: {drug.ingredient!r} differs from {POLICY_FILE}'s "
            f"drug {policy.drug!r}"
        )
    policy = replace(policy, drug_label=drug.brand)
    card_texts = load_card_texts(directory)
    return Pack(directory, MappingProxyType(dict(manifest)), policy, drug, card_texts)


def registry_of(packs: Iterable[Pack]) -> Registry:
    """Index packs; two packs for one ingredient, or one code in two packs, is an error."""
    by_id: dict[str, Pack] = {}
    by_ingredient: dict[str, Pack] = {}
    by_code: dict[tuple[str, str], Pack] = {}
    for pack in packs:
        if pack.id in by_id:
            raise PolicyFileError(
                f"{pack.directory / MANIFEST_FILE}: id: {pack.id!r} is also the id of the pack "
                f"in {by_id[pack.id].directory}"
            )
        by_id[pack.id] = pack
        other = by_ingredient.get(pack.drug.ingredient)
        if other is not None:
            raise PolicyFileError(
                f"{pack.directory / DRUG_FILE}: ingredient.name: {pack.drug.ingredient!r} is "
                f"already decided by pack {other.id} ({other.directory / DRUG_FILE}); one "
                "ingredient, one pack"
            )
        by_ingredient[pack.drug.ingredient] = pack
        codes = [(p.system, p.code) for p in pack.drug.products]
        codes += [("hcpcs", c) for c in pack.drug.billing_hcpcs]
        codes += [("ndc", c) for c in pack.drug.billing_ndc]
        for system, code in codes:
            key = normal_code(system, code)
            holder = by_code.get(key)
            if holder is not None and holder is not pack:
                raise PolicyFileError(
                    f"{pack.directory / DRUG_FILE}: {system} code {code!r} is also a code of "
                    f"pack {holder.id}"
                )
            by_code[key] = pack
    if not by_id:
        raise PolicyFileError("no policy pack found (no folder with a pack.json)")
    return Registry(
        packs=MappingProxyType(by_id),
        by_ingredient=MappingProxyType(by_ingredient),
        by_code=MappingProxyType(by_code),
    )


def pack_directories(directory: Path) -> list[Path]:
    """Every subfolder of `directory` with a manifest, by name."""
    if not directory.is_dir():
        raise PolicyFileError(f"{directory}: no such folder of policy packs")
    return sorted(p for p in directory.iterdir() if (p / MANIFEST_FILE).is_file())


def load_packs(directory: Path | None = None) -> Registry:
    """Every pack under `directory` (default: `packs_dir()`), validated and indexed.

    Raises `PolicyFileError` naming the file, the place in it and what is wrong."""
    root = directory if directory is not None else packs_dir()
    return registry_of(load_pack(d) for d in pack_directories(root))


def packs_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`CDS_POLICY_PACKS_DIR` when set, else the packaged packs."""
    value = (environ if environ is not None else os.environ).get(PACKS_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else PACKS_DIR


@lru_cache(maxsize=8)
def _cached(directory: Path) -> Registry:
    return load_packs(directory)


def default_registry(directory: Path | None = None) -> Registry:
    """`load_packs`, cached by resolved folder (packs do not change while serving)."""
    return _cached((directory if directory is not None else packs_dir()).resolve())
