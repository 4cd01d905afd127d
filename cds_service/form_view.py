"""The documentation form as a person reads it: a pack's Questionnaire, and a prefilled
QuestionnaireResponse beside it, rendered as one HTML page (pure: no I/O).

For the plan's pharmacist (is the form asking what the policy asks?) and the integrator (what
does `$questionnaire-package` fill in for this chart, and from which record?):

- every group and question of the Questionnaire in order, with its answer type, its answer
  options (or the value set it draws them from), whether it is required, and the branch it
  belongs to (its `enableWhen`: "asked when <question> is <answer>");
- with a response: each answered question shows its answers and where each came from (the
  `information-origin` source, the chart records an answer names in `valueReference`
  extensions); the **open items** the caller names (what the prescriber still has to answer)
  are highlighted and listed at the top; a branch the response does not enable is folded to
  its heading ("not asked for this order").

Every text comes from the resources and is HTML-escaped here; the page carries no script.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Json = Mapping[str, Any]

INFORMATION_ORIGIN = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin"
ORIGIN_WORDS = {
    "auto": "filled in from the chart",
    "override": "filled in from the chart, then changed by a person",
    "manual": "answered by a person",
}


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def coding_words(coding: Json) -> str:
    """A Coding as a person reads it: its display, else its code."""
    return str(coding.get("display") or coding.get("code") or "")


def value_words(value_holder: Json) -> str:
    """The value of an answer / answerOption / enableWhen answer (`value[x]`, `answer[x]`)."""
    for key, value in value_holder.items():
        if not (key.startswith("value") or key.startswith("answer")) or key == "answer":
            continue
        if isinstance(value, Mapping):
            if "code" in value or "display" in value:
                return coding_words(value)
            if "reference" in value or "display" in value:
                return str(value.get("display") or value.get("reference"))
            if "value" in value:
                return (
                    f"{value.get('value')} {value.get('unit') or value.get('code') or ''}".strip()
                )
            return ", ".join(f"{k}: {v}" for k, v in value.items())
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)
    return ""


def _items(node: Json) -> list[Json]:
    items = node.get("item")
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def _walk(items: Sequence[Json]) -> Iterator[Json]:
    for item in items:
        yield item
        yield from _walk(_items(item))


@dataclass(frozen=True)
class Answer:
    """One answer of the response: its words and where it came from."""

    words: str
    origin: str | None
    """The information-origin source code (auto / override / manual), when given."""
    sources: tuple[str, ...]
    """References of the chart records it was read from."""


def _answer(raw: Json) -> Answer:
    origin = None
    sources: list[str] = []
    for ext in raw.get("extension") or []:
        if not isinstance(ext, Mapping):
            continue
        if ext.get("url") == INFORMATION_ORIGIN:
            for part in ext.get("extension") or []:
                if isinstance(part, Mapping) and part.get("url") == "source":
                    origin = str(part.get("valueCode"))
        ref = ext.get("valueReference")
        if isinstance(ref, Mapping) and ref.get("reference"):
            sources.append(str(ref["reference"]))
    return Answer(value_words(raw), origin, tuple(sources))


def response_answers(response: Json | None) -> dict[str, list[Answer]]:
    """linkId -> the answers the response gives it (items nested in groups and answers)."""
    found: dict[str, list[Answer]] = {}

    def visit(items: Sequence[Json]) -> None:
        for item in items:
            answers = [a for a in item.get("answer") or [] if isinstance(a, Mapping)]
            if answers:
                found.setdefault(str(item.get("linkId")), []).extend(_answer(a) for a in answers)
            visit(_items(item))
            for answer in answers:
                visit(_items(answer))

    if response is not None:
        visit(_items(response))
    return found


def _raw_values(response: Json | None) -> dict[str, list[Json]]:
    found: dict[str, list[Json]] = {}
    for item in _walk(_items(response or {})):
        for answer in item.get("answer") or []:
            if isinstance(answer, Mapping):
                found.setdefault(str(item.get("linkId")), []).append(answer)
    return found


def _same(given: Json, condition: Json) -> bool:
    for key, want in condition.items():
        if not key.startswith("answer"):
            continue
        value_key = "value" + key.removeprefix("answer")
        got = given.get(value_key)
        if isinstance(want, Mapping) and isinstance(got, Mapping):
            return bool(
                got.get("code") == want.get("code") and got.get("system") == want.get("system")
            )
        return bool(got == want)
    return False


def enabled(item: Json, raw: Mapping[str, list[Json]]) -> bool:
    """Whether the item is asked, given the response's answers (`enableWhen` with `=`,
    `!=` and `exists`; an item without conditions always is)."""
    conditions = [c for c in item.get("enableWhen") or [] if isinstance(c, Mapping)]
    if not conditions:
        return True
    results = []
    for cond in conditions:
        answers = raw.get(str(cond.get("question")), [])
        operator = cond.get("operator")
        if operator == "exists":
            results.append(bool(answers) == bool(cond.get("answerBoolean", True)))
        elif operator == "=":
            results.append(any(_same(a, cond) for a in answers))
        elif operator == "!=":
            results.append(bool(answers) and not any(_same(a, cond) for a in answers))
        else:
            results.append(False)
    return any(results) if item.get("enableBehavior") == "any" else all(results)


def _texts_by_link(questionnaire: Json) -> dict[str, str]:
    return {
        str(i.get("linkId")): str(i.get("text") or i.get("linkId"))
        for i in _walk(_items(questionnaire))
    }


def _option_words(questionnaire: Json) -> dict[tuple[str, str], str]:
    """(linkId, code) -> the display of that answer option, for the branch words."""
    found: dict[tuple[str, str], str] = {}
    for item in _walk(_items(questionnaire)):
        for option in item.get("answerOption") or []:
            coding = option.get("valueCoding") if isinstance(option, Mapping) else None
            if isinstance(coding, Mapping) and coding.get("display"):
                found[(str(item.get("linkId")), str(coding.get("code")))] = str(coding["display"])
    return found


def branch_words(
    item: Json, texts: Mapping[str, str], options: Mapping[tuple[str, str], str]
) -> str:
    """ "Asked when <question> is <answer>" for an item with `enableWhen` (the answer in the
    words of the question's options); "" without."""
    parts = []
    for cond in item.get("enableWhen") or []:
        if not isinstance(cond, Mapping):
            continue
        question = texts.get(str(cond.get("question")), str(cond.get("question")))
        operator = cond.get("operator")
        if operator == "exists":
            verb = "is answered" if cond.get("answerBoolean", True) else "is not answered"
            parts.append(f"{question} {verb}")
        else:
            verb = {"=": "is", "!=": "is not"}.get(str(operator), str(operator))
            answer = cond.get("answerCoding")
            code = answer.get("code") if isinstance(answer, Mapping) else None
            words = options.get((str(cond.get("question")), str(code))) or value_words(cond)
            parts.append(f"{question} {verb} {words}")
    if not parts:
        return ""
    joiner = " or " if item.get("enableBehavior") == "any" else " and "
    return "Asked when " + joiner.join(parts)


def _options(item: Json) -> str:
    options = [o for o in item.get("answerOption") or [] if isinstance(o, Mapping)]
    if options:
        return "".join(f"<li>{_esc(value_words(o))}</li>" for o in options)
    if item.get("answerValueSet"):
        return f"<li>from the list {_esc(item['answerValueSet'])}</li>"
    return ""


def _answer_html(answer: Answer) -> str:
    origin = ORIGIN_WORDS.get(answer.origin or "", answer.origin or "")
    source = ""
    if answer.sources:
        source = " — from " + ", ".join(f"<code>{_esc(s)}</code>" for s in answer.sources)
    said = f' <span class="source">({_esc(origin)}{source})</span>' if origin or source else ""
    return f'<li class="answer"><span class="value">{_esc(answer.words)}</span>{said}</li>'


def _item_html(
    item: Json,
    texts: Mapping[str, str],
    options: Mapping[tuple[str, str], str],
    answers: Mapping[str, list[Answer]] | None,
    open_links: set[str],
    raw: Mapping[str, list[Json]],
    depth: int,
) -> str:
    link = str(item.get("linkId"))
    kind = str(item.get("type") or "")
    branch = branch_words(item, texts, options)
    asked = enabled(item, raw) if answers is not None else True
    classes = ["item", kind]
    if link in open_links:
        classes.append("open")
    if not asked:
        classes.append("not-asked")
    heading = f"h{min(depth + 2, 6)}" if kind == "group" else "span"
    parts = [
        f'<div class="{" ".join(classes)}" data-link-id="{_esc(link)}">',
        f'<{heading} class="text">{_esc(item.get("text") or link)}</{heading}>',
    ]
    facts = []
    if kind not in ("group", "display"):
        facts.append(f"answer: {kind}")
    if item.get("required"):
        facts.append("required")
    if item.get("repeats"):
        facts.append("may repeat")
    if facts:
        parts.append(f'<span class="facts">{_esc(", ".join(facts))}</span>')
    if branch:
        parts.append(f'<p class="branch">{_esc(branch)}</p>')
    option_list = _options(item)
    if option_list:
        parts.append(f'<ul class="options">{option_list}</ul>')
    if answers is not None and kind not in ("group", "display"):
        given = answers.get(link, [])
        if given:
            parts.append('<ul class="answers">' + "".join(_answer_html(a) for a in given) + "</ul>")
        elif link in open_links:
            parts.append('<p class="open-note">Open: the chart does not answer this.</p>')
    elif link in open_links:
        parts.append('<p class="open-note">Open: the chart does not answer this.</p>')
    if answers is not None and not asked:
        parts.append('<p class="not-asked-note">Not asked for this order.</p></div>')
        return "\n".join(parts)
    for child in _items(item):
        parts.append(_item_html(child, texts, options, answers, open_links, raw, depth + 1))
    parts.append("</div>")
    return "\n".join(parts)


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 60rem; }
h1 { font-size: 1.5rem; } .meta { color: #555; }
.item { border-left: 3px solid #d0d7de; margin: .5rem 0 .5rem .5rem; padding: .25rem .75rem; }
.item.group { border-left-color: #0969da; }
.item.open { background: #fff4d6; border-left-color: #bf8700; }
.item.not-asked { opacity: .6; }
.facts { color: #555; font-size: .85rem; margin-left: .5rem; }
.branch { color: #6639ba; font-size: .9rem; margin: .2rem 0; }
.options { font-size: .9rem; color: #333; margin: .2rem 0; }
.answers { list-style: none; padding-left: 0; margin: .3rem 0; }
.answer .value { font-weight: 600; } .source { color: #1a7f37; font-size: .9rem; }
.open-note { color: #9a6700; font-weight: 600; margin: .2rem 0; }
#open-items { background: #fff4d6; border: 1px solid #bf8700; padding: .5rem 1rem; }
code { font-size: .85rem; }
"""


def render_page(
    questionnaire: Json,
    response: Json | None = None,
    *,
    title: str,
    open_links: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """The whole HTML page: the form, and with a response its answers and its open items
    (`open_links`: the linkIds of the items the prescriber still has to answer, as
    `cds_service.dtr.prepopulate.open_items` finds them), highlighted and listed first."""
    texts = _texts_by_link(questionnaire)
    answers = response_answers(response) if response is not None else None
    raw = _raw_values(response)
    by_link = {str(i.get("linkId")): i for i in _walk(_items(questionnaire))}
    opened = [by_link[link] for link in open_links if link in by_link]
    body = [
        f"<h1>{_esc(title)}</h1>",
        f'<p class="meta">Questionnaire <code>{_esc(questionnaire.get("url", ""))}</code> '
        f"version {_esc(questionnaire.get('version', ''))}</p>",
    ]
    body += [f'<p class="meta">{_esc(note)}</p>' for note in notes]
    if response is not None:
        if opened:
            listed = "".join(f"<li>{_esc(i.get('text') or i.get('linkId'))}</li>" for i in opened)
            body.append(
                f'<section id="open-items"><h2>Open items ({len(opened)})</h2>'
                f"<p>The chart does not answer these; the prescriber answers them.</p>"
                f"<ul>{listed}</ul></section>"
            )
        else:
            body.append(
                '<section id="open-items"><h2>Open items (0)</h2>'
                "<p>The chart answers every question asked for this order.</p></section>"
            )
    body.append('<section id="form">')
    marked = set(open_links)
    options = _option_words(questionnaire)
    body += [_item_html(i, texts, options, answers, marked, raw, 0) for i in _items(questionnaire)]
    body.append("</section>")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )
