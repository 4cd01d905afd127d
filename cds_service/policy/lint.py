"""`cds-service policy lint PACK`: everything a plan pharmacist can get wrong in a pack.

Each check is a pure function from what was read to a list of `Finding`s (severity, the
pack's file, the place in it, what is wrong); `lint_pack` reads the folder and runs them
all, so that one run shows every problem rather than the first. An error means the
service would refuse the pack or decide something the policy text does not say; a
warning is worth a look (a criterion that can never change the outcome).

What is checked:
- pack.json and drug.json against their JSON Schemas (cds_service/packs/*.schema.json);
  policy.yaml against the policy schema (`definition.parse_policy`); id, version, drug and
  dates that must agree between them;
- every value set a policy names exists in the shared terminology (fhir_mappings/valuesets);
- every code of drug.json is in a known system (RxNorm, NDC, HCPCS) and the shared
  terminology identifies it as the pack's ingredient, as it would identify an order;
- every numbered clause of sections I-III of the source text is implemented by a section
  or criterion (its id, a parent clause's id or its `clauses`) or listed in `not_decidable`
  with the reason, and every clause the policy names exists in the text;
- sections no indication reaches, indications no section uses, criteria that can never
  change the outcome, indication variants no section reaches;
- companions and alternates (orders the cards propose): their criteria can reach the state
  they answer (unknown / not met), an alternate's product is one the criterion counts (its
  RxNorm code is in the criterion's value sets), a companion's test is one the criterion
  reads (warning when its codes are in none of the criterion's value sets);
- cards.yaml, when present and the card text loader exists;
- the pack's cases (cases/*.yaml), when present and the case runner exists.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import jsonschema
import yaml

from cds_service.policy.checks import CHECKS
from cds_service.policy.clauses import Clause, covering, source_clauses
from cds_service.policy.definition import (
    PACKS_DIR,
    CriterionDef,
    Policy,
    PolicyFileError,
    parse_policy,
)
from cds_service.policy.model import Pathway, Status
from cds_service.policy.proposals import WHEN_NO_RECORD, WHEN_NOT_MET, Proposal
from fhir_mappings import valuesets
from fhir_mappings.medications import identify_concept

Severity = Literal["error", "warning"]

MANIFEST: Final = "pack.json"
DRUG: Final = "drug.json"
POLICY: Final = "policy.yaml"
CARDS: Final = "cards.yaml"
CASES_DIR: Final = "cases"
PACK_SCHEMA: Final = PACKS_DIR / "pack.schema.json"
DRUG_SCHEMA: Final = PACKS_DIR / "drug.schema.json"

SYSTEMS: Final[Mapping[str, str]] = {
    "rxnorm": valuesets.RXNORM,
    "ndc": valuesets.NDC,
    "hcpcs": valuesets.HCPCS,
}
"""The code systems drug.json may use, by the short name it writes."""

_CODE_FORMS: Final[Mapping[str, re.Pattern[str]]] = {
    "rxnorm": re.compile(r"^[0-9]{1,8}$"),
    "hcpcs": re.compile(r"^[A-Z][0-9]{4}$"),
}

_PATHWAY_CHECKS: Final[Mapping[str, Pathway]] = {"currently-receiving": Pathway.CONTINUED}
"""Checks that restate how the engine chose the pathway: always met there by construction
(the continued pathway is taken only on a current record of the drug), so they are not
reported as criteria that can never change the outcome."""

CARD_LOADER: Final = ("cds_service.cards.texts", "load_card_texts")
CASE_RUNNER: Final = ("cds_service.policy.cases", "run_case_file")


@dataclass(frozen=True, order=True)
class Finding:
    severity: Severity
    file: str
    """The pack's file, relative to the pack folder (policy.yaml, drug.json ...)."""
    place: str
    """Where in the file: a path (sections[0].criteria[2].params), a clause id, a line."""
    message: str

    def line(self) -> str:
        return f"{self.severity}: {self.file}: {self.place}: {self.message}"


