"""Orders a pack proposes when a criterion cannot be met from the chart: pack data.

Two blocks of a pack's policy.yaml, both optional:

- `companions`: a criterion needs a test or a measurement the chart does not hold (a
  screening result, a recent body weight). The card offers to add the order for it next
  to the drug order (Da Vinci CRD "Identify Additional Orders": `create` actions of draft
  ServiceRequests).
- `alternates`: a criterion needs another product tried first and the chart shows no
  trial. The card offers to replace the drug order with one for a product the policy
  names (Da Vinci CRD "Propose Alternate Request": a `delete` of the draft order and a
  `create` of a draft MedicationRequest).

Each block names the criteria it answers and when (`no-record`: the criterion is
unknown and nothing in the chart was found for it; `not-met`, alternates only: the
criterion is not met). The orders carry their codes (with the place each was checked
in the pack's codes.md) and the words a prescriber reads. This module holds the data
and its validation only: no FHIR resource is built here (see `cards/proposals.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

WHEN_NO_RECORD: Final = "no-record"
WHEN_NOT_MET: Final = "not-met"

_CODING = {
    "type": "object",
    "additionalProperties": False,
    "required": ["system", "code", "display"],
    "properties": {
        "system": {"type": "string", "pattern": r"^(https?|urn):"},
        "code": {"type": "string", "minLength": 1},
        "display": {"type": "string", "minLength": 1},
    },
}
_ORDER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "name", "code"],
    "properties": {
        "id": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]*$"},
        "name": {"type": "string", "minLength": 1},
        "code": {"type": "array", "minItems": 1, "items": _CODING},
        "category": {"type": "array", "items": _CODING},
        "dosage_text": {"type": "string", "minLength": 1},
        "note": {"type": "string"},
    },
}


def _block(when: list[str], order_extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "criteria", "need", "orders"],
            "properties": {
                "id": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]*$"},
                "criteria": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "when": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"enum": when},
                },
                "need": {"type": "string", "minLength": 1},
                "orders": {"type": "array", "minItems": 1, "items": _ORDER},
                "note": {"type": "string"},
            },
        },
    }


PROPOSALS_SCHEMA: Final[Mapping[str, Any]] = {
    "companions": _block([WHEN_NO_RECORD]),
    "alternates": _block([WHEN_NO_RECORD, WHEN_NOT_MET]),
}
"""The policy.yaml properties `companions` and `alternates` (JSON Schema fragments)."""


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    display: str

    def to_json(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True)
class ProposedOrder:
    """One order a card may propose."""

    id: str
    name: str
    """The prescriber's words for it ("interferon-gamma release assay (IGRA)")."""
    code: tuple[Code, ...]
    """ServiceRequest.code (companions) or medicationCodeableConcept (alternates)."""
    category: tuple[Code, ...] = ()
    """ServiceRequest.category (companions)."""
    dosage_text: str | None = None
    """An alternate's dosing in the policy's words (dosageInstruction.text), when the
    policy gives it; the prescriber completes the order."""


@dataclass(frozen=True)
class Proposal:
    """A companion or alternate block: the orders a card proposes for some criteria."""

    kind: Literal["companion", "alternate"]
    id: str
    criteria: tuple[str, ...]
    when: frozenset[str]
    need: str
    """What the criterion needs, in the prescriber's words ("a tuberculosis screening
    result from the last 12 months")."""
    orders: tuple[ProposedOrder, ...]

    def applies(self, criterion_id: str) -> bool:
        return criterion_id in self.criteria


@dataclass(frozen=True)
class Proposals:
    companions: tuple[Proposal, ...] = ()
    alternates: tuple[Proposal, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.companions or self.alternates)


NO_PROPOSALS: Final = Proposals()


def _codes(raw: Sequence[Mapping[str, str]]) -> tuple[Code, ...]:
    return tuple(Code(c["system"], c["code"], c["display"]) for c in raw)


def proposal_problems(
    data: Mapping[str, Any], criterion_ids: frozenset[str]
) -> list[tuple[str, str]]:
    """(where, message) for what the schema cannot tell: unknown criteria, ids used
    twice, a criterion answered by two blocks of the same kind, a dosage text on a
    companion, an alternate order without an RxNorm code."""
    problems: list[tuple[str, str]] = []
    for kind in ("companions", "alternates"):
        seen_ids: set[str] = set()
        answered: dict[str, str] = {}
        for index, block in enumerate(data.get(kind) or ()):
            where = f"{kind}[{index}]"
            if block["id"] in seen_ids:
                problems.append((f"{where}.id", f"duplicate id {block['id']!r}"))
            seen_ids.add(block["id"])
            for criterion in block["criteria"]:
                if criterion not in criterion_ids:
                    problems.append((f"{where}.criteria", f"unknown criterion {criterion!r}"))
                elif criterion in answered:
                    problems.append(
                        (
                            f"{where}.criteria",
                            f"{criterion} is already answered by {answered[criterion]!r}",
                        )
                    )
                answered.setdefault(criterion, block["id"])
            order_ids: set[str] = set()
            for o_index, order in enumerate(block["orders"]):
                o_where = f"{where}.orders[{o_index}]"
                if order["id"] in order_ids:
                    problems.append((f"{o_where}.id", f"duplicate order id {order['id']!r}"))
                order_ids.add(order["id"])
                if kind == "companions" and "dosage_text" in order:
                    problems.append(
                        (f"{o_where}.dosage_text", "a companion order (a test) takes no dosage")
                    )
                if kind == "alternates":
                    if "category" in order:
                        problems.append(
                            (f"{o_where}.category", "an alternate (a medication) takes no category")
                        )
                    if not any(c["system"].endswith("/rxnorm") for c in order["code"]):
                        problems.append((f"{o_where}.code", "an alternate needs an RxNorm code"))
    return problems


def parse_proposals(data: Mapping[str, Any]) -> Proposals:
    """The `companions` and `alternates` of a policy document that passed the schema and
    `proposal_problems`."""

    def blocks(key: str, kind: Literal["companion", "alternate"]) -> tuple[Proposal, ...]:
        return tuple(
            Proposal(
                kind=kind,
                id=raw["id"],
                criteria=tuple(raw["criteria"]),
                when=frozenset(raw.get("when", [WHEN_NO_RECORD])),
                need=" ".join(raw["need"].split()),
                orders=tuple(
                    ProposedOrder(
                        id=o["id"],
                        name=" ".join(o["name"].split()),
                        code=_codes(o["code"]),
                        category=_codes(o.get("category", ())),
                        dosage_text=o.get("dosage_text"),
                    )
                    for o in raw["orders"]
                ),
            )
            for raw in data.get(key) or ()
        )

    return Proposals(blocks("companions", "companion"), blocks("alternates", "alternate"))
