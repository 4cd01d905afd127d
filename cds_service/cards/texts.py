"""The words of a pack's cards: `cards.yaml`, loaded and checked once.

Card code knows no drug and no policy clause. Every text that names them lives in the
pack's `cards.yaml` (format: `cds_service/packs/cards.schema.json`) as a template with
named placeholders (`{product}`, `{criteria}` ...). At load:

- the file must fit the schema (the error names the file and the place in it);
- every template may use only `{product}` and the names its schema entry lists under
  `x-placeholders`; a positional `{}`, an attribute or index (`{a.b}`, `{a[0]}`), a
  conversion or format spec, or an unmatched brace is an error naming the file and key;
- a card kind the pack's policy can trigger must have its texts (`TRIGGERS`); a kind it
  never triggers may be left out;
- `not_met.step_therapy_criteria` must name criteria of the policy;
- every criterion of the policy has a plain label (`criteria.<id>.label`), and no card text
  names a policy clause ("I.A.3"): a prescriber reads the label, the clause id stays in the
  machine-readable evaluation.

`texts_for(policy_id)` is the one seam the renderer uses to find a pack's texts.

The templates are ours; the values filled into them are not trusted (they may quote the
chart): `CardTexts.text` quotes every value as `quoting(kind, key)` says, before it
enters the template (see `cds_service.cards.safe_text`).
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import yaml

from cds_service.cards import safe_text
from cds_service.policy import definition
from cds_service.policy.definition import PolicyFileError
from cds_service.policy.proposals import (
    NO_PROPOSALS,
    PROPOSALS_SCHEMA,
    Proposals,
    parse_proposals,
)

CARDS_FILE = "cards.yaml"
POLICY_FILE = "policy.yaml"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "packs" / "cards.schema.json"
GLOBAL_PLACEHOLDERS = frozenset({"product"})
"""Names every template may use; the renderer fills them from the pack itself."""

TRIGGERS: Mapping[str, str] = MappingProxyType(
    {
        "combination": "a criterion uses the check no-concurrent-therapy",
        "duplicate": "a no-concurrent-therapy criterion sets duplicate_drafts",
        "hypersensitivity": "a criterion uses the check hypersensitivity",
        "care_setting": "a criterion uses the check care-setting",
        "dose": "a criterion uses the check dose-limit or dose-increase-limit",
        "switch": "a no-concurrent-therapy criterion sets switch_from",
        "not_covered": "a criterion uses the check not-covered",
        "active_condition": "a criterion uses the check no-active-condition",
        "off_label": "a section is off-label",
        "companion": "the policy declares companions (orders to add)",
        "alternate": "the policy declares alternates (products to try first)",
    }
)
"""Card kinds a pack needs only when its policy can trigger them, and when that is."""

PLAIN_TEXTS = frozenset(
    {
        ("combination", "remove_draft"),
        ("combination", "other_drugs"),
        ("care_setting", "regimen"),
        ("care_setting", "regimen_unknown"),
    }
)
"""Texts besides summaries, labels and coverage texts that are not Markdown: words the
renderer puts into other texts (which quote them again as they need)."""


def quoting(kind: str, key: str) -> Callable[[object], str]:
    """How a value filled into the text `kind.key` is quoted.

    Summaries (a key with "summary" in it), suggestion labels (`actions`, a key with
    "label" in it, `PLAIN_TEXTS`) and coverage-information texts are plain text in CDS
    Hooks and FHIR: the value is cleaned (`safe_text.plain`), never Markdown-escaped, as a
    backslash would show. Every other text is part of a card detail (Markdown): the value
    is escaped (`safe_text.markdown`). That is also the default for a new text, so a
    template added later cannot forget it; list a new plain text here."""
    if kind == "coverage":
        return lambda value: safe_text.plain(value, safe_text.MARKDOWN_LIMIT)
    if "summary" in key or "label" in key or kind == "actions" or (kind, key) in PLAIN_TEXTS:
        return safe_text.plain
    return safe_text.markdown


CLAUSE_ID = re.compile(r"\b(?:I|II|III|IV|V|VI)\.[A-Z](?:\.\d+)*\b")
"""A policy clause id ("I.A.3", "III.B"): never in a text a prescriber reads."""
CLAUSE_FREE_KINDS: frozenset[str] = frozenset()
"""Kinds whose texts may name clauses: none. The coverage information is read by people
too (where the EHR shows it); each criterion's id stays in its detail's code."""


@dataclass(frozen=True)
class CriterionWords:
    """The plain words of one criterion (cards.yaml `criteria.<id>`)."""

    label: str
    """What to add when the chart does not show it ("methotrexate trial dates")."""
    not_met: str | None = None
    """Why it is not met, in a few words; may name values the check found."""
    confirm: str | None = None
    """What to confirm when the request lacks the context to decide."""


class CardTextsError(PolicyFileError):
    """A cards.yaml that cannot be used; the message names the file and the place in it."""


@dataclass(frozen=True)
class CardTexts:
    """One pack's card texts.

    `text(kind, key, **values)` fills one template; it must be given exactly the
    placeholders the schema lists for that key (`{product}` is filled here). Each value is
    quoted as `quoting(kind, key)` says: values may come from the chart."""

    source: str
    """The cards.yaml file, for messages."""
    product: str
    """The drug's name on cards, the value of `{product}`."""
    templates: Mapping[str, Mapping[str, str]]
    """kind -> key -> template."""
    placeholders: Mapping[str, Mapping[str, frozenset[str]]]
    """kind -> key -> the placeholder names the template may use (besides `product`)."""
    step_therapy_criteria: frozenset[str] = frozenset()
    """Criteria whose failure asks for another therapy first."""
    off_label_policy: str | None = None
    """The off-label use policy the off-label card names, when the decision lists it."""
    off_label_references: tuple[str, ...] = ()
    """The policies named when an off-label decision lists none."""
    proposals: Proposals = NO_PROPOSALS
    """The policy's companions and alternates (orders its cards propose), read with the
    texts so that the renderer finds both in one place."""
    criteria: Mapping[str, CriterionWords] = dataclass_field(default_factory=dict)
    """Criterion id -> its plain words (cards.yaml `criteria`)."""

    def label(self, criterion_id: str, fallback: str) -> str:
        """What to add for a criterion the chart does not show: the pack's label, else
        `fallback` (a criterion the engine adds, e.g. its own documentation text)."""
        words = self.criteria.get(criterion_id)
        return self._fill(words.label, {}) if words else fallback

    def confirm(self, criterion_id: str) -> str | None:
        words = self.criteria.get(criterion_id)
        return self._fill(words.confirm, {}) if words and words.confirm else None

    def not_met(self, criterion_id: str, details: Mapping[str, Any], fallback: str) -> str:
        """Why a criterion is not met in the pack's words, filled from the check's
        `details`; `fallback` (the check's reason) when the pack has none or the check
        did not give a value the words name."""
        words = self.criteria.get(criterion_id)
        if words is None or words.not_met is None:
            return fallback
        filled = self._fill(words.not_met, details)
        return filled if filled is not None else fallback

    def _fill(self, template: str, values: Mapping[str, Any]) -> Any:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f} - {"product"}
        if any(isinstance(values.get(n), bool) or values.get(n) is None for n in names):
            return None
        return template.format(
            product=self.product,
            **{n: safe_text.plain(_number_words(values[n])) for n in names},
        )

    def has(self, kind: str) -> bool:
        return kind in self.templates

    def has_text(self, kind: str, key: str) -> bool:
        """The pack gives the optional text `kind.key`."""
        return key in self.templates.get(kind, {})

    def text(self, kind: str, key: str, **values: object) -> str:
        try:
            template = self.templates[kind][key]
        except KeyError:
            raise CardTextsError(f"{self.source}: {kind}.{key}: no such text") from None
        expected = self.placeholders[kind][key]
        if set(values) != expected:
            raise TypeError(
                f"text {kind}.{key} takes {sorted(expected)}, was given {sorted(values)}"
            )
        quote = quoting(kind, key)
        return template.format(
            product=self.product, **{name: quote(value) for name, value in values.items()}
        )