def _error(file: str, place: str, message: str) -> Finding:
    return Finding("error", file, place, message)


def _warning(file: str, place: str, message: str) -> Finding:
    return Finding("warning", file, place, message)


def place_of(path: Iterable[Any]) -> str:
    """A JSON path as the linter writes it: sections[0].criteria[2].params."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# --------------------------------------------------------------------------- schemas


def schema_findings(file: str, data: Any, schema: Mapping[str, Any]) -> list[Finding]:
    """Every place where `data` does not fit the JSON Schema."""
    validator = jsonschema.Draft202012Validator(schema)
    return [
        _error(file, place_of(e.absolute_path), e.message)
        for e in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ]


_MANIFEST_FALLBACK: Final[Mapping[str, Any]] = {
    "type": "object",
    "required": [
        "format",
        "id",
        "version",
        "title",
        "effective",
        "last_review",
        "line_of_business",
        "source",
        "dependencies",
    ],
    "properties": {
        "format": {"const": 1},
        "id": {"type": "string", "minLength": 1},
        "version": {"type": "string", "minLength": 1},
        "title": {"type": "string", "minLength": 1},
        "effective": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
        "last_review": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
        "line_of_business": {"type": "string"},
        "source": {"type": "string", "minLength": 1},
        "dependencies": {"type": "object", "required": ["terminology"]},
    },
}
"""Used only when cds_service/packs/pack.schema.json is absent."""

_DRUG_FALLBACK: Final[Mapping[str, Any]] = {
    "type": "object",
    "required": ["ingredient", "brand", "products", "billing", "route", "unit"],
    "properties": {
        "ingredient": {
            "type": "object",
            "required": ["name", "rxnorm"],
            "properties": {"name": {"type": "string"}, "rxnorm": {"type": "string"}},
        },
        "products": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["system", "code"],
                "properties": {"system": {"enum": list(SYSTEMS)}, "code": {"type": "string"}},
            },
        },
        "billing": {
            "type": "object",
            "properties": {
                "hcpcs": {"type": "array", "items": {"type": "string"}},
                "ndc": {"type": "array", "items": {"type": "string"}},
            },
        },
        "unit": {
            "type": "object",
            "required": ["name", "deliverable_mg"],
            "properties": {"deliverable_mg": {"type": "number", "exclusiveMinimum": 0}},
        },
    },
}
"""Used only when cds_service/packs/drug.schema.json is absent."""


def _schema(path: Path, fallback: Mapping[str, Any]) -> Mapping[str, Any]:
    if path.is_file():
        loaded: Mapping[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded
    return fallback


def _policy_date(value: Any) -> str | None:
    """policy.yaml's "06.24" as the manifest writes it, "2024-06"."""
    if isinstance(value, str) and re.fullmatch(r"\d\d\.\d\d", value):
        month, year = value.split(".")
        return f"20{year}-{month}"
    return None


def agreement_findings(
    folder: str, manifest: Mapping[str, Any], drug: Mapping[str, Any], policy: Mapping[str, Any]
) -> list[Finding]:
    """What pack.json, drug.json, policy.yaml and the folder name must say alike."""
    found: list[Finding] = []
    pack_id = manifest.get("id")
    if isinstance(pack_id, str) and pack_id != folder:
        found.append(_error(MANIFEST, "id", f"{pack_id!r} is not the folder's name {folder!r}"))
    for key in ("id", "version"):
        if key in manifest and key in policy and manifest[key] != policy[key]:
            found.append(
                _error(
                    POLICY,
                    key,
                    f"{policy[key]!r} differs from pack.json's {key} {manifest[key]!r}",
                )
            )
    ingredient = drug.get("ingredient")
    name = ingredient.get("name") if isinstance(ingredient, Mapping) else None
    if name is not None and "drug" in policy and policy["drug"] != name:
        found.append(
            _error(POLICY, "drug", f"{policy['drug']!r} is not drug.json's ingredient {name!r}")
        )
    for key in ("effective", "last_review"):
        written = _policy_date(policy.get(key))
        if written and isinstance(manifest.get(key), str) and written != manifest[key]:
            found.append(
                _warning(
                    MANIFEST,
                    key,
                    f"{manifest[key]!r} differs from policy.yaml's {key} {policy[key]!r}",
                )
            )
    return found


