"""The drug policy as data: loading and validating a policy file.

A policy file (YAML) holds the policy's identity, its indications (which value sets
claim them), its sections per pathway with their criteria (the policy's own words,
the check that decides each and the check's parameters), the criteria evaluated for
every pathway, score tables and the other policies it refers to. A file that does not
fit raises `PolicyFileError` naming the file and the path inside it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import yaml

from cds_service.policy import checks_dose
from cds_service.policy.checks import CHECKS, Band, ParamSpec
from cds_service.policy.model import Pathway, Status
from cds_service.policy.proposals import (
    NO_PROPOSALS,
    PROPOSALS_SCHEMA,
    Proposals,
    parse_proposals,
    proposal_problems,
)
from fhir_mappings.valuesets import valueset_names

PACKS_DIR = Path(__file__).resolve().parent.parent / "packs"
DEFAULT_POLICY_PATH = PACKS_DIR / "NH.PHAR.244" / "policy.yaml"


class PolicyFileError(ValueError):
    """A policy file that cannot be used; the message names the file and the place in it."""


@dataclass(frozen=True)
class CriterionVariant:
    """How a criterion is decided for one indication (e.g. II.A.2 for RA vs others)."""

    check: str
    params: Mapping[str, Any]
    text: str | None = None
    documentation: str | None = None


@dataclass(frozen=True)
class CriterionDef:
    id: str
    text: str
    check: str
    params: Mapping[str, Any]
    documentation: str
    note: str | None = None
    by_indication: Mapping[str, CriterionVariant] = field(default_factory=dict)
    sections: tuple[str, ...] = ()
    """For a common criterion: the sections it applies to (empty: every section)."""
    clauses: tuple[str, ...] = ()
    """Numbered clauses of the source text this criterion implements besides its own id
    (its id covers its own clause and the clause's sub-items); checked by the linter."""

    def applies_to(self, section_id: str) -> bool:
        return not self.sections or section_id in self.sections

    def variant(self, indication: str) -> CriterionVariant:
        found = self.by_indication.get(indication)
        if found is not None:
            return found
        return CriterionVariant(self.check, self.params)

    def variants(self) -> tuple[CriterionVariant, ...]:
        if self.by_indication:
            return tuple(self.by_indication.values())
        return (CriterionVariant(self.check, self.params),)

    def possible_statuses(self) -> frozenset[Status]:
        return frozenset(s for v in self.variants() for s in CHECKS[v.check].statuses_for(v.params))


@dataclass(frozen=True)
class GeneClaim:
    """A diagnosis in `valuesets` claims the indication only with a result for `gene`."""

    valuesets: frozenset[str]
    gene: str


@dataclass(frozen=True)
class IndicationDef:
    name: str
    title: str
    valuesets: frozenset[str]
    with_gene: GeneClaim | None = None
    conflicts_with: tuple[str, ...] = ()
    """Indications that contradict this one (another phenotype of the same disease): when
    an established diagnosis claims one of them too, this one cannot be met until the
    prescriber confirms which diagnosis the order treats."""
    claim_from_history: bool = False
    """A recurring indication: when nothing else claims an indication, its confirmed
    Conditions of any clinical status (resolved episodes, remission) claim it too."""


@dataclass(frozen=True)
class SectionDef:
    id: str
    title: str
    pathway: Pathway
    indications: tuple[str, ...]
    criteria: tuple[CriterionDef, ...]
    approval_months: int | None
    off_label: bool = False
    policy_references: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class PathwayRules:
    current_statuses: frozenset[str]
    """Statuses of a drug record that mean "currently receiving"."""
    ignored_statuses: frozenset[str]
    """Statuses of records that never show the patient received the drug."""
    continued_within_days: int
    """A record that ended this many days or fewer before the order still counts."""


@dataclass(frozen=True)
class ReasonRules:
    """Which of an order's reason codes decide the indication on their own."""

    not_a_diagnosis: tuple[tuple[str, str], ...] = ()
    """(code system, code prefix) pairs, e.g. ICD-10-CM "Z" (factors influencing health
    status, such as Z79.899 long-term drug therapy)."""
    complete_systems: tuple[str, ...] = ()
    """Code systems whose codes for the covered indications are all in the value sets
    (ICD-10-CM, by prefix): a code of such a system that matches no indication names
    another diagnosis. A code of any other system (SNOMED CT, local codes) that matches
    nothing may still be a covered diagnosis the value sets do not list."""

    def decides(self, system: str, code: str) -> bool:
        """Does an unmatched reason code name a diagnosis outside the policy?"""
        return system in self.complete_systems and not any(
            system == rule_system and code.upper().startswith(prefix.upper())
            for rule_system, prefix in self.not_a_diagnosis
        )


@dataclass(frozen=True)
class Policy:
    id: str
    title: str
    drug: str
    line_of_business: str
    effective: str
    last_review: str
    version: str
    references: Mapping[str, str]
    pathway: PathwayRules
    indications: tuple[IndicationDef, ...]
    sections: tuple[SectionDef, ...]
    common_criteria: tuple[CriterionDef, ...]
    """Evaluated on every pathway and section (III.B combination, IV.C contraindication)."""
    scales: Mapping[str, tuple[Band, ...]]
    source: str = ""
    order_reasons: ReasonRules = ReasonRules()
    not_decidable: tuple[tuple[str, str], ...] = ()
    """(clause, reason): numbered clauses of the source text that no criterion decides
    from FHIR data, with the reason; checked by the linter."""
    drug_label: str = ""
    """The drug's name on cards and reasons (its pack's brand, `drug.json`); empty when the
    policy is read without its pack: `drug` is used."""
    proposals: Proposals = NO_PROPOSALS
    """Orders the cards propose when a criterion cannot be met from the chart: companions
    (a test or measurement to add) and alternates (a product to try first)."""

    @property
    def drug_name(self) -> str:
        return self.drug_label or self.drug

    def section(self, section_id: str) -> SectionDef:
        for section in self.sections:
            if section.id == section_id:
                return section
        raise KeyError(section_id)

    def sections_for(self, pathway: Pathway, indication: str) -> list[SectionDef]:
        return [s for s in self.sections if s.pathway is pathway and indication in s.indications]

    def off_label_section(self, pathway: Pathway) -> SectionDef:
        for section in self.sections:
            if section.pathway is pathway and section.off_label:
                return section
        raise KeyError(f"no off-label section for the {pathway} pathway")

    def all_criteria(self) -> Iterator[CriterionDef]:
        for section in self.sections:
            yield from section.criteria
        yield from self.common_criteria


# --------------------------------------------------------------------------- schema

_CRITERION_ID = r"^(I|II|III|IV)\.[A-Z](\.[0-9]+)?$"
CLAUSE_ID = r"^(I|II|III|IV)\.[A-Z](\.[0-9]+)?(\.[a-z])?(\.[ivx]+)?$"
"""A numbered clause of the source text: I.A, I.A.4, I.A.4.b, II.A.2.a.ii, III.B."""
_VARIANT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["check"],
    "properties": {
        "check": {"type": "string"},
        "params": {"type": "object"},
        "text": {"type": "string"},
        "documentation": {"type": "string"},
    },
}
_CRITERION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "text", "documentation"],
    "properties": {
        "id": {"type": "string", "pattern": _CRITERION_ID},
        "text": {"type": "string", "minLength": 1},
        "check": {"type": "string"},
        "params": {"type": "object"},
        "documentation": {"type": "string", "minLength": 1},
        "note": {"type": "string"},
        "by_indication": {"type": "object", "additionalProperties": _VARIANT, "minProperties": 1},
        "sections": {"type": "array", "items": {"type": "string"}},
        "clauses": {"type": "array", "items": {"type": "string", "pattern": CLAUSE_ID}},
    },
    "oneOf": [{"required": ["check"]}, {"required": ["by_indication"]}],
}
_BANDS = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["upper", "label"],
        "properties": {"upper": {"type": ["number", "null"]}, "label": {"type": "string"}},
    },
}
POLICY_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id",
        "title",
        "drug",
        "line_of_business",
        "effective",
        "last_review",
        "version",
        "references",
        "pathway",
        "indications",
        "sections",
        "common_criteria",
    ],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "title": {"type": "string"},
        "drug": {"type": "string"},
        "line_of_business": {"type": "string"},
        "effective": {"type": "string", "pattern": r"^\d\d\.\d\d$"},
        "last_review": {"type": "string", "pattern": r"^\d\d\.\d\d$"},
        "version": {"type": "string", "minLength": 1},
        "note": {"type": "string"},
        "references": {"type": "object", "additionalProperties": {"type": "string"}},
        "pathway": {
            "type": "object",
            "additionalProperties": False,
            "required": ["current_statuses", "ignored_statuses", "continued_within_days"],
            "properties": {
                "current_statuses": {"type": "array", "items": {"type": "string"}},
                "ignored_statuses": {"type": "array", "items": {"type": "string"}},
                "continued_within_days": {"type": "integer", "minimum": 0},
                "note": {"type": "string"},
            },
        },
        "scales": {"type": "object", "additionalProperties": _BANDS},
        "order_reasons": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "not_a_diagnosis": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["system", "prefix"],
                        "properties": {
                            "system": {"type": "string", "minLength": 1},
                            "prefix": {"type": "string", "minLength": 1},
                        },
                    },
                },
                "complete_systems": {"type": "array", "items": {"type": "string"}},
                "note": {"type": "string"},
            },
        },
        "indications": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "title", "valuesets"],
                "properties": {
                    "name": {"type": "string"},
                    "title": {"type": "string"},
                    "valuesets": {"type": "array", "items": {"type": "string"}},
                    "conflicts_with": {"type": "array", "items": {"type": "string"}},
                    "with_gene": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["valuesets", "gene"],
                        "properties": {
                            "valuesets": {"type": "array", "items": {"type": "string"}},
                            "gene": {"type": "string"},
                        },
                    },
                    "claim_from_history": {"type": "boolean"},
                    "note": {"type": "string"},
                },
            },
        },
        "sections": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "title", "pathway", "indications", "criteria"],
                "properties": {
                    "id": {"type": "string", "pattern": r"^(I|II)\.[A-Z]$"},
                    "title": {"type": "string"},
                    "pathway": {"enum": [p.value for p in Pathway]},
                    "indications": {"type": "array", "items": {"type": "string"}},
                    "approval_months": {"type": ["integer", "null"], "minimum": 1},
                    "off_label": {"type": "boolean"},
                    "policy_references": {"type": "array", "items": {"type": "string"}},
                    "note": {"type": "string"},
                    "criteria": {"type": "array", "minItems": 1, "items": _CRITERION},
                },
            },
        },
        "common_criteria": {"type": "array", "items": _CRITERION},
        "not_decidable": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["clause", "reason"],
                "properties": {
                    "clause": {"type": "string", "pattern": CLAUSE_ID},
                    "reason": {"type": "string", "minLength": 1},
                },
            },
        },
        **PROPOSALS_SCHEMA,
    },
}