def _number_words(value: object) -> str:
    """12.0 -> "12"; other values as they are."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _parse_criteria(data: Any, source: str) -> dict[str, CriterionWords]:
    out: dict[str, CriterionWords] = {}
    for criterion_id, entry in (data.get("criteria") or {}).items():
        for key in ("label", "not_met", "confirm"):
            if key in entry:
                where = f"criteria.{criterion_id}.{key}"
                names = _template_names(entry[key], source, where)
                if key != "not_met" and names - GLOBAL_PLACEHOLDERS:
                    raise CardTextsError(
                        f"{source}: {where}: only {{product}} may be used here, not "
                        + ", ".join(f"{{{n}}}" for n in sorted(names - GLOBAL_PLACEHOLDERS))
                    )
                _no_clause_id(entry[key], source, where)
        out[str(criterion_id)] = CriterionWords(
            label=entry["label"], not_met=entry.get("not_met"), confirm=entry.get("confirm")
        )
    return out


def _no_clause_id(text: str, source: str, where: str) -> None:
    found = CLAUSE_ID.search(text)
    if found:
        raise CardTextsError(
            f"{source}: {where}: names the policy clause {found.group(0)}; a prescriber reads "
            "this text, so say what the clause asks in plain words (criteria.<id>.label)"
        )


@functools.cache
def _schema() -> Mapping[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def _where(path: Iterator[Any] | list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _template_names(template: str, source: str, where: str) -> set[str]:
    """The placeholder names of one template; anything but a plain `{name}` is an error."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise CardTextsError(f"{source}: {where}: not a valid template: {exc}") from exc
    names = set()
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise CardTextsError(
                f"{source}: {where}: placeholder {{{field}}} is not a plain name; write "
                "{name}, or {{ and }} for a literal brace"
            )
        if spec or conversion:
            raise CardTextsError(
                f"{source}: {where}: placeholder {{{field}}} takes no conversion or format"
            )
        names.add(field)
    return names