# --------------------------------------------------------------------------- drug codes


_UNCLASSIFIED_HCPCS: Final = frozenset({"J3490", "J3590", "J9999", "C9399"})
"""HCPCS codes for unclassified drugs / biologics: they name no drug, so no terminology
can identify them. drug.json may list them under billing; they never route an order."""


def _identified(system: str, code: str) -> frozenset[str]:
    concept = {"coding": [{"system": SYSTEMS[system], "code": code}]}
    return frozenset(identity.drug for identity in identify_concept(concept))


def code_findings(
    ingredient: str,
    codes: Sequence[tuple[str, str, str]],
    identify: Callable[[str, str], frozenset[str]] = _identified,
) -> list[Finding]:
    """Each (place, system, code) of drug.json: a known system, a well-formed code, and
    identified by the shared terminology as `ingredient` (what routes orders to the pack)."""
    found: list[Finding] = []
    for place, system, code in codes:
        if system not in SYSTEMS:
            found.append(
                _error(DRUG, place, f"unknown code system {system!r} (known: {', '.join(SYSTEMS)})")
            )
            continue
        form = _CODE_FORMS.get(system)
        if (form is not None and not form.match(code)) or (
            system == "ndc" and valuesets.normalise_ndc(code) is None
        ):
            found.append(_error(DRUG, place, f"{code!r} is not a well-formed {system} code"))
            continue
        if system == "hcpcs" and code in _UNCLASSIFIED_HCPCS:
            continue
        drugs = identify(system, code)
        if ingredient in drugs:
            continue
        if drugs:
            found.append(
                _error(
                    DRUG,
                    place,
                    f"{system} {code} is {', '.join(sorted(drugs))} in the shared terminology, "
                    f"not {ingredient}",
                )
            )
        else:
            found.append(
                _error(
                    DRUG,
                    place,
                    f"{system} {code} is not in the shared terminology: add it to "
                    f"fhir_mappings/valuesets/products/{ingredient}.json (with its source) or "
                    f"to {ingredient}.json",
                )
            )
    return found


