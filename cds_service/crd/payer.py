"""The payer this service speaks for, and which of the patient's Coverages is its own.

    load_payer(path | None) -> Payer        (None: the packaged demo payer)
    choose_coverage(coverages, payer, order) -> CoverageChoice

Configuration: a JSON file named by `CDS_PAYER_FILE`, checked against
`payer.schema.json` at start-up (a bad file stops the service). Without it the packaged
demo payer (`payer.demo.json`, "Example Health Plan") is used and start-up says so.

A Coverage is the payer's when one of its payors matches: its reference is one of
`organizations.references`; its logical identifier, or an identifier of the payor
Organization sent with the data, is one of `organizations.identifiers`; or the payor
Organization's name, or the reference's display, is one of `organizations.names` (case and
repeated spaces ignored). When `plans` is set, one of the Coverage's classes must also be one
of them. A Coverage of any other payer never gets an assertion.

Several Coverages of the payer: the one the order names in `MedicationRequest.insurance`
first, then the lowest `Coverage.order` (the primary), then the smallest reference; so the
same data always picks the same Coverage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema

from fhir_mappings.coverage import CoverageRecord, Identifier, Payor
from fhir_mappings.fields import reference

HERE: Final = Path(__file__).resolve().parent
SCHEMA_FILE: Final = HERE / "payer.schema.json"
DEMO_FILE: Final = HERE / "payer.demo.json"


class PayerFileError(ValueError):
    """The payer file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Contact:
    """The plan's desk for questions about an assertion (a FHIR ContactDetail)."""

    name: str
    phone: str | None = None
    url: str | None = None
    email: str | None = None

    def to_fhir(self) -> dict[str, Any]:
        telecom = [
            {"system": system, "value": value}
            for system, value in (("phone", self.phone), ("url", self.url), ("email", self.email))
            if value
        ]
        return {"name": self.name, "telecom": telecom} if telecom else {"name": self.name}


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class Payer:
    """The payer identity the service asserts coverage for."""

    name: str
    references: frozenset[str] = frozenset()
    identifiers: frozenset[Identifier] = frozenset()
    names: frozenset[str] = frozenset()
    """Folded (`_fold`)."""
    plans: frozenset[tuple[str, str]] = frozenset()
    """(class type, value); empty: every plan of the payer."""
    contact: Contact | None = None
    source: str = "demo"
    """Where it came from: "demo" or the file's path (for the start-up line)."""

    def pays(self, payor: Payor) -> bool:
        """True when `payor` is this payer."""
        if payor.reference is not None and payor.reference in self.references:
            return True
        ids = {payor.identifier, *payor.organization_identifiers}
        if any(i in self.identifiers for i in ids if i is not None):
            return True
        texts = (payor.organization_name, payor.display)
        return any(_fold(t) in self.names for t in texts if t)

    def owns(self, coverage: CoverageRecord) -> bool:
        """True when `coverage` is with this payer (and one of its plans, when listed)."""
        if not any(self.pays(p) for p in coverage.payors):
            return False
        return not self.plans or any(c in self.plans for c in coverage.classes)


def payer_from_json(data: Mapping[str, Any], source: str) -> Payer:
    orgs = data["organizations"]
    contact = data.get("contact")
    return Payer(
        name=str(data["name"]),
        references=frozenset(orgs.get("references", ())),
        identifiers=frozenset((i["system"], i["value"]) for i in orgs.get("identifiers", ())),
        names=frozenset(_fold(n) for n in orgs.get("names", ())),
        plans=frozenset((p["type"], p["value"]) for p in data.get("plans", ())),
        contact=Contact(
            name=contact["name"],
            phone=contact.get("phone"),
            url=contact.get("url"),
            email=contact.get("email"),
        )
        if contact
        else None,
        source=source,
    )


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text("utf-8"))
    return jsonschema.Draft202012Validator(schema)


def load_payer(path: Path | None = None) -> Payer:
    """The payer of `path` (validated), or the packaged demo payer when `path` is None.
    Raises `PayerFileError` for a file that is missing, not JSON or not valid."""
    file = DEMO_FILE if path is None else path
    try:
        data = json.loads(file.read_text("utf-8"))
    except OSError as exc:
        raise PayerFileError(f"{file}: cannot be read ({type(exc).__name__})") from exc
    except ValueError as exc:
        raise PayerFileError(f"{file}: not JSON ({exc})") from exc
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.path)))
    if errors:
        where = "/" + "/".join(str(p) for p in errors[0].absolute_path)
        raise PayerFileError(f"{file}: {where}: {errors[0].message}")
    return payer_from_json(data, "demo" if path is None else str(path))


def startup_line(payer: Payer) -> str:
    """What start-up announces about the payer."""
    if payer.source == "demo":
        return (
            f"CDS_PAYER_FILE is not set: coverage information is given for the packaged demo "
            f"payer '{payer.name}' only; point CDS_PAYER_FILE at the plan's payer file "
            "(cds_service/crd/payer.schema.json, docs/crd.md)"
        )
    return f"coverage information is given for the payer '{payer.name}' ({payer.source}) only"


@dataclass(frozen=True)
class CoverageChoice:
    """The Coverage of the payer an assertion is made for, or None and why not."""

    coverage: CoverageRecord | None
    reason: str
    """Plain words, no patient data: why this one, or why none."""


def _order_insurance(order: Mapping[str, Any]) -> list[str]:
    items = order.get("insurance")
    refs = [reference(i) for i in (items if isinstance(items, list) else [])]
    return [r for r in refs if r]


def choose_coverage(
    coverages: Sequence[CoverageRecord], payer: Payer, order: Mapping[str, Any]
) -> CoverageChoice:
    """The payer's Coverage for `order` among the patient's active `coverages` (see the
    module for the rule)."""
    if not coverages:
        return CoverageChoice(None, "no active Coverage of the patient was sent or could be read")
    ours = [c for c in coverages if payer.owns(c)]
    if not ours:
        return CoverageChoice(
            None,
            f"none of the patient's {len(coverages)} active Coverage(s) is with {payer.name}: "
            "no coverage assertion is made for another payer's coverage",
        )
    if len(ours) == 1:
        return CoverageChoice(ours[0], f"{ours[0].ref} is the patient's Coverage with {payer.name}")
    named = _order_insurance(order)

    def rank(c: CoverageRecord) -> tuple[int, int, str]:
        position = named.index(c.ref) if c.ref in named else len(named)
        return (position, c.order if c.order is not None else 1_000_000, c.ref)

    chosen = min(ours, key=rank)
    how = (
        "the one the order names"
        if chosen.ref in named
        else "the lowest Coverage.order"
        if chosen.order is not None
        else "the first by reference"
    )
    return CoverageChoice(
        chosen,
        f"{chosen.ref} chosen among {len(ours)} Coverages with {payer.name} ({how})",
    )