def _policy_triggers(policy: Any) -> tuple[dict[str, str], set[str]]:
    """The card kinds a policy document can trigger (kind -> why) and its criterion ids.

    Read from the raw policy.yaml: every `check` outside a check's own `params` (nested
    checks of a combining check never get a card of their own)."""
    triggered: dict[str, str] = {}
    ids: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        check = node.get("check")
        if isinstance(check, str):
            if isinstance(node.get("id"), str):
                ids.add(node["id"])
            params = node.get("params")
            kind = {
                "no-concurrent-therapy": "combination",
                "hypersensitivity": "hypersensitivity",
                "care-setting": "care_setting",
                "dose-limit": "dose",
                "dose-increase-limit": "dose",
                "not-covered": "not_covered",
                "no-active-condition": "active_condition",
            }.get(check)
            if kind is not None:
                triggered[kind] = TRIGGERS[kind]
            if (
                check == "no-concurrent-therapy"
                and isinstance(params, dict)
                and params.get("duplicate_drafts") is True
            ):
                triggered["duplicate"] = TRIGGERS["duplicate"]
            if (
                check == "no-concurrent-therapy"
                and isinstance(params, dict)
                and params.get("switch_from")
            ):
                triggered["switch"] = TRIGGERS["switch"]
        if node.get("off_label") is True:
            triggered["off_label"] = TRIGGERS["off_label"]
        for key, kind in (("companions", "companion"), ("alternates", "alternate")):
            if node.get(key):
                triggered[kind] = TRIGGERS[kind]
        for key, value in node.items():
            if key != "params":
                walk(value)

    walk(policy)
    return triggered, ids


