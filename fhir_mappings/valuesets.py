"""Value sets: the JSON data files in `fhir_mappings/valuesets/`, loaded and checked once.

Each file is one value set named by its file name. It holds coded concepts (system, code,
display, where the code was verified, confidence) and, where the policy allows a fallback,
names matched in `coding.display` / `text` as whole words, case-insensitive. Medication
value sets also say which drug (normalised ingredient name) each entry stands for.

Matching rules kept here, in one place:
- code systems are compared after mapping the common OIDs to their FHIR URIs;
- ICD-10-CM codes are compared without the dot and upper-case, by prefix where the entry
  says `"match": "prefix"`;
- NDCs are compared in the 11-digit form without hyphens (5-4-2), from 4-4-2, 5-3-2, 5-4-1
  hyphenated forms or 11 bare digits, with or without hyphens (a 10-digit NDC without
  hyphens is ambiguous and never matches);
- HCPCS Level II codes (claims lines) are compared upper-case, under the CMS system URI or
  the Blue Button / CARIN one;
- names match as whole words; a drug's `exclude_names` (e.g. "ophthalmic" for cyclosporine)
  veto a match when they appear in the same CodeableConcept.

Product files (`valuesets/products/<drug>.json`, one per ingredient drug) hold the
product-level codes of a drug: RxNorm clinical and branded drugs, their components, forms
and packs (SCD, SBD, SCDC, SBDC, SCDF, SBDF, GPCK, BPCK ...), NDCs and HCPCS codes, each with
its source. A product code matches every medication value set that lists its drug, so a
Medication coded only as "105586" (methotrexate 10 MG Oral Tablet) or NDC 00054-4550-25 is
recognised without any display text; the value set files themselves keep the ingredient and
brand codes.

The files are validated at import (shape, known kinds, no duplicate entries); a broken file
stops the import with a `ValueSetError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal

from fhir_mappings import budget
from fhir_mappings.facts import MatchedBy
from fhir_mappings.words import Phrase, found_in, phrase, texts_of

VALUESET_DIR: Final = Path(__file__).resolve().parent / "valuesets"

RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC: Final = "http://hl7.org/fhir/sid/ndc"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED: Final = "http://snomed.info/sct"
LOINC: Final = "http://loinc.org"
HCPCS: Final = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
PRODUCT_DIR: Final = "products"

_OIDS: Final[Mapping[str, str]] = {
    "urn:oid:2.16.840.1.113883.6.88": RXNORM,
    "urn:oid:2.16.840.1.113883.6.69": NDC,
    "urn:oid:2.16.840.1.113883.6.90": ICD10CM,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "http://www.nlm.nih.gov/research/umls/rxnorm/": RXNORM,
    "urn:oid:2.16.840.1.113883.6.285": HCPCS,
    "https://bluebutton.cms.gov/resources/codesystem/hcpcs": HCPCS,
    "http://terminology.hl7.org/CodeSystem/HCPCS": HCPCS,
    "http://terminology.hl7.org/CodeSystem/hcpcs-Level-II": HCPCS,
}

Kind = Literal["medication", "diagnosis", "substance", "specialty", "observation"]
_KINDS: Final = frozenset({"medication", "diagnosis", "substance", "specialty", "observation"})
_INGREDIENT_TTYS: Final = frozenset({"IN", "PIN", "MIN", "substance"})


class ValueSetError(ValueError):
    """A value set data file is malformed."""


@dataclass(frozen=True)
class Concept:
    valueset: str
    system: str
    code: str
    display: str
    drug: str | None
    matched_by: MatchedBy
    prefix: bool


@dataclass(frozen=True)
class NamePattern:
    valueset: str
    text: str
    drug: str | None
    phrase: Phrase


@dataclass(frozen=True)
class ValueSet:
    name: str
    title: str
    kind: Kind
    names_require: str | None
    drugs: Mapping[str, str]
    names_suggest: bool = False
    """A name match alone names the diagnosis without coding it (see `names_suggest`)."""
    class_names: tuple[str, ...] = ()
    """Words that name the set's drug class but no drug ("biologic", "TNF inhibitor"):
    a medication named only so may be one of the set's drugs (see `names_a_drug_class`)."""


@dataclass(frozen=True)
class Hit:
    """One value set entry that matched: which set, which drug (medications), how."""

    valueset: str
    drug: str | None
    matched_by: MatchedBy
    system: str
    code: str
    display: str