def _where(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def known_valueset_names() -> frozenset[str]:
    """The value sets the FHIR mapping knows (files under fhir_mappings/valuesets/)."""
    return frozenset(valueset_names())


class _Validator:
    def __init__(self, source: str, valuesets: frozenset[str], references: frozenset[str]):
        self.source = source
        self.valuesets = valuesets
        self.references = references

    def fail(self, where: str, message: str) -> PolicyFileError:
        return PolicyFileError(f"{self.source}: {where}: {message}")

    def names(self, where: str, names: Sequence[str]) -> frozenset[str]:
        unknown = sorted(set(names) - self.valuesets)
        if unknown:
            raise self.fail(where, f"unknown value set(s) {', '.join(unknown)}")
        return frozenset(names)

    def params(self, where: str, check: str, params: Mapping[str, Any]) -> None:
        definition = CHECKS.get(check)
        if definition is None:
            raise self.fail(
                f"{where}.check", f"unknown check {check!r} (known: {', '.join(sorted(CHECKS))})"
            )
        extra = sorted(set(params) - set(definition.params))
        if extra:
            raise self.fail(f"{where}.params", f"unknown parameter(s) {', '.join(extra)}")
        for name, spec in definition.params.items():
            if name not in params:
                if spec.required:
                    raise self.fail(f"{where}.params", f"missing parameter {name!r}")
                continue
            self.param(f"{where}.params.{name}", spec, params[name])

    def param(self, where: str, spec: ParamSpec, value: Any) -> None:
        kind = spec.kind
        if kind == "valueset":
            if not isinstance(value, str):
                raise self.fail(where, "expected a value set name")
            self.names(where, [value])
        elif kind == "valuesets":
            if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
                raise self.fail(where, "expected a non-empty list of value set names")
            self.names(where, value)
        elif kind == "strs":
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise self.fail(where, "expected a list of strings")
        elif kind == "status":
            if value not in {str(st) for st in Status}:
                raise self.fail(where, f"expected one of {', '.join(map(str, Status))}")
        elif kind == "str":
            if not isinstance(value, str):
                raise self.fail(where, "expected a string")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise self.fail(where, "expected true or false")
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise self.fail(where, "expected a whole number >= 0")
        elif kind in ("dose", "dose_bands", "quantity"):
            problem = checks_dose.param_problem(kind, value)
            if problem:
                raise self.fail(where, problem)
        elif kind == "int_map":
            if not (
                isinstance(value, Mapping)
                and value
                and all(
                    isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v > 0
                    for k, v in value.items()
                )
            ):
                raise self.fail(where, "expected a mapping of names to whole numbers > 0")
        elif kind == "checks":
            self.sub_checks(where, value)
        elif kind == "thresholds":
            self.thresholds(where, value)
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.fail(where, "expected a number >= 0")

    def sub_checks(self, where: str, value: Any) -> None:
        """A combinator's `checks`: each `{check, params}` validated like a criterion's."""
        if not (isinstance(value, list) and value):
            raise self.fail(where, "expected a non-empty list of {check, params}")
        for index, sub in enumerate(value):
            at = f"{where}[{index}]"
            if not (
                isinstance(sub, Mapping)
                and isinstance(sub.get("check"), str)
                and set(sub) <= {"check", "params"}
                and isinstance(sub.get("params") or {}, Mapping)
            ):
                raise self.fail(at, "expected {check: <kind>, params: {...}}")
            self.params(at, sub["check"], sub.get("params") or {})

    def thresholds(self, where: str, value: Any) -> None:
        """Value set name -> `{value: number >= 0, unit: text}`."""
        if not (isinstance(value, Mapping) and value):
            raise self.fail(where, "expected a mapping of value set names to {value, unit}")
        self.names(where, [str(k) for k in value])
        for name, limit in value.items():
            number = limit.get("value") if isinstance(limit, Mapping) else None
            if not (
                isinstance(limit, Mapping)
                and set(limit) <= {"value", "unit"}
                and isinstance(number, int | float)
                and not isinstance(number, bool)
                and number >= 0
                and isinstance(limit.get("unit"), str)
            ):
                raise self.fail(f"{where}.{name}", "expected {value: number >= 0, unit: text}")

    def criterion(
        self, where: str, raw: Mapping[str, Any], indications: frozenset[str]
    ) -> CriterionDef:
        by_indication: dict[str, CriterionVariant] = {}
        for name, variant in (raw.get("by_indication") or {}).items():
            if name not in indications:
                raise self.fail(f"{where}.by_indication", f"unknown indication {name!r}")
            params = variant.get("params") or {}
            self.params(f"{where}.by_indication.{name}", variant["check"], params)
            by_indication[name] = CriterionVariant(
                variant["check"],
                MappingProxyType(dict(params)),
                variant.get("text"),
                variant.get("documentation"),
            )
        params = raw.get("params") or {}
        check = raw.get("check", "")
        if check:
            self.params(where, check, params)
        if params.get("policies"):
            missing = sorted(set(params["policies"]) - self.references)
            if missing:
                raise self.fail(f"{where}.params.policies", f"not in references: {missing}")
        return CriterionDef(
            id=raw["id"],
            text=raw["text"].strip(),
            check=check,
            params=MappingProxyType(dict(params)),
            documentation=raw["documentation"].strip(),
            note=raw.get("note"),
            by_indication=MappingProxyType(by_indication),
            sections=tuple(raw.get("sections", [])),
            clauses=tuple(raw.get("clauses", [])),
        )


def parse_policy(data: Any, source: str = "<policy>") -> Policy:
    """Validate a loaded policy document and build the `Policy`."""
    errors = sorted(
        jsonschema.Draft202012Validator(POLICY_SCHEMA).iter_errors(data),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if errors:
        first = errors[0]
        raise PolicyFileError(f"{source}: {_where(list(first.absolute_path))}: {first.message}")

    refs = frozenset(data["references"])
    v = _Validator(source, known_valueset_names(), refs)
    v.names("drug", [data["drug"]])

    indications: list[IndicationDef] = []
    for i, raw in enumerate(data["indications"]):
        where = f"indications[{i}]"
        gene = raw.get("with_gene")
        indications.append(
            IndicationDef(
                name=raw["name"],
                title=raw["title"],
                valuesets=v.names(f"{where}.valuesets", raw["valuesets"]),
                with_gene=GeneClaim(
                    v.names(f"{where}.with_gene.valuesets", gene["valuesets"]), gene["gene"]
                )
                if gene
                else None,
                conflicts_with=tuple(raw.get("conflicts_with", ())),
                claim_from_history=raw.get("claim_from_history", False),
            )
        )
    indication_names = frozenset(i.name for i in indications)
    if len(indication_names) != len(indications):
        raise v.fail("indications", "indication names must be unique")
    for i, indication in enumerate(indications):
        unknown = sorted(set(indication.conflicts_with) - indication_names)
        if unknown:
            raise v.fail(
                f"indications[{i}].conflicts_with", f"unknown indication(s) {', '.join(unknown)}"
            )

    seen: set[str] = set()
    sections: list[SectionDef] = []
    for s_index, raw in enumerate(data["sections"]):
        where = f"sections[{s_index}]"
        for name in raw["indications"]:
            if name not in indication_names and name != "other":
                raise v.fail(f"{where}.indications", f"unknown indication {name!r}")
        for ref in raw.get("policy_references", []):
            if ref not in refs:
                raise v.fail(f"{where}.policy_references", f"{ref!r} is not in references")
        criteria = []
        for c_index, c_raw in enumerate(raw["criteria"]):
            c_where = f"{where}.criteria[{c_index}]"
            criterion = v.criterion(c_where, c_raw, indication_names)
            if criterion.id in seen:
                raise v.fail(f"{c_where}.id", f"duplicate criterion id {criterion.id}")
            seen.add(criterion.id)
            criteria.append(criterion)
        sections.append(
            SectionDef(
                id=raw["id"],
                title=raw["title"],
                pathway=Pathway(raw["pathway"]),
                indications=tuple(raw["indications"]),
                criteria=tuple(criteria),
                approval_months=raw.get("approval_months"),
                off_label=bool(raw.get("off_label", False)),
                policy_references=tuple(raw.get("policy_references", [])),
                note=raw.get("note"),
            )
        )
    for pathway in Pathway:
        if sum(1 for s in sections if s.pathway is pathway and s.off_label) != 1:
            raise v.fail("sections", f"need exactly one off_label section for {pathway.value}")

    common = []
    section_ids = {s.id for s in sections}
    for c_index, c_raw in enumerate(data["common_criteria"]):
        c_where = f"common_criteria[{c_index}]"
        criterion = v.criterion(c_where, c_raw, indication_names)
        if criterion.id in seen:
            raise v.fail(f"{c_where}.id", f"duplicate criterion id {criterion.id}")
        for section_id in criterion.sections:
            if section_id not in section_ids:
                raise v.fail(f"{c_where}.sections", f"unknown section {section_id!r}")
        seen.add(criterion.id)
        common.append(criterion)

    for where, message in proposal_problems(data, frozenset(seen)):
        raise v.fail(where, message)

    scales = {
        kind: tuple(Band(b["upper"], b["label"]) for b in bands)
        for kind, bands in (data.get("scales") or {}).items()
    }
    v.names("scales", list(scales))
    rules = data["pathway"]
    return Policy(
        id=data["id"],
        title=data["title"],
        drug=data["drug"],
        line_of_business=data["line_of_business"],
        effective=data["effective"],
        last_review=data["last_review"],
        version=data["version"],
        references=MappingProxyType(dict(data["references"])),
        pathway=PathwayRules(
            frozenset(rules["current_statuses"]),
            frozenset(rules["ignored_statuses"]),
            int(rules["continued_within_days"]),
        ),
        indications=tuple(indications),
        sections=tuple(sections),
        common_criteria=tuple(common),
        scales=MappingProxyType(scales),
        source=source,
        order_reasons=ReasonRules(
            tuple(
                (rule["system"], rule["prefix"])
                for rule in (data.get("order_reasons") or {}).get("not_a_diagnosis", [])
            ),
            tuple((data.get("order_reasons") or {}).get("complete_systems", [])),
        ),
        not_decidable=tuple(
            (entry["clause"], entry["reason"].strip()) for entry in data.get("not_decidable", [])
        ),
        proposals=parse_proposals(data),
    )


def read_policy_file(path: Path) -> Policy:
    """Read, validate and build a policy from a YAML file (I/O at the edge)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"{path}: not valid YAML: {exc}") from exc
    return parse_policy(data, str(path))
