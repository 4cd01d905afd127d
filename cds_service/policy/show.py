"""`cds-service policy show PACK` and `cds-service policy checks`: a pack's decision tree
and the catalogue of check kinds, as plain text or Markdown.

Pure functions from a `Policy` (or the check registry) to text; the command line reads
the pack and prints.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, Literal

from cds_service.policy.checks import CHECKS, CheckDef
from cds_service.policy.definition import CriterionDef, CriterionVariant, Policy, SectionDef
from cds_service.policy.model import Pathway, Status

Format = Literal["text", "markdown"]

_MAX_ITEMS: Final = 6
"""A mapping or list of more items is shown by its size (dispense_intervals: 23 entries)."""
_WIDTH: Final = 100


def param_text(value: Any) -> str:
    """One parameter value in a line: lists joined, small mappings inline, big ones counted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Mapping):
        if len(value) > _MAX_ITEMS:
            return f"({len(value)} entries)"
        return "{" + ", ".join(f"{k}: {param_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        if len(value) > _MAX_ITEMS and not all(isinstance(v, str) for v in value):
            return f"({len(value)} items)"
        if all(isinstance(v, str | int | float) for v in value):
            return ", ".join(param_text(v) for v in value)
        return "[" + "; ".join(param_text(v) for v in value) + "]"
    return str(value)


def params_text(params: Mapping[str, Any]) -> str:
    return "; ".join(f"{key}={param_text(value)}" for key, value in params.items()) or "-"


def _rows(criterion: CriterionDef, section: SectionDef | None) -> Iterator[tuple[str, str, str]]:
    """(label, check, parameters) of a criterion: one row, or one per indication variant."""
    also = f" (also {', '.join(criterion.clauses)})" if criterion.clauses else ""
    if not criterion.by_indication:
        yield criterion.id + also, criterion.check, params_text(criterion.params)
        return
    names = section.indications if section else tuple(criterion.by_indication)
    for name in names:
        variant: CriterionVariant = criterion.variant(name)
        yield f"{criterion.id}{also} [{name}]", variant.check or "-", params_text(variant.params)


def _approval(section: SectionDef) -> str:
    if section.off_label:
        return "off-label review"
    if section.approval_months is None:
        return "approval: not applicable"
    return f"approval {section.approval_months} months"


def _applying_common(policy: Policy, section: SectionDef) -> list[CriterionDef]:
    return [c for c in policy.common_criteria if c.applies_to(section.id)]


def _pathway_title(pathway: Pathway) -> str:
    return {Pathway.INITIAL: "Initial approval", Pathway.CONTINUED: "Continued therapy"}[pathway]


# --------------------------------------------------------------------------- plain text


def _wrap(text: str, indent: int) -> list[str]:
    return textwrap.wrap(
        " ".join(text.split()),
        width=_WIDTH,
        initial_indent=" " * indent,
        subsequent_indent=" " * indent,
        break_on_hyphens=False,
    )


def _text_criterion(criterion: CriterionDef, section: SectionDef | None) -> list[str]:
    lines = []
    for label, check, params in _rows(criterion, section):
        lines.append(f"    {label}  {check}")
        lines.extend(_wrap(f"params: {params}", 8))
    lines.extend(_wrap(f"text: {criterion.text}", 8))
    lines.extend(_wrap(f"documentation: {criterion.documentation}", 8))
    return lines


def show_text(policy: Policy) -> str:
    out = [
        f"{policy.id} version {policy.version}: {policy.title}",
        f"Drug {policy.drug}; {policy.line_of_business}; effective {policy.effective}; "
        f"last review {policy.last_review}",
        "",
        "Indications (claimed by a diagnosis in these value sets)",
    ]
    for indication in policy.indications:
        sets = ", ".join(sorted(indication.valuesets))
        gene = (
            f"; or {', '.join(sorted(indication.with_gene.valuesets))} with a "
            f"{indication.with_gene.gene} result"
            if indication.with_gene
            else ""
        )
        out.append(f"  {indication.name:<22} {indication.title} ({sets}{gene})")
    for pathway in Pathway:
        out += ["", f"{_pathway_title(pathway)} pathway"]
        for section in (s for s in policy.sections if s.pathway is pathway):
            names = ", ".join(section.indications) or "none"
            out.append("")
            out.append(f"  {section.id} {section.title}")
            out.append(f"    indications: {names}; {_approval(section)}")
            if section.policy_references:
                out.append(f"    refers to: {', '.join(section.policy_references)}")
            for criterion in section.criteria:
                out.extend(_text_criterion(criterion, section))
            common = _applying_common(policy, section)
            if common:
                out.append(f"    + common criteria: {', '.join(c.id for c in common)}")
    out += ["", "Common criteria (evaluated with every section unless limited)"]
    for criterion in policy.common_criteria:
        where = ", ".join(criterion.sections) or "every section"
        out.append(f"  applies to: {where}")
        out.extend(_text_criterion(criterion, None))
    if policy.not_decidable:
        out += ["", "Clauses not decided from FHIR data"]
        for clause, reason in policy.not_decidable:
            out.append(f"  {clause}")
            out.extend(_wrap(reason, 4))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- markdown


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _md_rows(criterion: CriterionDef, section: SectionDef | None) -> list[str]:
    rows = []
    for label, check, params in _rows(criterion, section):
        rows.append(
            f"| {_cell(label)} | {_cell(criterion.text)} | `{check}` | {_cell(params)} | "
            f"{_cell(criterion.documentation)} |"
        )
    return rows


_MD_HEAD: Final = (
    "| Criterion | Policy text | Check | Parameters | Documentation |",
    "|---|---|---|---|---|",
)


def show_markdown(policy: Policy) -> str:
    out = [
        f"# {policy.id} {policy.title} (version {policy.version})",
        "",
        f"Drug `{policy.drug}`; {policy.line_of_business}; effective {policy.effective}; "
        f"last review {policy.last_review}.",
        "",
        "## Indications",
        "",
        "| Indication | Title | Value sets |",
        "|---|---|---|",
    ]
    for indication in policy.indications:
        sets = ", ".join(sorted(indication.valuesets))
        if indication.with_gene:
            sets += (
                f"; or {', '.join(sorted(indication.with_gene.valuesets))} with a "
                f"{indication.with_gene.gene} result"
            )
        out.append(f"| `{indication.name}` | {_cell(indication.title)} | {_cell(sets)} |")
    for pathway in Pathway:
        out += ["", f"## {_pathway_title(pathway)}"]
        for section in (s for s in policy.sections if s.pathway is pathway):
            out += [
                "",
                f"### {section.id} {section.title}",
                "",
                f"Indications: {', '.join(section.indications) or 'none'}; {_approval(section)}"
                + (
                    f"; refers to {', '.join(section.policy_references)}"
                    if section.policy_references
                    else ""
                )
                + ".",
                "",
                *_MD_HEAD,
            ]
            for criterion in section.criteria:
                out.extend(_md_rows(criterion, section))
            common = _applying_common(policy, section)
            if common:
                out += ["", f"Also evaluated: {', '.join(c.id for c in common)} (common)."]
    out += ["", "## Common criteria", "", *_MD_HEAD]
    for criterion in policy.common_criteria:
        out.extend(_md_rows(criterion, None))
    if policy.not_decidable:
        out += ["", "## Clauses not decided from FHIR data", ""]
        out.extend(f"- **{clause}**: {_cell(reason)}" for clause, reason in policy.not_decidable)
    return "\n".join(out) + "\n"


def show(policy: Policy, fmt: Format = "text") -> str:
    return show_markdown(policy) if fmt == "markdown" else show_text(policy)


# --------------------------------------------------------------------------- check kinds


def _doc(definition: CheckDef) -> str:
    """The check's own description: its docstring."""
    return inspect.cleandoc(definition.fn.__doc__ or "")


def _statuses(definition: CheckDef) -> str:
    return ", ".join(str(s) for s in Status if s in definition.statuses)


def _param_lines(definition: CheckDef) -> list[tuple[str, str]]:
    return [
        (name, f"{spec.kind}{'' if spec.required else ', optional'}")
        for name, spec in definition.params.items()
    ]


def checks_text(checks: Mapping[str, CheckDef] = CHECKS) -> str:
    out: list[str] = []
    for name in sorted(checks):
        definition = checks[name]
        out.append(f"{name}  (statuses: {_statuses(definition)})")
        for param, kind in _param_lines(definition) or [("(no parameters)", "")]:
            out.append(f"    {param}{': ' + kind if kind else ''}")
        doc = _doc(definition)
        if doc:
            out.extend(_wrap(doc.split("\n\n")[0], 4))
        out.append("")
    return "\n".join(out)


def checks_markdown(checks: Mapping[str, CheckDef] = CHECKS) -> str:
    out: list[str] = []
    for name in sorted(checks):
        definition = checks[name]
        out += [f"#### `{name}`", "", f"Statuses: {_statuses(definition)}.", ""]
        params = _param_lines(definition)
        if params:
            out += ["| Parameter | Kind |", "|---|---|"]
            out.extend(f"| `{param}` | {kind} |" for param, kind in params)
        else:
            out.append("No parameters.")
        doc = _doc(definition)
        if doc:
            out += ["", doc]
        out.append("")
    return "\n".join(out)


def check_catalogue(fmt: Format = "text", checks: Mapping[str, CheckDef] = CHECKS) -> str:
    return checks_markdown(checks) if fmt == "markdown" else checks_text(checks)


BEGIN_MARK: Final = "<!-- checks:begin"
END_MARK: Final = "<!-- checks:end -->"


def replace_catalogue(document: str, checks: Mapping[str, CheckDef] = CHECKS) -> str:
    """`document` with the Markdown catalogue between its begin / end marker lines made
    anew from the registry (docs/policy-packs.md keeps it there)."""
    start = document.find(BEGIN_MARK)
    end = document.find(END_MARK)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN_MARK} ... {END_MARK} markers")
    body_start = document.index("\n", start) + 1
    return document[:body_start] + checks_markdown(checks).rstrip() + "\n" + document[end:]


__all__: Sequence[str] = [
    "check_catalogue",
    "param_text",
    "params_text",
    "replace_catalogue",
    "show",
]