def normalise_system(system: str | None) -> str:
    if not system:
        return ""
    s = system.strip()
    return _OIDS.get(s, s.rstrip("/"))


_NDC_FORMS: Final = {(4, 4, 2): (1, 0, 0), (5, 3, 2): (0, 1, 0), (5, 4, 1): (0, 0, 1)}


def normalise_ndc(code: str) -> str | None:
    """11-digit NDC without hyphens, or None when the form is ambiguous or not an NDC."""
    c = code.strip()
    parts = c.split("-")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        lengths = tuple(len(p) for p in parts)
        if lengths == (5, 4, 2):
            return "".join(parts)
        pad = _NDC_FORMS.get((lengths[0], lengths[1], lengths[2]))
        if pad is None:
            return None
        return "".join("0" * z + p for z, p in zip(pad, parts, strict=True))
    if len(c) == 11 and c.isdigit():
        return c
    return None


def normalise_code(system: str, code: str) -> str | None:
    c = code.strip()
    if system == ICD10CM:
        return c.replace(".", "").upper()
    if system == NDC:
        return normalise_ndc(c)
    if system == HCPCS:
        return c.upper()
    if system == "http://www.genenames.org/geneId":
        return c.upper() if c.upper().startswith("HGNC:") else f"HGNC:{c}"
    return c


def _need_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueSetError(f"{where}: '{key}' must be a non-empty string")
    return value


def _entry_key(entry: Mapping[str, Any], system: str, at: str, seen: set[tuple[str, str]]) -> str:
    """The comparable code of one value-set or product entry, after checking the fields
    every entry carries (code, display, source, confidence) and that it is not listed twice."""
    code = _need_str(entry, "code", at)
    _need_str(entry, "display", at)
    _need_str(entry, "source", at)
    if entry.get("confidence") not in {"high", "medium", "low"}:
        raise ValueSetError(f"{at}: confidence must be high, medium or low")
    key_code = normalise_code(system, code)
    if key_code is None:
        raise ValueSetError(f"{at}: code not in a comparable form")
    if (system, key_code) in seen:
        raise ValueSetError(f"{at}: duplicate entry")
    seen.add((system, key_code))
    return key_code


@dataclass(frozen=True)
class _Loaded:
    sets: Mapping[str, ValueSet]
    exact: Mapping[tuple[str, str], tuple[Concept, ...]]
    prefixes: tuple[tuple[str, str, Concept], ...]
    names: tuple[NamePattern, ...]
    exclusions: Mapping[str, tuple[Phrase, ...]]
    drug_sets: Mapping[str, frozenset[str]]
    drug_titles: Mapping[str, str]