def drug_codes(drug: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(place, system, code) of every code drug.json holds."""
    out: list[tuple[str, str, str]] = []
    ingredient = drug.get("ingredient")
    if isinstance(ingredient, Mapping) and isinstance(ingredient.get("rxnorm"), str):
        out.append(("ingredient.rxnorm", "rxnorm", ingredient["rxnorm"]))
    for i, product in enumerate(drug.get("products") or []):
        if isinstance(product, Mapping):
            out.append((f"products[{i}]", str(product.get("system")), str(product.get("code", ""))))
    billing = drug.get("billing")
    if isinstance(billing, Mapping):
        for system in ("hcpcs", "ndc"):
            for i, code in enumerate(billing.get(system) or []):
                out.append((f"billing.{system}[{i}]", system, str(code)))
    return out


def drug_findings(drug: Mapping[str, Any]) -> list[Finding]:
    """The ingredient is a medication value set, and its codes identify to it."""
    ingredient = drug.get("ingredient")
    name = ingredient.get("name") if isinstance(ingredient, Mapping) else None
    if not isinstance(name, str):
        return []
    if name not in valuesets.valueset_names():
        return [
            _error(
                DRUG,
                "ingredient.name",
                f"no value set {name!r} in the shared terminology "
                f"(fhir_mappings/valuesets/{name}.json)",
            )
        ]
    found: list[Finding] = []
    if valuesets.valueset_kind(name) != "medication":
        found.append(_error(DRUG, "ingredient.name", f"value set {name!r} is not a medication"))
    found.extend(code_findings(name, drug_codes(drug)))
    unit = drug.get("unit")
    if isinstance(unit, Mapping):
        content, deliverable = unit.get("content_mg"), unit.get("deliverable_mg")
        if (
            isinstance(content, int | float)
            and isinstance(deliverable, int | float)
            and deliverable > content
        ):
            found.append(
                _error(
                    DRUG,
                    "unit.deliverable_mg",
                    f"{deliverable} mg is more than the unit holds ({content} mg)",
                )
            )
    return found


# --------------------------------------------------------------------------- value sets


def _check_calls(
    raw: Mapping[str, Any], where: str
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(place, check, params) of a criterion and of each of its indication variants."""
    if isinstance(raw.get("check"), str):
        yield where, raw["check"], raw.get("params") or {}
    for name, variant in (raw.get("by_indication") or {}).items():
        if isinstance(variant, Mapping) and isinstance(variant.get("check"), str):
            yield f"{where}.by_indication.{name}", variant["check"], variant.get("params") or {}


def _criteria_raw(data: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for s, section in enumerate(data.get("sections") or []):
        if isinstance(section, Mapping):
            for c, criterion in enumerate(section.get("criteria") or []):
                if isinstance(criterion, Mapping):
                    yield f"sections[{s}].criteria[{c}]", criterion
    for c, criterion in enumerate(data.get("common_criteria") or []):
        if isinstance(criterion, Mapping):
            yield f"common_criteria[{c}]", criterion


def _param_valuesets(
    check: str, params: Mapping[str, Any], where: str
) -> Iterator[tuple[str, str]]:
    """(place, value set name) of the check's value-set parameters, nested checks included."""
    definition = CHECKS.get(check)
    specs = definition.params if definition else {}
    for key, value in params.items():
        kind = specs[key].kind if key in specs else None
        place = f"{where}.params.{key}"
        if kind == "valueset" and isinstance(value, str):
            yield place, value
        elif kind == "valuesets" and isinstance(value, list):
            for i, name in enumerate(value):
                if isinstance(name, str):
                    yield f"{place}[{i}]", name
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping) and isinstance(item.get("check"), str):
                    yield from _param_valuesets(
                        item["check"], item.get("params") or {}, f"{place}[{i}]"
                    )


def valueset_uses(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(place, name) of every value set policy.yaml names."""
    out: list[tuple[str, str]] = []
    if isinstance(data.get("drug"), str):
        out.append(("drug", data["drug"]))
    for i, indication in enumerate(data.get("indications") or []):
        if not isinstance(indication, Mapping):
            continue
        for j, name in enumerate(indication.get("valuesets") or []):
            out.append((f"indications[{i}].valuesets[{j}]", str(name)))
        gene = indication.get("with_gene")
        if isinstance(gene, Mapping):
            for j, name in enumerate(gene.get("valuesets") or []):
                out.append((f"indications[{i}].with_gene.valuesets[{j}]", str(name)))
    for where, criterion in _criteria_raw(data):
        for place, check, params in _check_calls(criterion, where):
            if isinstance(params, Mapping):
                out.extend(_param_valuesets(check, params, place))
    for kind in data.get("scales") or {}:
        out.append((f"scales.{kind}", str(kind)))
    return out


def valueset_findings(data: Mapping[str, Any], known: frozenset[str]) -> list[Finding]:
    return [
        _error(
            POLICY,
            place,
            f"unknown value set {name!r}: no fhir_mappings/valuesets/{name}.json",
        )
        for place, name in valueset_uses(data)
        if name not in known
    ]


def policy_findings(data: Any) -> tuple[Policy | None, list[Finding]]:
    """The policy schema and rules of `parse_policy` (it stops at its first problem)."""
    try:
        return parse_policy(data, POLICY), []
    except PolicyFileError as exc:
        text = str(exc).removeprefix(f"{POLICY}: ")
        place, _, message = text.partition(": ")
        return None, [_error(POLICY, place, message or place)]


# --------------------------------------------------------------------------- clauses


def _ids(data: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(id -> place) of sections, of criteria, and of the clauses criteria list."""
    sections: dict[str, str] = {}
    own: dict[str, str] = {}
    listed: dict[str, str] = {}
    for s, section in enumerate(data.get("sections") or []):
        if isinstance(section, Mapping) and isinstance(section.get("id"), str):
            sections.setdefault(section["id"], f"sections[{s}].id")
    for where, criterion in _criteria_raw(data):
        if isinstance(criterion.get("id"), str):
            own.setdefault(criterion["id"], f"{where}.id")
        for i, clause in enumerate(criterion.get("clauses") or []):
            listed.setdefault(str(clause), f"{where}.clauses[{i}]")
    return sections, own, listed


def clause_findings(
    clauses: Sequence[Clause], data: Mapping[str, Any], source: str
) -> list[Finding]:
    """Every clause of sections I-III implemented or declared not decidable, and every
    clause the policy names present in the source text."""
    sections, own, listed = _ids(data)
    undecidable: dict[str, str] = {}
    for i, entry in enumerate(data.get("not_decidable") or []):
        if isinstance(entry, Mapping) and isinstance(entry.get("clause"), str):
            undecidable.setdefault(entry["clause"], f"not_decidable[{i}].clause")
    found: list[Finding] = []
    covers = frozenset(own) | frozenset(listed) | frozenset(undecidable)
    reported: set[str] = set()
    for clause in clauses:
        if clause.appendix or clause.id in sections or covering(clause.id, covers):
            continue
        if covering(clause.id, frozenset(reported)):
            continue  # its parent clause is reported already
        reported.add(clause.id)
        found.append(
            _error(
                source,
                f"line {clause.line} {clause.id}",
                f"clause {clause.id} ({_short(clause.text)}) is implemented by no criterion: "
                f"add a criterion, name it in a criterion's clauses, or list it under "
                f"not_decidable with the reason",
            )
        )
    in_text = frozenset(c.id for c in clauses)
    for clause_id, place in sorted({**listed, **undecidable}.items()):
        if clause_id not in in_text:
            found.append(_error(POLICY, place, f"clause {clause_id} is not in {source}"))
    for item_id, place, implemented in _named_items(data):
        if item_id not in in_text and not implemented & in_text:
            found.append(
                _warning(
                    POLICY,
                    place,
                    f"{item_id} names no clause of {source} and implements none: a reader "
                    f"cannot find its words (name the clauses it implements in `clauses`)",
                )
            )
    return found


def _named_items(data: Mapping[str, Any]) -> Iterator[tuple[str, str, frozenset[str]]]:
    """(id, place, the clauses it implements) of every section and criterion: a criterion
    implements its `clauses`, a section what its criteria implement (their ids too)."""
    for where, criterion in _criteria_raw(data):
        if isinstance(criterion.get("id"), str):
            listed = frozenset(str(c) for c in criterion.get("clauses") or [])
            yield criterion["id"], f"{where}.id", listed
    for s, section in enumerate(data.get("sections") or []):
        if not (isinstance(section, Mapping) and isinstance(section.get("id"), str)):
            continue
        implemented: set[str] = set()
        for criterion in section.get("criteria") or []:
            if isinstance(criterion, Mapping):
                implemented.add(str(criterion.get("id")))
                implemented.update(str(c) for c in criterion.get("clauses") or [])
        if section["id"] in implemented:
            continue  # its criterion of the same id is reported, once
        yield section["id"], f"sections[{s}].id", frozenset(implemented)


def _short(text: str, size: int = 60) -> str:
    return text if len(text) <= size else text[: size - 3].rstrip() + "..."


# --------------------------------------------------------------------------- reachability


def _changes_outcome(statuses: frozenset[Status], off_label: bool) -> bool:
    """Can a criterion with these statuses change its section's outcome? In a covered
    section any status but met does; in an off-label section only not-met does (the
    outcome is off-label review otherwise)."""
    if off_label:
        return Status.NOT_MET in statuses
    return bool(statuses - {Status.MET})


def reachability_findings(policy: Policy) -> list[Finding]:
    """Sections no indication reaches, indications no section uses, criteria that can
    never change the outcome, indication variants no section reaches."""
    found: list[Finding] = []
    for index, section in enumerate(policy.sections):
        if not section.off_label and not section.indications:
            found.append(
                _warning(
                    POLICY,
                    f"sections[{index}]",
                    f"section {section.id} names no indication: no order reaches it",
                )
            )
    for index, indication in enumerate(policy.indications):
        pathways = {s.pathway for s in policy.sections if indication.name in s.indications}
        if not pathways:
            found.append(
                _warning(
                    POLICY,
                    f"indications[{index}]",
                    f"indication {indication.name} is used by no section: its orders go to the "
                    f"off-label sections",
                )
            )
            continue
        for pathway in Pathway:
            if pathway not in pathways:
                section = policy.off_label_section(pathway)
                found.append(
                    _warning(
                        POLICY,
                        f"indications[{index}]",
                        f"indication {indication.name} has no {pathway.value} section: "
                        f"{pathway.value} orders for it go to {section.id} (off-label)",
                    )
                )
    for section_index, section in enumerate(policy.sections):
        applying = [
            (f"sections[{section_index}].criteria[{i}]", c) for i, c in enumerate(section.criteria)
        ] + [
            (f"common_criteria[{i}]", c)
            for i, c in enumerate(policy.common_criteria)
            if c.applies_to(section.id)
        ]
        indications = section.indications
        for place, criterion in applying:
            found.extend(
                _criterion_reach(
                    place, criterion, section.id, section.off_label, section.pathway, indications
                )
            )
    for place, criterion in _all_criteria_places(policy):
        if not criterion.by_indication:
            continue
        reached = {
            name
            for section in policy.sections
            if any(c is criterion for c in section.criteria)
            or (criterion in policy.common_criteria and criterion.applies_to(section.id))
            for name in section.indications
        }
        for name in criterion.by_indication:
            if name not in reached:
                found.append(
                    _warning(
                        POLICY,
                        f"{place}.by_indication.{name}",
                        f"{criterion.id}: no section of this criterion is reached by {name}",
                    )
                )
    return _unique_findings(found)


def _criterion_valuesets(criterion: CriterionDef) -> frozenset[str]:
    """Every value set the criterion's checks name (nested checks included)."""
    return frozenset(
        name
        for variant in criterion.variants()
        for _, name in _param_valuesets(variant.check, variant.params, "")
    )


def _proposal_findings(
    place: str, proposal: Proposal, criteria: Mapping[str, CriterionDef]
) -> list[Finding]:
    found: list[Finding] = []
    for criterion_id in proposal.criteria:
        criterion = criteria.get(criterion_id)
        if criterion is None:
            continue  # parse_policy reported it
        statuses = criterion.possible_statuses()
        if WHEN_NO_RECORD in proposal.when and Status.UNKNOWN not in statuses:
            found.append(
                _error(
                    POLICY,
                    f"{place}.criteria",
                    f"{criterion_id} ({criterion.check}) is never unknown: a {proposal.kind} "
                    f"for a missing record would never show",
                )
            )
        if WHEN_NOT_MET in proposal.when and Status.NOT_MET not in statuses:
            found.append(
                _warning(
                    POLICY,
                    f"{place}.when",
                    f"{criterion_id} ({criterion.check}) is never not-met with these parameters",
                )
            )
    known = [criteria[c] for c in proposal.criteria if c in criteria]
    wanted = frozenset().union(*(_criterion_valuesets(c) for c in known))
    names = ", ".join(c.id for c in known)
    for o_index, order in enumerate(proposal.orders):
        o_place = f"{place}.orders[{o_index}]"
        hits = {
            hit.valueset
            for code in order.code
            for hit in valuesets.match_code(code.system, code.code)
        }
        if proposal.kind == "alternate" and known and not hits & wanted:
            found.append(
                _error(
                    POLICY,
                    f"{o_place}.code",
                    f"{order.id}: no code is in a value set of {names} "
                    f"({', '.join(sorted(wanted)) or 'none'}): a trial of it would not "
                    "count for the criterion",
                )
            )
        elif proposal.kind == "companion" and wanted and not hits & wanted:
            found.append(
                _warning(
                    POLICY,
                    f"{o_place}.code",
                    f"{order.id}: no code is in a value set of {names} "
                    f"({', '.join(sorted(wanted))}): its result would be read by name only",
                )
            )
    return found


def proposal_findings(policy: Policy) -> list[Finding]:
    """Companions and alternates that could never show or would propose the wrong order."""
    criteria = {c.id: c for c in policy.all_criteria()}
    found: list[Finding] = []
    for index, proposal in enumerate(policy.proposals.companions):
        found.extend(_proposal_findings(f"companions[{index}]", proposal, criteria))
    for index, proposal in enumerate(policy.proposals.alternates):
        found.extend(_proposal_findings(f"alternates[{index}]", proposal, criteria))
    return _unique_findings(found)


def _all_criteria_places(policy: Policy) -> Iterator[tuple[str, CriterionDef]]:
    for s, section in enumerate(policy.sections):
        for c, criterion in enumerate(section.criteria):
            yield f"sections[{s}].criteria[{c}]", criterion
    for c, criterion in enumerate(policy.common_criteria):
        yield f"common_criteria[{c}]", criterion


def _criterion_reach(
    place: str,
    criterion: CriterionDef,
    section_id: str,
    off_label: bool,
    pathway: Pathway,
    indications: Sequence[str],
) -> list[Finding]:
    found: list[Finding] = []
    if criterion.by_indication and not criterion.check:
        for name in indications:
            if name != "other" and name not in criterion.by_indication:
                found.append(
                    _error(
                        POLICY,
                        f"{place}.by_indication",
                        f"{criterion.id} has no check for indication {name} "
                        f"of section {section_id}",
                    )
                )
    checks = {v.check for v in criterion.variants()}
    if any(_PATHWAY_CHECKS.get(check) is pathway for check in checks):
        return found
    if off_label and checks == {"refer-to-policy"}:
        return found  # the off-label section's referral: it is what the section says
    statuses = frozenset(
        s
        for variant in criterion.variants()
        if variant.check in CHECKS
        for s in CHECKS[variant.check].statuses_for(variant.params)
    )
    if not _changes_outcome(statuses, off_label):
        shown = ", ".join(sorted(map(str, statuses))) or "nothing"
        found.append(
            _warning(
                POLICY,
                place,
                f"{criterion.id} in section {section_id} can only be {shown}: it never changes "
                f"the outcome",
            )
        )
    return found


def _unique_findings(found: list[Finding]) -> list[Finding]:
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------- cards and cases


def _optional(module: str, name: str) -> Callable[..., Any] | None:
    """A function of another part of the service, when this version has it."""
    try:
        loaded = importlib.import_module(module)
    except ImportError:
        return None
    function = getattr(loaded, name, None)
    return function if callable(function) else None


def cards_findings(folder: Path) -> list[Finding]:
    """cards.yaml read by the service's own loader (`load_card_texts(pack folder)`, which
    checks it against the policy): the problem it raises is an error at its place."""
    loader = _optional(*CARD_LOADER)
    if loader is None:
        return [_warning(CARDS, "(file)", "not checked: this version has no card text loader")]
    try:
        loader(folder)
    except Exception as exc:  # the loader's own errors name file and place
        text = str(exc).removeprefix(f"{folder / CARDS}: ")
        place, _, message = text.partition(": ")
        return [_error(CARDS, place, message) if message else _error(CARDS, "(file)", text)]
    return []


def cases_findings(folder: Path, policy: Policy) -> list[Finding]:
    """Each case under cases/ run through the engine; a case that fails is an error."""
    runner = _optional(*CASE_RUNNER)
    cases = sorted((folder / CASES_DIR).glob("*.yaml"))
    if not cases:
        return []
    if runner is None:
        return [_warning(CASES_DIR, "(folder)", "cases not run: this version has no case runner")]
    found: list[Finding] = []
    for path in cases:
        try:
            problems: Sequence[str] = runner(path, policy)
        except Exception as exc:  # a broken case is reported, not raised
            problems = [f"cannot run: {exc}"]
        found.extend(_error(f"{CASES_DIR}/{path.name}", "expect", problem) for problem in problems)
    return found


# --------------------------------------------------------------------------- the pack


def _read(folder: Path, name: str, parse: Callable[[str], Any]) -> tuple[Any, list[Finding]]:
    path = folder / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [_error(name, "(file)", "missing")]
    except OSError as exc:
        return None, [_error(name, "(file)", f"cannot read: {exc.strerror}")]
    try:
        return parse(text), []
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        return None, [_error(name, "(file)", f"not valid {name.rsplit('.', 1)[1].upper()}: {exc}")]


def lint_pack(folder: Path) -> list[Finding]:
    """Every finding of the pack in `folder`, errors first, in file order."""
    found: list[Finding] = []
    manifest, problems = _read(folder, MANIFEST, json.loads)
    found.extend(problems)
    if manifest is not None:
        found.extend(schema_findings(MANIFEST, manifest, _schema(PACK_SCHEMA, _MANIFEST_FALLBACK)))
    drug, problems = _read(folder, DRUG, json.loads)
    found.extend(problems)
    if drug is not None:
        drug_errors = schema_findings(DRUG, drug, _schema(DRUG_SCHEMA, _DRUG_FALLBACK))
        found.extend(drug_errors)
        if isinstance(drug, Mapping):
            found.extend(drug_findings(drug))
    data, problems = _read(folder, POLICY, yaml.safe_load)
    found.extend(problems)
    policy: Policy | None = None
    if isinstance(data, Mapping):
        uses = valueset_findings(data, valuesets.valueset_names())
        found.extend(uses)
        policy, problems = policy_findings(data)
        if not (uses and problems and "unknown value set" in problems[0].message):
            found.extend(problems)
        found.extend(
            agreement_findings(
                folder.name,
                manifest if isinstance(manifest, Mapping) else {},
                drug if isinstance(drug, Mapping) else {},
                data,
            )
        )
        source = manifest.get("source") if isinstance(manifest, Mapping) else None
        source_name = source if isinstance(source, str) else "source.txt"
        text, problems = _read(folder, source_name, str)
        found.extend(problems)
        if text is not None:
            found.extend(clause_findings(source_clauses(text), data, source_name))
    elif data is not None:
        found.append(_error(POLICY, "(top level)", "expected a mapping"))
    if policy is not None:
        found.extend(reachability_findings(policy))
        found.extend(proposal_findings(policy))
    if (folder / CARDS).is_file():
        found.extend(cards_findings(folder))
    if policy is not None and (folder / CASES_DIR).is_dir():
        found.extend(cases_findings(folder, policy))
    return sorted(_unique_findings(found), key=lambda f: (f.severity != "error",))


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)
