"""The numbered clauses of a policy's source text (I.A.1, I.A.4.b, II.A.2.a.i, III.B ...).

A clinical policy is written as an outline: Roman sections (I. Initial Approval Criteria,
II. Continued Therapy, III. Diagnoses/Indications for which coverage is NOT authorized),
lettered subsections (A. Rheumatoid Arthritis), numbered criteria (1., 2.), lettered
alternatives (a., b.) and small Roman items (i., ii.). The linter reads that outline from
`source.txt` so that every clause can be matched to the criterion that implements it.

Clauses are read from sections I to III, where the criteria are. Under IV (appendices)
only the appendix letters are read ("Appendix C: Contraindications" is clause IV.C), so
that a criterion may be named after an appendix; they never need a criterion of their own.
Page headers, bullets ("- a.") and wrapped lines are tolerated; a wrapped line that
happens to start with "1. " could be misread, which the author sees in `policy lint`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_ROMAN_SECTION: Final = re.compile(r"^\s*(?:[-*•]\s*)?(I|II|III|IV|V|VI|VII|VIII|IX|X)\.\s+\S")
_LETTER: Final = re.compile(r"^\s*(?:[-*•]\s*)?([A-Z])\.\s+\S")
_NUMBER: Final = re.compile(r"^\s*(?:[-*•]\s*)?([0-9]{1,2})\.\s+\S")
_SMALL: Final = re.compile(r"^\s*(?:[-*•]\s*)?([a-z]|[ivx]{1,4})\.\s+\S")
_APPENDIX: Final = re.compile(r"^\s*Appendix\s+([A-Z])\s*[:.\-]")
_CRITERIA_SECTIONS: Final = ("I", "II", "III")
_SMALL_ROMANS: Final = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x")


@dataclass(frozen=True)
class Clause:
    id: str
    line: int
    """1-based line of source.txt where the clause starts."""
    text: str
    """The clause's first line, without its number."""
    appendix: bool = False
    """An appendix heading (IV.C): may name a criterion, never needs one."""


def _is_small_roman(token: str, previous_letter: str | None) -> bool:
    """ "i." after "h." is a letter; "i." anywhere else under a lettered item is a Roman one."""
    if token not in _SMALL_ROMANS:
        return False
    if len(token) == 1 and previous_letter is not None:
        return ord(token) != ord(previous_letter) + 1
    return True


def source_clauses(text: str) -> tuple[Clause, ...]:
    """Every numbered clause of sections I-III, and the appendix letters of section IV."""
    found: list[Clause] = []
    roman: str | None = None
    letter: str | None = None
    number: str | None = None
    small: str | None = None
    last_small_letter: str | None = None
    for index, line in enumerate(text.splitlines(), start=1):
        match = _ROMAN_SECTION.match(line)
        if match:
            roman, letter, number, small, last_small_letter = match.group(1), None, None, None, None
            continue
        if roman == "IV":
            appendix = _APPENDIX.match(line)
            if appendix:
                found.append(Clause(f"IV.{appendix.group(1)}", index, line.strip(), appendix=True))
            continue
        if roman not in _CRITERIA_SECTIONS:
            continue
        body = line.strip()
        match = _LETTER.match(line)
        if match:
            letter, number, small, last_small_letter = match.group(1), None, None, None
            found.append(Clause(f"{roman}.{letter}", index, _rest(body)))
            continue
        if letter is None:
            continue
        match = _NUMBER.match(line)
        if match:
            number, small, last_small_letter = match.group(1), None, None
            found.append(Clause(f"{roman}.{letter}.{number}", index, _rest(body)))
            continue
        if number is None:
            continue
        match = _SMALL.match(line)
        if match:
            token = match.group(1)
            if small is not None and _is_small_roman(token, last_small_letter):
                found.append(
                    Clause(f"{roman}.{letter}.{number}.{small}.{token}", index, _rest(body))
                )
            elif len(token) == 1:
                small = last_small_letter = token
                found.append(Clause(f"{roman}.{letter}.{number}.{small}", index, _rest(body)))
    return _unique(found)


def _rest(body: str) -> str:
    """The clause's words without its bullet and number."""
    return re.sub(r"^(?:[-*•]\s*)?[A-Za-z0-9]{1,4}\.\s+", "", body)


def _unique(clauses: list[Clause]) -> tuple[Clause, ...]:
    """The first occurrence of each id (a repeated page header does not repeat a clause)."""
    seen: dict[str, Clause] = {}
    for clause in clauses:
        seen.setdefault(clause.id, clause)
    return tuple(seen.values())


def covering(clause_id: str, ids: frozenset[str]) -> str | None:
    """The id among `ids` that covers a clause: the clause itself or one of its parents
    (I.A.4 covers I.A.4.b and I.A.4.b.ii)."""
    parts = clause_id.split(".")
    for end in range(len(parts), 1, -1):
        candidate = ".".join(parts[:end])
        if candidate in ids:
            return candidate
    return None