def _load_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueSetError(f"{path.name}: not readable JSON ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise ValueSetError(f"{path.name}: top level must be an object")
    return data


def load(directory: Path = VALUESET_DIR) -> _Loaded:
    """Read and validate every `<name>.json` in `directory`."""
    sets: dict[str, ValueSet] = {}
    exact: dict[tuple[str, str], list[Concept]] = {}
    prefixes: list[tuple[str, str, Concept]] = []
    names: list[NamePattern] = []
    exclusions: dict[str, list[Phrase]] = {}
    drug_sets: dict[str, set[str]] = {}
    drug_titles: dict[str, str] = {}
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ValueSetError(f"no value set files in {directory.name}")
    for path in files:
        data = _load_file(path)
        name = path.stem
        where = path.name
        if data.get("name") != name:
            raise ValueSetError(f"{where}: 'name' must equal the file name")
        title = _need_str(data, "title", where)
        kind = data.get("kind")
        if kind not in _KINDS:
            raise ValueSetError(f"{where}: unknown kind")
        drugs_raw = data.get("drugs", {})
        if not isinstance(drugs_raw, dict) or (kind == "medication") != bool(drugs_raw):
            raise ValueSetError(f"{where}: 'drugs' is required for, and only for, medications")
        drugs: dict[str, str] = {}
        for drug, display in drugs_raw.items():
            if not isinstance(display, str) or not display:
                raise ValueSetError(f"{where}: drug display must be a string")
            if drug_titles.setdefault(drug, display) != display:
                raise ValueSetError(f"{where}: drug {drug!r} displayed differently elsewhere")
            drugs[drug] = display
            drug_sets.setdefault(drug, set()).add(name)
        require = data.get("names_require")
        if require is not None and not isinstance(require, str):
            raise ValueSetError(f"{where}: 'names_require' must be a string")
        suggest = data.get("names_suggest", False)
        if not isinstance(suggest, bool):
            raise ValueSetError(f"{where}: 'names_suggest' must be true or false")
        class_raw = data.get("class_names", [])
        if not isinstance(class_raw, list) or (class_raw and kind != "medication"):
            raise ValueSetError(f"{where}: 'class_names' must be a list, for medications only")
        class_names = tuple(
            _need_str(entry, "text", f"{where} class_names[{i}]")
            for i, entry in enumerate(class_raw)
            if isinstance(entry, dict) and _need_str(entry, "source", f"{where} class_names[{i}]")
        )
        if len(class_names) != len(class_raw):
            raise ValueSetError(f"{where}: every class_names entry must be an object")
        sets[name] = ValueSet(name, title, kind, require, drugs, suggest, class_names)
        seen: set[tuple[str, str]] = set()
        concepts = data.get("concepts")
        if not isinstance(concepts, list):
            raise ValueSetError(f"{where}: 'concepts' must be a list")
        for i, entry in enumerate(concepts):
            at = f"{where} concepts[{i}]"
            if not isinstance(entry, dict):
                raise ValueSetError(f"{at}: must be an object")
            system = normalise_system(_need_str(entry, "system", at))
            key_code = _entry_key(entry, system, at, seen)
            drug = entry.get("drug")
            if kind == "medication" and drug not in drugs:
                raise ValueSetError(f"{at}: 'drug' must be one of the file's drugs")
            tty = entry.get("tty")
            matched_by: MatchedBy = "none"
            if kind == "medication":
                if system == NDC:
                    matched_by = "ndc"
                elif tty in _INGREDIENT_TTYS:
                    matched_by = "ingredient-code"
                else:
                    matched_by = "product-code"
            match = entry.get("match", "exact")
            if match not in {"exact", "prefix"}:
                raise ValueSetError(f"{at}: match must be exact or prefix")
            concept = Concept(
                name,
                system,
                key_code,
                entry["display"],
                drug if isinstance(drug, str) else None,
                matched_by,
                match == "prefix",
            )
            if concept.prefix:
                prefixes.append((system, key_code, concept))
            else:
                exact.setdefault((system, key_code), []).append(concept)
        seen_names: set[str] = set()
        names_raw = data.get("names")
        if not isinstance(names_raw, list):
            raise ValueSetError(f"{where}: 'names' must be a list")
        for i, entry in enumerate(names_raw):
            at = f"{where} names[{i}]"
            if not isinstance(entry, dict):
                raise ValueSetError(f"{at}: must be an object")
            text = _need_str(entry, "text", at)
            _need_str(entry, "source", at)
            if text.lower() in seen_names:
                raise ValueSetError(f"{at}: duplicate name")
            seen_names.add(text.lower())
            drug = entry.get("drug")
            if kind == "medication" and drug not in drugs:
                raise ValueSetError(f"{at}: 'drug' must be one of the file's drugs")
            names.append(
                NamePattern(name, text, drug if isinstance(drug, str) else None, phrase(text))
            )
        excl = data.get("exclude_names", {})
        if not isinstance(excl, dict):
            raise ValueSetError(f"{where}: 'exclude_names' must be an object")
        for drug, words in excl.items():
            owner = drug in drugs or (kind != "medication" and drug == name)
            if not owner or not isinstance(words, list):
                raise ValueSetError(
                    f"{where}: exclude_names must map a drug (or, outside medications, the "
                    "value set's own name) to a list"
                )
            pats = exclusions.setdefault(drug, [])
            known = {p.pattern.pattern for p in pats}
            for word in words:
                pat = phrase(str(word))
                if pat.pattern.pattern not in known:
                    pats.append(pat)
                    known.add(pat.pattern.pattern)
    _load_products(directory / PRODUCT_DIR, exact, drug_sets)
    for vs in sets.values():
        if vs.names_require is not None and vs.names_require not in sets:
            raise ValueSetError(f"{vs.name}.json: names_require names an unknown value set")
    return _Loaded(
        sets=sets,
        exact={k: tuple(v) for k, v in exact.items()},
        prefixes=tuple(prefixes),
        names=tuple(names),
        exclusions={k: tuple(v) for k, v in exclusions.items()},
        drug_sets={k: frozenset(v) for k, v in drug_sets.items()},
        drug_titles=drug_titles,
    )


_PRODUCT_SYSTEMS: Final[Mapping[str, str]] = {"rxnorm": RXNORM, "ndc": NDC, "hcpcs": HCPCS}


def _load_products(
    directory: Path,
    exact: dict[tuple[str, str], list[Concept]],
    drug_sets: Mapping[str, set[str]],
) -> None:
    """Add every product file's codes to the value sets that list its drug (in place).

    A code a value set already holds (e.g. product RxCUIs a drug's own value set file
    lists) is not added twice to that set."""
    if not directory.is_dir():
        return
    seen_drugs: set[str] = set()
    for path in sorted(directory.glob("*.json")):
        data = _load_file(path)
        where = f"{PRODUCT_DIR}/{path.name}"
        drug = _need_str(data, "drug", where)
        if drug not in drug_sets:
            raise ValueSetError(f"{where}: 'drug' is in no medication value set")
        if drug in seen_drugs:
            raise ValueSetError(f"{where}: a second product file for {drug!r}")
        seen_drugs.add(drug)
        if not isinstance(data.get("sources"), dict) or not isinstance(data.get("gaps"), str):
            raise ValueSetError(f"{where}: 'sources' (object) and 'gaps' (text) are required")
        sets = sorted(drug_sets[drug])
        seen: set[tuple[str, str]] = set()
        for key, system in _PRODUCT_SYSTEMS.items():
            entries = data.get(key)
            if not isinstance(entries, list):
                raise ValueSetError(f"{where}: '{key}' must be a list")
            for i, entry in enumerate(entries):
                at = f"{where} {key}[{i}]"
                if not isinstance(entry, dict):
                    raise ValueSetError(f"{at}: must be an object")
                key_code = _entry_key(entry, system, at, seen)
                display = entry["display"]
                held = exact.setdefault((system, key_code), [])
                present = {c.valueset for c in held if c.drug == drug}
                matched_by: MatchedBy = "ndc" if system == NDC else "product-code"
                if system == HCPCS:
                    matched_by = "hcpcs"
                held.extend(
                    Concept(name, system, key_code, display, drug, matched_by, False)
                    for name in sets
                    if name not in present
                )


_DATA: Final = load()


def _prefixes_by_system(data: _Loaded) -> dict[str, tuple[tuple[str, Concept], ...]]:
    out: dict[str, list[tuple[str, Concept]]] = {}
    for system, prefix, concept in data.prefixes:
        out.setdefault(system, []).append((prefix, concept))
    return {k: tuple(v) for k, v in out.items()}


_PREFIXES_BY_SYSTEM: Final = _prefixes_by_system(_DATA)


_CLASS_PHRASES: Final = tuple(phrase(text) for vs in _DATA.sets.values() for text in vs.class_names)


def names_a_drug_class(texts: Iterable[str]) -> bool:
    """Whether any of `texts` names, as whole words, a drug class some medication value set
    lists (`class_names`): a medication named only by its class may be one of its drugs."""
    return any(
        _short_text_names_a_drug_class(t) if len(t) <= 4096 else _text_names_a_drug_class(t)
        for t in texts
        if t
    )


def _text_names_a_drug_class(text: str) -> bool:
    split = texts_of((text,))
    return any(found_in(p, split) for p in _CLASS_PHRASES)


_short_text_names_a_drug_class = lru_cache(maxsize=4096)(_text_names_a_drug_class)
"""Memoised for short texts: a chart names the same few drugs in every fill."""


def valueset_names() -> frozenset[str]:
    """Every value set name (file name without `.json`)."""
    return frozenset(_DATA.sets)


def valueset_title(name: str) -> str:
    """Human title of a value set, e.g. "TNF blockers". KeyError for an unknown name."""
    return _DATA.sets[name].title


def valueset_kind(name: str) -> Kind:
    return _DATA.sets[name].kind


def names_require(name: str) -> str | None:
    """The value set a name match of `name` needs a code in (e.g. NOMID text needs CAPS)."""
    return _DATA.sets[name].names_require


def names_suggest(name: str) -> bool:
    """True when a name match of the value set only suggests the concept: the diagnosis is
    named in words but not coded (rheumatoid arthritis, which has codes in every system),
    as against sets matched by name by design (DIRA has no code of its own)."""
    return _DATA.sets[name].names_suggest


def drug_display(drug: str) -> str:
    """Plain display of a normalised drug name, e.g. "adalimumab (Humira and its biosimilars)".
    Unknown drugs are returned as given."""
    return _DATA.drug_titles.get(drug, drug)


def drug_valuesets(drug: str) -> frozenset[str]:
    """Every medication value set that lists `drug`."""
    return _DATA.drug_sets.get(drug, frozenset())


def _ndc_products(data: _Loaded) -> dict[str, tuple[Concept, ...]]:
    """NDC entries by product (labeler + product code: the first 9 of the 11 digits)."""
    out: dict[str, list[Concept]] = {}
    for (system, key), concepts in data.exact.items():
        if system == NDC:
            held = out.setdefault(key[:9], [])
            held.extend(c for c in concepts if c not in held)
    return {k: tuple(v) for k, v in out.items()}


_NDC_PRODUCTS: Final = _ndc_products(_DATA)
"""The labeler and product segments of an NDC name one drug product (strength, form,
formulation); the last segment is only the package. A package NDC that is not listed
(a new carton size) is therefore still its product's drug."""


def match_code(system: str | None, code: str | None) -> tuple[Hit, ...]:
    """Value set entries matched by one coding."""
    if not code or not isinstance(code, str):
        return ()
    if system is None or isinstance(system, str):
        return _match_code(system, code)
    return _find_code(system, code)


def _find_code(system: str | None, code: str) -> tuple[Hit, ...]:
    sys = normalise_system(system)
    key = normalise_code(sys, code)
    if key is None:
        return ()
    held = _DATA.exact.get((sys, key), ())
    if not held and sys == NDC:
        held = _NDC_PRODUCTS.get(key[:9], ())
    hits = [Hit(c.valueset, c.drug, c.matched_by, c.system, code, c.display) for c in held]
    hits.extend(
        Hit(c.valueset, c.drug, c.matched_by, c.system, code, c.display)
        for prefix, c in _PREFIXES_BY_SYSTEM.get(sys, ())
        if key.startswith(prefix)
    )
    return tuple(hits)


_match_code = lru_cache(maxsize=16384)(_find_code)
"""Memoised per (system, code): a chart repeats the same codes thousands of times, and the
hits depend on nothing but the arguments and the value sets loaded at import (bounded, so a
worker's memory stays flat whatever codes it is sent)."""


def forget_matches() -> None:
    """Empty the memos of code and name look-ups (the benchmark's first-sight figures)."""
    _match_code.cache_clear()
    _match_names.cache_clear()
    _short_text_names_a_drug_class.cache_clear()


def match_names(texts: Iterable[str], kinds: frozenset[str] | None = None) -> tuple[Hit, ...]:
    """Value set names found as whole words in any of `texts` (optionally of some kinds)."""
    text_list = tuple(t for t in texts if t)
    if not text_list:
        return ()
    budget.check()
    if sum(len(t) for t in text_list) > _MEMO_CHARS:
        return _find_names(text_list, kinds)  # long chart text: not worth keeping
    return _match_names(text_list, kinds)


_MEMO_CHARS: Final = 4096


def _find_names(text_list: tuple[str, ...], kinds: frozenset[str] | None) -> tuple[Hit, ...]:
    found: list[Hit] = []
    split = texts_of(text_list)
    for name in _DATA.names:
        if kinds is not None and _DATA.sets[name.valueset].kind not in kinds:
            continue
        if found_in(name.phrase, split):
            found.append(Hit(name.valueset, name.drug, "name", "", "", name.text))
    return tuple(found)


_match_names = lru_cache(maxsize=4096)(_find_names)
"""Memoised: a chart repeats the same few code texts thousands of times, and the result
depends on nothing but the arguments and the value sets loaded at import."""


def excluded(drug: str, texts: Iterable[str]) -> bool:
    """True when a drug's exclusion words (e.g. "ophthalmic") appear in the texts; for a
    value set other than medications, `drug` is the set's name ("juvenile" vetoes a
    rheumatoid arthritis name match)."""
    pats = _DATA.exclusions.get(drug, ())
    split = texts_of(texts) if pats else ()
    return any(found_in(p, split) for p in pats)