def parse_card_texts(data: Any, source: str = "<cards>", policy: Any | None = None) -> CardTexts:
    """Validate a loaded cards.yaml document (against `policy`, the raw policy.yaml
    document of the same pack, when given) and build its `CardTexts`."""
    schema = _schema()
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(data),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if errors:
        first = errors[0]
        raise CardTextsError(f"{source}: {_where(list(first.absolute_path))}: {first.message}")
    templates: dict[str, Mapping[str, str]] = {}
    placeholders: dict[str, Mapping[str, frozenset[str]]] = {}
    for kind, kind_schema in schema["properties"].items():
        if kind not in data or "properties" not in kind_schema:
            continue
        texts: dict[str, str] = {}
        names: dict[str, frozenset[str]] = {}
        for key, key_schema in kind_schema["properties"].items():
            if "x-placeholders" not in key_schema:
                continue
            allowed = frozenset(key_schema["x-placeholders"])
            template = data[kind][key]
            unknown = _template_names(template, source, f"{kind}.{key}") - (
                allowed | GLOBAL_PLACEHOLDERS
            )
            if unknown:
                known = ", ".join(f"{{{n}}}" for n in sorted(allowed | GLOBAL_PLACEHOLDERS))
                raise CardTextsError(
                    f"{source}: {kind}.{key}: unknown placeholder "
                    f"{', '.join(f'{{{n}}}' for n in sorted(unknown))} (this text may use "
                    f"{known})"
                )
            if kind not in CLAUSE_FREE_KINDS:
                _no_clause_id(template, source, f"{kind}.{key}")
            texts[key] = template
            names[key] = allowed
        templates[kind] = MappingProxyType(texts)
        placeholders[kind] = MappingProxyType(names)
    step = data.get("not_met", {}).get("step_therapy_criteria", [])
    criteria = _parse_criteria(data, source)
    if policy is not None:
        triggered, ids = _policy_triggers(policy)
        for kind, why in triggered.items():
            if kind not in data:
                raise CardTextsError(
                    f"{source}: {kind}: missing; the policy needs these texts ({why})"
                )
        unlabelled = sorted(ids - set(criteria))
        if unlabelled:
            raise CardTextsError(
                f"{source}: criteria: no plain label for {', '.join(unlabelled)}; add "
                "criteria.<id>.label (what a prescriber adds when the chart does not show it)"
            )
        strangers = [c for c in step if c not in ids]
        if strangers:
            raise CardTextsError(
                f"{source}: not_met.step_therapy_criteria: not criteria of the policy: "
                f"{', '.join(strangers)}"
            )
    off_label = data.get("off_label", {})
    return CardTexts(
        proposals=_proposals(policy),
        source=source,
        product=data["product"],
        templates=MappingProxyType(templates),
        placeholders=MappingProxyType(placeholders),
        step_therapy_criteria=frozenset(step),
        off_label_policy=off_label.get("policy"),
        off_label_references=tuple(off_label.get("references", ())),
        criteria=MappingProxyType(criteria),
    )


def _proposals(policy: Any) -> Proposals:
    """The companions and alternates of a raw policy document; none when it has none or
    when they do not fit the schema (reading the policy reports that)."""
    if not isinstance(policy, dict):
        return NO_PROPOSALS
    schema = {"type": "object", "properties": dict(PROPOSALS_SCHEMA)}
    if not jsonschema.Draft202012Validator(schema).is_valid(policy):
        return NO_PROPOSALS
    return parse_proposals(policy)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CardTextsError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CardTextsError(f"{path}: not valid YAML: {exc}") from exc


def load_card_texts(pack_dir: Path) -> CardTexts:
    """The card texts of the pack in `pack_dir`, checked against its policy.yaml (when
    the folder has one) for the card kinds the policy can trigger."""
    policy_path = pack_dir / POLICY_FILE
    policy = _read_yaml(policy_path) if policy_path.is_file() else None
    cards_path = pack_dir / CARDS_FILE
    return parse_card_texts(_read_yaml(cards_path), str(cards_path), policy)


@functools.cache
def texts_for(policy_id: str) -> CardTexts:
    """The card texts of the pack that holds policy `policy_id` (read once)."""
    return load_card_texts(definition.PACKS_DIR / policy_id)
