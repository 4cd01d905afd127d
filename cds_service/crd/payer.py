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

The call's primary Coverage (CRD hook-13, `primary_coverage`): the first Coverage the
order names in `MedicationRequest.insurance` that was sent; else, among the patient's
Coverages (beneficiary or subscriber is the call's patient), the single one in force
(status active, period not over), else the single one of any status; several: the one
with the lowest `Coverage.order`, else the only one of this payer; otherwise they cannot
be told apart. What happens when the primary Coverage is not this payer's (or there is
none, or several, or its payor names no organization) is the payer file's `other_payers`:

- `reject` (the default of a payer file; CRD hook-13): the call is answered 400 with an
  OperationOutcome that says what was wrong (`CoverageNotHandledError`);
- `answer-without-coverage-information` (the packaged demo payer only: not conformant,
  docs/crd.md): the cards are sent and no coverage information, the evaluation says why.

This payer's primary Coverage that is not in force (status cancelled / draft /
entered-in-error, or its period is over) gets `not-covered` with reason
`no-active-coverage` (resp-45); one whose beneficiary is another patient, `not-covered`
with `no-member-found` (resp-44: the member cannot be resolved; the service has no member
system, the Coverage sent is the member's record); one with no status at all (required in
FHIR R4; the Da Vinci reference client sends one) is never asserted covered: `covered` is
`indeterminate` and the reason says the Coverage does not say it is in force.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema

from fhir_mappings.coverage import CoverageRecord, Identifier, Payor
from fhir_mappings.fields import reference

HERE: Final = Path(__file__).resolve().parent
SCHEMA_FILE: Final = HERE / "payer.schema.json"
REJECT: Final = "reject"
ANSWER_WITHOUT: Final = "answer-without-coverage-information"
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
    other_payers: str = "reject"
    """REJECT (400, CRD hook-13) or ANSWER_WITHOUT (demo mode): what a call gets whose
    primary Coverage is not this payer's (see the module)."""

    @property
    def rejects(self) -> bool:
        return self.other_payers == REJECT

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
        other_payers=str(data.get("other_payers", REJECT)),
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


class CoverageNotHandledError(ValueError):
    """The call's primary Coverage is not one this payer handles (CRD hook-13): 400."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


IN_FORCE: Final = "in-force"
NOT_IN_FORCE: Final = "not-in-force"
OTHER_MEMBER: Final = "other-member"
STATUS_UNKNOWN: Final = "status-unknown"
NOT_HANDLED: Final = "not-handled"


@dataclass(frozen=True)
class Primary:
    """The call's primary Coverage and what the service makes of it (module rule)."""

    coverage: CoverageRecord | None
    state: str
    """IN_FORCE, NOT_IN_FORCE, OTHER_MEMBER, STATUS_UNKNOWN (this payer's), or
    NOT_HANDLED (none, several, another payer's, no payor)."""
    reason: str
    """Plain words, no patient data."""


def in_force(coverage: CoverageRecord, today: date) -> bool:
    """Status active and the period not over on `today`."""
    if coverage.status != "active":
        return False
    end = coverage.period_end
    return end is None or end[:10] >= today.isoformat()


def _why_not_in_force(coverage: CoverageRecord, today: date) -> str:
    if coverage.status != "active":
        return f"{coverage.ref} is not in force (status {coverage.status})"
    return f"{coverage.ref} is not in force (its period ended before {today.isoformat()})"


def _pick(candidates: Sequence[CoverageRecord], payer: Payer, today: date) -> CoverageRecord | str:
    """The primary among the patient's Coverages, or why none can be told."""
    if not candidates:
        return "no Coverage of the patient was sent or could be read"
    pool = [c for c in candidates if in_force(c, today)] or list(candidates)
    if len(pool) == 1:
        return pool[0]
    orders = sorted(c.order for c in pool if c.order is not None)
    if orders and orders.count(orders[0]) == 1:
        return next(c for c in pool if c.order == orders[0])
    ours = [c for c in pool if payer.owns(c)]
    if len(ours) == 1:
        return ours[0]
    return (
        f"{len(pool)} Coverages of the patient were sent and none is named by the order's "
        "insurance or marked primary by Coverage.order, so the primary one cannot be told"
    )


def primary_coverage(
    coverages: Sequence[CoverageRecord],
    payer: Payer,
    order: Mapping[str, Any],
    patient_ref: str | None,
    today: date,
) -> Primary:
    """The call's primary Coverage for `order` among every Coverage sent (module rule)."""
    sent = {c.ref: c for c in coverages}
    named = [sent[r] for r in _order_insurance(order) if r in sent]
    if named:
        chosen: CoverageRecord | str = named[0]
        how = "named by the order's insurance"
    else:
        mine = [c for c in coverages if patient_ref is None or patient_ref in c.people]
        chosen, how = _pick(mine, payer, today), "the patient's primary Coverage"
    if isinstance(chosen, str):
        return Primary(None, NOT_HANDLED, chosen)
    if not payer.owns(chosen):
        if not any(p.reference or p.identifier or p.display for p in chosen.payors):
            why = f"{chosen.ref} ({how}) names no payer (Coverage.payor)"
        else:
            why = (
                f"{chosen.ref} ({how}) is another payer's coverage: this service answers for "
                f"{payer.name} only"
            )
        return Primary(chosen, NOT_HANDLED, why)
    if patient_ref is not None and chosen.beneficiary not in (None, patient_ref):
        why = f"{chosen.ref} ({how}) is another member's: the patient is not its beneficiary"
        return Primary(chosen, OTHER_MEMBER, why)
    if chosen.status is None:
        why = f"{chosen.ref} ({how}) does not say whether it is in force (it has no status)"
        return Primary(chosen, STATUS_UNKNOWN, why)
    if not in_force(chosen, today):
        return Primary(chosen, NOT_IN_FORCE, _why_not_in_force(chosen, today) + f" ({how})")
    return Primary(chosen, IN_FORCE, f"{chosen.ref} is the patient's Coverage with {payer.name}")
