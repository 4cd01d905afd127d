"""FHIR R4 ValueSet resources from the shared terminology files (`fhir_mappings/valuesets/`),
for the answer lists of a pack's questionnaire. Each is expanded in place (the codes of the
file, in file order, each code once), so a form needs no terminology server."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from cds_service.dtr.urls import fhir_base
from fhir_mappings.valuesets import VALUESET_DIR

ANSWER_SYSTEMS = frozenset(
    {
        "http://www.nlm.nih.gov/research/umls/rxnorm",
        "http://snomed.info/sct",
        "http://loinc.org",
        "http://hl7.org/fhir/sid/icd-10-cm",
        "http://nucc.org/provider-taxonomy",
    }
)
"""Systems offered as answers: ingredient / clinical codes a prescriber picks from. Product
codes (NDC, HCPCS) stay out of the lists: they identify packages, not what was taken."""


INGREDIENT_TTYS = (None, "IN", "PIN", "MIN")


@lru_cache(maxsize=256)
def _file(name: str) -> Mapping[str, Any]:
    data: Mapping[str, Any] = json.loads((VALUESET_DIR / f"{name}.json").read_text("utf-8"))
    return data


def title(name: str) -> str:
    """The value set's title (its name when it has none)."""
    return str(_file(name).get("title") or name)


def concepts(names: Iterable[str], *, ingredients_only: bool = True) -> list[dict[str, str]]:
    """The answer codings of the value sets `names`, each (system, code) once. For medication
    sets only ingredient-level RxNorm codes (TTY IN / PIN / MIN or no TTY) are kept: the
    prescriber names the drug, not a package."""
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, str]] = []
    for name in names:
        data = _file(name)
        medication = data.get("kind") == "medication"
        for concept in data.get("concepts", []):
            system, code = str(concept.get("system", "")), str(concept.get("code", ""))
            if system not in ANSWER_SYSTEMS or (system, code) in seen:
                continue
            if medication and ingredients_only and concept.get("tty") not in INGREDIENT_TTYS:
                continue
            seen.add((system, code))
            coding = {"system": system, "code": code}
            if concept.get("display"):
                coding["display"] = str(concept["display"])
            out.append(coding)
    return out


def codes_or_name(names: Sequence[str]) -> list[dict[str, str]]:
    """Codings naming what the value sets hold: their codes, else their first name (as a
    display only: a set matched by names in text, e.g. a response assessment)."""
    codings = concepts(names)
    if codings:
        return codings
    for name in names:
        for entry in _file(name).get("names", []):
            return [{"display": str(entry["text"])}]
    return [{"display": " or ".join(title(n) for n in names)}]


def valueset_id(names: Sequence[str]) -> str:
    """The id of the ValueSet that joins `names` (one name: the name itself)."""
    return "+".join(names) if len(names) == 1 else "-or-".join(names)[:64]


def valueset_url(public_base_url: str, names: Sequence[str]) -> str:
    return f"{fhir_base(public_base_url)}/ValueSet/{valueset_id(names)}"


def _computable_name(names: Sequence[str]) -> str:
    words = "-".join(names).replace("+", "-").split("-")
    return "".join(w.capitalize() for w in words if w.isalnum())[:100] or "AnswerList"


def valueset_resource(
    public_base_url: str, names: Sequence[str], version: str, date: str
) -> dict[str, Any]:
    """One ValueSet: the codes of `names`, composed and expanded."""
    codings = concepts(names)
    includes: dict[str, list[dict[str, str]]] = {}
    for coding in codings:
        entry = {"code": coding["code"]}
        if "display" in coding:
            entry["display"] = coding["display"]
        includes.setdefault(coding["system"], []).append(entry)
    return {
        "resourceType": "ValueSet",
        "id": valueset_id(names),
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/shareablevalueset"]},
        "url": valueset_url(public_base_url, names),
        "version": version,
        "name": _computable_name(names),
        "title": " or ".join(title(n) for n in names),
        "status": "active",
        "date": date,
        "experimental": False,
        "publisher": "the plan's pharmacy policy (shared terminology of the service)",
        "description": "Answers offered for: " + ", ".join(title(n) for n in names) + ".",
        "compose": {
            "include": [{"system": system, "concept": items} for system, items in includes.items()]
        },
        "expansion": {
            "timestamp": date,
            "total": len(codings),
            "contains": codings,
        },
    }
