"""Small, defensive readers of FHIR JSON (already validated by `r4`): codings, dates,
numbers, references. Pure functions; nothing here raises on odd input."""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

Json = Mapping[str, Any]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def maps(value: Any) -> Iterator[Json]:
    """The mappings in a value that may be one object or a list of them."""
    # `type(...) is dict` first: parsed JSON is plain dicts, and the Mapping check of an
    # abstract base class costs several times more (these readers run for every resource).
    for item in as_list(value):
        if type(item) is dict or isinstance(item, Mapping):
            yield item


def get_map(obj: Json | None, key: str) -> Json | None:
    if obj is None:
        return None
    value = obj.get(key)
    return value if type(value) is dict or isinstance(value, Mapping) else None


def get_str(obj: Json | None, key: str) -> str | None:
    if obj is None:
        return None
    value = obj.get(key)
    return value if isinstance(value, str) and value.strip() else None


def to_number(value: Any) -> float | None:
    """int / float / Decimal / numeric string as float; None for anything else (bool too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def get_num(obj: Json | None, key: str) -> float | None:
    if obj is None:
        return None
    return to_number(obj.get(key))


def parse_date(value: Any, *, end: bool = False) -> date | None:
    """Date part of a FHIR date / dateTime / instant. A partial date ("2026", "2026-03")
    gives its first day, or its last day when `end` is True."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    text = value.strip()[:10]
    parts = text.split("-")
    try:
        year = int(parts[0])
        if len(parts) == 1:
            return date(year, 12, 31) if end else date(year, 1, 1)
        month = int(parts[1])
        if len(parts) == 2:
            last = calendar.monthrange(year, month)[1]
            return date(year, month, last if end else 1)
        return date(year, month, int(parts[2]))
    except (ValueError, IndexError):
        return None


def codings(concept: Json | None) -> list[tuple[str | None, str | None, str | None]]:
    """(system, code, display) of every coding of a CodeableConcept."""
    out: list[tuple[str | None, str | None, str | None]] = []
    for coding in maps(concept.get("coding") if concept else None):
        out.append((get_str(coding, "system"), get_str(coding, "code"), get_str(coding, "display")))
    return out


def texts(concept: Json | None) -> list[str]:
    """The text and every coding display of a CodeableConcept."""
    if concept is None:
        return []
    out = [d for _, _, d in codings(concept) if d]
    text = get_str(concept, "text")
    if text:
        out.append(text)
    return out


def first_code(concept: Json | None) -> str | None:
    for _, code, _ in codings(concept):
        if code:
            return code
    return None


LOCAL_REF_KEY = "__local_ref__"
"""Key under which `r4.parse_resources` stores the internal reference of a resource that
came without an `id` (see `facts.Ref`). It is never sent to validation and never read
from the input: a resource with an id is always named by its id."""


def ref_of(resource: Json) -> str:
    """`Type/id`; for a resource without an id, the internal reference `r4` gave it
    ("Condition (no id, #1a2b3c4d)"), or `Type/?` when it did not pass through `r4`."""
    rid = resource.get("id")
    if isinstance(rid, str) and rid:
        return f"{resource.get('resourceType', '?')}/{rid}"
    local = resource.get(LOCAL_REF_KEY)
    if isinstance(local, str) and local:
        return local
    return f"{resource.get('resourceType', '?')}/?"


def _instant(value: Any) -> datetime | None:
    """A FHIR instant / dateTime as an aware datetime (a date alone counts as midnight UTC),
    or None when it cannot be read."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def compare_versions(a: Json, b: Json) -> int:
    """Which of two copies of the same resource (same type and id) is newer: > 0 when `a`
    is, < 0 when `b` is, 0 when nothing tells them apart.

    1. meta.versionId, compared as numbers when both are whole numbers and differ;
    2. else meta.lastUpdated, when both can be read and differ;
    3. else meta.versionId compared as text, when both are present and differ
       (servers that use opaque version ids);
    4. else 0 (the caller keeps the copy it saw first)."""
    meta_a = get_map(a, "meta") or {}
    meta_b = get_map(b, "meta") or {}
    va, vb = meta_a.get("versionId"), meta_b.get("versionId")
    va = va.strip() if isinstance(va, str) else None
    vb = vb.strip() if isinstance(vb, str) else None
    if va and vb and va.isdigit() and vb.isdigit() and int(va) != int(vb):
        return 1 if int(va) > int(vb) else -1
    ta, tb = _instant(meta_a.get("lastUpdated")), _instant(meta_b.get("lastUpdated"))
    if ta is not None and tb is not None and ta != tb:
        return 1 if ta > tb else -1
    if va and vb and va != vb:
        return 1 if va > vb else -1
    return 0


def reference(value: Any) -> str | None:
    """`Type/id` (or `#id`) of a Reference, without a server base or `_history`; a
    conditional reference as `Type?query`."""
    if not (type(value) is dict or isinstance(value, Mapping)):
        return None
    ref = get_str(value, "reference")
    if ref is None:
        return None
    return _reference_text(ref)


def forget_references() -> None:
    """Empty the memo of reference texts (the benchmark's first-sight figures)."""
    _reference_text.cache_clear()


@lru_cache(maxsize=16_384)
def _reference_text(text: str) -> str | None:
    """`reference` of one reference text (memoised: a chart names the same patient,
    practitioners and encounters in every resource)."""
    ref = text.strip()
    if ref.startswith("#"):
        return ref
    if "?" in ref:
        # A conditional (search) reference, "Practitioner?identifier=...": kept as
        # `Type?query` so that it resolves to nothing by id but is not read as "no reference".
        head, _, query = ref.partition("?")
        kind = head.rstrip("/").rsplit("/", 1)[-1]
        return f"{kind}?{query}" if kind and query else None
    parts = [p for p in ref.split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) < 2:
        return None
    return f"{parts[-2]}/{parts[-1]}"


def status_code(resource: Json, key: str) -> str | None:
    """Status from a code field (`status`) or a CodeableConcept field (`clinicalStatus`)."""
    value = resource.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        code = first_code(value)
        if code:
            return code.lower()
        text = get_str(value, "text")
        return text.lower() if text else None
    return None


def for_patient(resource: Json, patient_ref: str | None, key: str = "subject") -> bool:
    """False only when `resource[key]` names a patient other than `patient_ref`: a record
    of another patient never counts; one that names no patient is the call's own (the EHR
    sent it for this patient)."""
    return names_patient(reference(resource.get(key)), patient_ref)


def names_patient(target: str | None, patient_ref: str | None) -> bool:
    """`for_patient` of a record whose patient reference (already read) is `target`."""
    return target is None or patient_ref is None or target == patient_ref
