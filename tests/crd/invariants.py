"""The coverage-information extension's rules (CRD STU 2.2.1), checked on an instance.

Each crd-ci-q* invariant is written out from its FHIRPath in the IG, plus the cardinalities
of the extension's elements and the value sets of its coded elements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COVERED = {"covered", "not-covered", "conditional", "indeterminate"}
PA_NEEDED = {"no-auth", "auth-needed", "satisfied", "performpa", "conditional", "indeterminate"}
DOC_NEEDED = {"clinical", "admin", "patient", "conditional", "indeterminate"}
DOC_PURPOSE = {"withpa", "withclaim", "withorder", "retain-doc", "OTH"}
INFO_NEEDED = {"performer", "location", "timeframe", "contract-window", "detail-code", "OTH"}
CATEGORIES = {"cat-limitation", "cat-decisional", "cat-other"}
ASSERTION_REASONS = {
    "gold-card",
    "no-member-found",
    "no-active-coverage",
    "coverage-not-found",
    "auth-out-network",
    "technical",
}
CARDINALITY = {
    "coverage": (1, 1),
    "covered": (1, 1),
    "pa-needed": (0, 1),
    "date": (1, 1),
    "coverage-assertion-id": (1, 1),
    "satisfied-pa-id": (0, 1),
    "expiry-date": (0, 1),
}
KNOWN = {
    *CARDINALITY,
    "doc-needed",
    "doc-purpose",
    "info-needed",
    "billingCode",
    "reason",
    "detail",
    "dependency",
    "questionnaire",
    "contact",
}


def _values(ext: Mapping[str, Any], url: str) -> list[Any]:
    out = []
    for part in ext["extension"]:
        if part["url"] == url:
            values = [v for k, v in part.items() if k.startswith("value")]
            out.append(values[0] if len(values) == 1 else part.get("extension"))
    return out


def violations(ext: Mapping[str, Any]) -> list[str]:
    """Every rule the extension breaks (empty: none)."""
    found: list[str] = []
    urls = [p["url"] for p in ext["extension"]]
    for url in urls:
        if url not in KNOWN:
            found.append(f"unknown element {url}")
    for url, (low, high) in CARDINALITY.items():
        if not low <= urls.count(url) <= high:
            found.append(f"{url} occurs {urls.count(url)} times")
    sets = {
        "covered": COVERED,
        "pa-needed": PA_NEEDED,
        "doc-needed": DOC_NEEDED,
        "doc-purpose": DOC_PURPOSE,
        "info-needed": INFO_NEEDED,
    }
    for url, allowed in sets.items():
        for value in _values(ext, url):
            if value not in allowed:
                found.append(f"{url} {value!r} not in its value set")
    key = {u: _values(ext, u) for u in set(urls)}
    flags = [*key.get("covered", []), *key.get("pa-needed", []), *key.get("doc-needed", [])]
    if key.get("questionnaire") and not key.get("doc-needed"):
        found.append("crd-ci-q1")
    if "not-covered" in key.get("covered", []) and key.get("pa-needed"):
        found.append("crd-ci-q2")
    if ("conditional" in flags) != bool(key.get("info-needed")):
        found.append("crd-ci-q3")
    pa = key.get("pa-needed", [])
    if any(v in ("satisfied", "noauth", "not-covered") for v in pa) and "withpa" in key.get(
        "doc-purpose", []
    ):
        found.append("crd-ci-q4")
    if ("satisfied" in pa) != bool(key.get("satisfied-pa-id")):
        found.append("crd-ci-q5")
    if "OTH" in key.get("info-needed", []) and not key.get("reason"):
        found.append("crd-ci-q6")
    for reason in key.get("reason", []):
        coded = all(c.get("code") in ASSERTION_REASONS for c in reason.get("coding", [])) and bool(
            reason.get("coding")
        )
        if not reason.get("text") and not coded:
            found.append("crd-ci-q7")
    if any(v != "conditional" for v in key.get("doc-purpose", [])) and not key.get("reason"):
        found.append("crd-ci-q8")
    if "indeterminate" in flags and not key.get("reason"):
        found.append("crd-ci-q9")
    for part in ext["extension"]:
        if part["url"] == "detail":
            names = [p["url"] for p in part["extension"]]
            if sorted(set(names) - {"qualification"}) != ["category", "code", "value"] or len(
                names
            ) != len(set(names)):
                found.append(f"detail parts {names}")
            if _values(part, "category")[0] not in CATEGORIES:
                found.append("detail category")
    return found
