"""Da Vinci CRD conformance cases as data, and the small language their checks are written in.

A case (`tests/crd/cases/*.json`; `cases/pending/` holds cases that wait for another lane's
work and are not run) says:

    {"id": "...", "title": "...", "covers": ["hook-16", ...],   # requirement ids
     "data_paths": ["prefetch", "fhir-server"],               # default ["prefetch"]
     "request": {"method": "POST", "service": "prior-auth-order-sign",
                 "file": "hooks/examples/order-sign-prefetch.json",   # or "body": {...}
                 "set": [[path, value], ...], "remove": [path, ...], "raw": "text"},
     "calls": 1,                                   # the same request sent this many times
     "settings": {"CDS_PREFETCH": "minimal"},      # a service started with these settings
     "expect": [assertion, ...]}

`request.keep_prefetch` (a list of keys) keeps those prefetch keys on the "fhir-server" data
path (an EHR prefetching what a minimal discovery asks for); the rest is in the server.

Paths are JSON lists: a key, an index, "*" (every item of a list), or an object (keep the list
items whose fields equal it). A path may start with an alias ("@coverage-information": every
coverage-information extension of every system action). Assertions:

    {"status": 200}
    {"path": P, "exists": true | false}          at least one value / none
    {"path": P, "equals": V}                     every value equals V (and there is one)
    {"path": P, "all_in": [V, ...]}              every value is one of these (and there is one)
    {"path": P, "none_in": [V, ...]}             no value is one of these (none at all is fine)
    {"path": P, "count": N}
    {"path": P, "max_length": N}                 every value is a string of at most N characters
    {"path": P, "matches": REGEX}                every value is a string matching REGEX
    {"path": P, "same_in_every_call": true}      the values are the same in every call
    {"check": NAME}                              a named check (`CHECKS`) over the response

The "fhir-server" data path sends the request without prefetch: its prefetch resources are
first stored in a FHIR server and `fhirServer` names that server (`to_fhir_server_request`).
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import requests
import yaml

CRD_DIR = Path(__file__).resolve().parent
REPO_ROOT = CRD_DIR.parent.parent
CASES_DIR = CRD_DIR / "cases"
PENDING_DIR = CASES_DIR / "pending"
REQUIREMENTS_FILE = CRD_DIR / "requirements.yaml"
# The public samples live beside the repository (`../shared/fhir-samples`); a worktree sits
# one level deeper, so the machine's shared folder is the fallback.
SHARED_SAMPLES = next(
    (
        p
        for p in (REPO_ROOT.parent / "shared" / "fhir-samples", Path("/work/shared/fhir-samples"))
        if p.is_dir()
    ),
    REPO_ROOT.parent / "shared" / "fhir-samples",
)

COVERAGE_INFORMATION_URL = (
    "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
)
CRD_REASON_SYSTEMS = (
    "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp",
    "http://terminology.hl7.org/CodeSystem/v3-ActReason",
)
ALIASES: dict[str, list[Any]] = {
    "@coverage-information": [
        "systemActions",
        "*",
        "resource",
        "extension",
        {"url": COVERAGE_INFORMATION_URL},
    ],
    "@cards": ["cards", "*"],
}
DATA_PATHS = ("prefetch", "fhir-server")


# --- requirements ------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    id: str
    verb: str
    statement: str
    page: str
    applies: str
    status: str | None
    cases: tuple[str, ...]

    @property
    def applicable(self) -> bool:
        return self.applies == "yes"

    @property
    def met(self) -> bool:
        """Met, always (`met`) or with a setting the row names (`met with <setting>: why`)."""
        return self.status == "met" or (self.status or "").startswith("met with ")


def load_requirements(path: Path = REQUIREMENTS_FILE) -> tuple[dict[str, Any], list[Requirement]]:
    data = yaml.safe_load(path.read_text("utf-8"))
    rows = [
        Requirement(
            id=str(row["id"]),
            verb=str(row["verb"]),
            statement=str(row["statement"]),
            page=str(row["page"]),
            applies=str(row["applies"]),
            status=None if row.get("status") is None else str(row["status"]),
            cases=tuple(str(c) for c in row.get("cases") or ()),
        )
        for row in data["requirements"]
    ]
    return data, rows


# --- cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    covers: tuple[str, ...]
    request: Mapping[str, Any]
    expect: tuple[Mapping[str, Any], ...]
    data_paths: tuple[str, ...] = ("prefetch",)
    calls: int = 1
    pending: bool = False
    file: Path = field(default=Path())
    settings: Mapping[str, str] = field(default_factory=dict)
    """Settings (`CDS_*`) of the service the case runs against; empty: the defaults."""


def load_case(path: Path, *, pending: bool = False) -> Case:
    data = json.loads(path.read_text("utf-8"))
    return Case(
        id=str(data["id"]),
        title=str(data["title"]),
        covers=tuple(data["covers"]),
        request=data["request"],
        expect=tuple(data["expect"]),
        data_paths=tuple(data.get("data_paths", ["prefetch"])),
        calls=int(data.get("calls", 1)),
        pending=pending,
        file=path,
        settings={str(k): str(v) for k, v in data.get("settings", {}).items()},
    )


def load_cases(*, include_pending: bool = False) -> list[Case]:
    cases = [load_case(p) for p in sorted(CASES_DIR.glob("*.json"))]
    if include_pending:
        cases += [load_case(p, pending=True) for p in sorted(PENDING_DIR.glob("*.json"))]
    return cases


# --- paths -------------------------------------------------------------------------------


def _expand(path: Sequence[Any]) -> list[Any]:
    if path and isinstance(path[0], str) and path[0].startswith("@"):
        return [*ALIASES[path[0]], *path[1:]]
    return list(path)


def _has_fields(item: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    """`item` has every field of `want` with the same value; nested objects are matched the
    same way (a card's `source` that also carries a `url` still matches its label and topic)."""
    for key, value in want.items():
        got = item.get(key)
        if isinstance(value, Mapping):
            if not (isinstance(got, Mapping) and _has_fields(got, value)):
                return False
        elif got != value:
            return False
    return True


def select(document: Any, path: Sequence[Any]) -> list[Any]:
    """Every value `path` reaches in `document` (see the module docstring)."""
    values = [document]
    for step in _expand(path):
        found: list[Any] = []
        for value in values:
            if step == "*":
                found.extend(value if isinstance(value, list) else [])
            elif isinstance(step, Mapping):
                items = value if isinstance(value, list) else []
                found.extend(
                    item for item in items if isinstance(item, Mapping) and _has_fields(item, step)
                )
            elif isinstance(step, int):
                if isinstance(value, list) and -len(value) <= step < len(value):
                    found.append(value[step])
            elif isinstance(value, Mapping) and step in value:
                found.append(value[step])
        values = found
    return values


def _parent_and_key(document: Any, path: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    *head, last = _expand(path)
    for parent in select(document, head):
        if isinstance(parent, Mapping) or (
            isinstance(parent, list) and isinstance(last, int) and last <= len(parent)
        ):
            yield parent, last


def apply_edits(body: Any, request: Mapping[str, Any]) -> Any:
    """`body` with the case's `set` and `remove` edits (a copy)."""
    body = copy.deepcopy(body)
    for path, value in request.get("set", []):
        for parent, key in _parent_and_key(body, path):
            if isinstance(parent, list) and key == len(parent):
                parent.append(copy.deepcopy(value))  # one past the end: a new item
            else:
                parent[key] = copy.deepcopy(value)
    for path in request.get("remove", []):
        for parent, key in list(_parent_and_key(body, path)):
            if isinstance(parent, Mapping) and key in parent:
                del parent[key]  # type: ignore[attr-defined]
    return body


def request_body(request: Mapping[str, Any]) -> Any:
    """The JSON body a case sends (None for a raw or GET request)."""
    if "file" in request:
        name = str(request["file"])
        source = (
            SHARED_SAMPLES / name.removeprefix("shared:")
            if name.startswith("shared:")
            else REPO_ROOT / name
        )
        base = json.loads(source.read_text("utf-8"))
    elif "body" in request:
        base = request["body"]
    else:
        return None
    return apply_edits(base, request)


# --- the FHIR-server data path -----------------------------------------------------------


def prefetch_resources(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every resource of the request's prefetch (Bundles opened), each (type, id) once."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for value in (body.get("prefetch") or {}).values():
        if not isinstance(value, Mapping):
            continue
        resources = (
            [e.get("resource") for e in value.get("entry") or []]
            if value.get("resourceType") == "Bundle"
            else [value]
        )
        for resource in resources:
            if (
                isinstance(resource, Mapping)
                and resource.get("id")
                and resource.get("resourceType") not in (None, "OperationOutcome")
            ):
                found[(resource["resourceType"], resource["id"])] = dict(resource)
    return list(found.values())


def transaction(resources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A transaction Bundle storing `resources` under their own ids (PUT)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": dict(r),
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


def with_system_actions_applied(body: Any, reply: Any) -> Any:
    """`body` with each draft order replaced by the version a system action of `reply`
    updates it to: what an EHR sends on its next call after applying the actions."""
    updated = {
        (r.get("resourceType"), r.get("id")): r
        for r in select(reply, ["systemActions", {"type": "update"}, "resource"])
    }
    body = copy.deepcopy(body)
    for entry in select(body, ["context", "draftOrders", "entry", "*"]):
        resource = entry.get("resource", {})
        key = (resource.get("resourceType"), resource.get("id"))
        if key in updated:
            entry["resource"] = copy.deepcopy(updated[key])
    return body


def to_fhir_server_request(
    body: Mapping[str, Any], fhir_base: str, keep: Sequence[str] = ()
) -> dict[str, Any]:
    """The same call with no prefetch (but the `keep` keys): the service must read the
    chart from `fhir_base`."""
    out = {k: v for k, v in body.items() if k not in ("prefetch", "fhirAuthorization")}
    kept = {k: v for k, v in (body.get("prefetch") or {}).items() if k in keep}
    if kept:
        out["prefetch"] = kept
    out["fhirServer"] = fhir_base
    return out


# --- assertions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    raw: bytes


@dataclass(frozen=True)
class CheckContext:
    """What a named check may look at besides the reply."""

    request: Any
    audit_hook_instances: Callable[[], set[str]]
    fhir_reads: tuple[str, ...] = ()
    """Paths the service read from the FHIR server during the case (fhir-server path)."""


def _ext(extension: Mapping[str, Any], url: str) -> list[Mapping[str, Any]]:
    return [e for e in extension.get("extension", []) if e.get("url") == url]


def _code(extension: Mapping[str, Any], url: str) -> list[str]:
    return [str(e.get("valueCode")) for e in _ext(extension, url)]


def coverage_information_problems(ci: Mapping[str, Any]) -> list[str]:
    """The extension's cardinalities and its invariants crd-ci-q1 .. q9 (ours, in Python)."""
    problems = [
        f"{name} must occur exactly once"
        for name in ("coverage", "covered", "date", "coverage-assertion-id")
        if len(_ext(ci, name)) != 1
    ]
    problems += [
        f"{name} occurs more than once"
        for name in ("pa-needed", "satisfied-pa-id")
        if len(_ext(ci, name)) > 1
    ]
    covered, pa, doc = _code(ci, "covered"), _code(ci, "pa-needed"), _code(ci, "doc-needed")
    purposes, reasons = _code(ci, "doc-purpose"), _ext(ci, "reason")
    if _ext(ci, "questionnaire") and not doc:
        problems.append("crd-ci-q1: questionnaire without doc-needed")
    if "not-covered" in covered and pa:
        problems.append("crd-ci-q2: not-covered with pa-needed")
    if "conditional" in covered + pa + doc and not _ext(ci, "info-needed"):
        problems.append("crd-ci-q3: conditional without info-needed")
    if set(pa) & {"satisfied", "no-auth", "noauth", "not-covered"} and "withpa" in purposes:
        problems.append("crd-ci-q4: doc-purpose withpa when no authorization is pending")
    if ("satisfied" in pa) != bool(_ext(ci, "satisfied-pa-id")):
        problems.append("crd-ci-q5: satisfied-pa-id exactly when pa-needed is satisfied")
    if "OTH" in _code(ci, "info-needed") and not reasons:
        problems.append("crd-ci-q6: info-needed OTH without reason")
    for reason in reasons:
        concept = reason.get("valueCodeableConcept") or {}
        codings = concept.get("coding") or []
        in_value_set = any(c.get("system") in CRD_REASON_SYSTEMS for c in codings)
        if not concept.get("text") and not in_value_set:
            problems.append("crd-ci-q7: reason without text or CRD reason code")
    if [p for p in purposes if p != "conditional"] and not reasons:
        problems.append("crd-ci-q8: doc-purpose without reason")
    if "indeterminate" in covered + pa + doc and not reasons:
        problems.append("crd-ci-q9: indeterminate without reason")
    for name, allowed in (
        ("covered", {"covered", "not-covered", "conditional", "indeterminate"}),
        (
            "pa-needed",
            {"no-auth", "auth-needed", "satisfied", "performpa", "conditional", "indeterminate"},
        ),
        ("doc-needed", {"clinical", "admin", "patient", "conditional", "indeterminate"}),
        ("doc-purpose", {"withpa", "withclaim", "withorder", "retain-doc", "OTH"}),
    ):
        problems += [
            f"{name} {v!r} is not a code of its value set"
            for v in _code(ci, name)
            if v not in allowed
        ]
    return problems


def _draft_orders(request: Any) -> dict[str, Mapping[str, Any]]:
    context = request.get("context", {}) if isinstance(request, Mapping) else {}
    drafts = context.get("draftOrders") or context.get("dispatchedOrders") or {}
    return {
        f"{r['resourceType']}/{r['id']}": r
        for r in select(drafts, ["entry", "*", "resource"])
        if isinstance(r, Mapping) and "id" in r
    }


def _check_coverage_information(reply: Reply, ctx: CheckContext) -> list[str]:
    found = select(reply.body, ["@coverage-information"])
    if not found:
        return ["no coverage-information extension in any system action"]
    return [p for ci in found for p in coverage_information_problems(ci)]


def _check_coverage_information_when_sent(reply: Reply, ctx: CheckContext) -> list[str]:
    """Every coverage-information extension sent is valid (none at all is fine)."""
    found = select(reply.body, ["@coverage-information"])
    return [p for ci in found for p in coverage_information_problems(ci)]


def _without_ours(resource: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(resource)
    kept = [e for e in out.pop("extension", []) if e.get("url") != COVERAGE_INFORMATION_URL]
    if kept:
        out["extension"] = kept
    return out


def _check_action_changes_only_extension(reply: Reply, ctx: CheckContext) -> list[str]:
    drafts = _draft_orders(ctx.request)
    problems = []
    actions = select(reply.body, ["systemActions", "*"])
    if not actions:
        return ["no system action"]
    for action in actions:
        resource = action.get("resource", {})
        key = f"{resource.get('resourceType')}/{resource.get('id')}"
        if key not in drafts:
            problems.append(f"{key} is not a draft order of the request")
        elif _without_ours(resource) != _without_ours(drafts[key]):
            problems.append(f"{key}: the update changes more than coverage information")
    return problems


_MD_LINK = re.compile(r"\]\((https?://[^)\s]+)\)")


def _check_detail_links_in_card_links(reply: Reply, ctx: CheckContext) -> list[str]:
    problems = []
    for card in select(reply.body, ["@cards"]):
        urls = {link.get("url") for link in card.get("links", [])}
        problems += [
            f"card {card.get('uuid')}: detail link {url} is not in Card.links"
            for url in _MD_LINK.findall(card.get("detail", ""))
            if url not in urls
        ]
    return problems


def _check_compact_json(reply: Reply, ctx: CheckContext) -> list[str]:
    """The body is as long as the most compact serialisation of what it holds."""
    text = reply.raw.strip()
    compact = {
        len(json.dumps(reply.body, separators=(",", ":"), ensure_ascii=ascii).encode())
        for ascii in (True, False)
    }
    return [] if len(text) in compact else ["the body holds non-significant whitespace"]


AUDIT_WAIT_S: Final = 15.0
"""How long the audit check waits for the record: the service writes it after the reply,
from a queue (`cds_service.audit_writer`)."""


def _check_audit_record(reply: Reply, ctx: CheckContext) -> list[str]:
    hook_instance = ctx.request.get("hookInstance") if isinstance(ctx.request, Mapping) else None
    deadline = time.monotonic() + AUDIT_WAIT_S
    while hook_instance not in ctx.audit_hook_instances():
        if time.monotonic() > deadline:
            return [f"no audit record for hookInstance {hook_instance}"]
        time.sleep(0.1)
    return []


def _check_cards_name_their_orders(reply: Reply, ctx: CheckContext) -> list[str]:
    """With several draft orders, each card names its order (associated-resource) and its
    detail says in words which order it is about (the order's drug text or display)."""
    drafts = _draft_orders(ctx.request)
    problems = []
    for card in select(reply.body, ["@cards"]):
        refs = [
            r.get("reference")
            for r in select(card, ["extension", "davinci-crd.associated-resource", "*"])
        ]
        if not refs:
            problems.append(f"card {card.get('uuid')} has no associated-resource")
            continue
        for ref in refs:
            order = drafts.get(str(ref), {})
            concept = order.get("medicationCodeableConcept", {})
            names = [concept.get("text"), *[c.get("display") for c in concept.get("coding", [])]]
            words = {w for n in names if n for w in re.findall(r"[A-Za-z]{5,}", n)}
            text = card.get("summary", "") + " " + card.get("detail", "")
            if not any(w.lower() in text.lower() for w in words):
                problems.append(
                    f"card {card.get('uuid')} does not say which order ({ref}) it is about"
                )
    return problems


def _check_fhir_server_read(reply: Reply, ctx: CheckContext) -> list[str]:
    return [] if ctx.fhir_reads else ["the service read nothing from the FHIR server"]


def _check_no_fhir_server_read(reply: Reply, ctx: CheckContext) -> list[str]:
    return [f"the service read {p} from the FHIR server" for p in ctx.fhir_reads]


INSTRUCTIONS = ("http://terminology.hl7.org/CodeSystem/crd-coverage-detail", "instructions")
BILLING_OPTIONS = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options"


def _assumptions(coverage_information: Mapping[str, Any]) -> list[str]:
    """The values of the `instructions` details that state the answer's assumptions."""
    out = []
    for detail in select(coverage_information, ["extension", {"url": "detail"}]):
        parts = {p.get("url"): p for p in detail.get("extension", [])}
        codings = select(parts.get("code", {}), ["valueCodeableConcept", "coding", "*"])
        if not any((c.get("system"), c.get("code")) == INSTRUCTIONS for c in codings):
            continue
        qualification = str(parts.get("qualification", {}).get("valueString", ""))
        if "assum" in qualification.lower():
            out.append(str(parts.get("value", {}).get("valueString", "")))
    return out


def _check_assumptions_stated(reply: Reply, ctx: CheckContext) -> list[str]:
    """impl-5: every coverage-information says which billing codes (and network) it assumed."""
    found = select(reply.body, ["@coverage-information"])
    if not found:
        return ["no coverage-information extension in any system action"]
    problems = []
    for ci in found:
        said = " ".join(_assumptions(ci))
        if not said:
            problems.append("a coverage-information states no assumptions")
        elif "billing" not in said.lower() and "ndc" not in said.lower():
            problems.append("the stated assumptions do not mention billing codes")
        elif "network" not in said.lower():
            problems.append("the stated assumptions do not mention the network")
    return problems


def _check_billing_options_considered(reply: Reply, ctx: CheckContext) -> list[str]:
    """billopt-3: every code the request sent in billing options is a billingCode of the
    answer or is named in its stated assumptions (considered and set aside)."""
    path = ["*", "medicationCodeableConcept", "extension", {"url": BILLING_OPTIONS}]
    path += ["valueCodeableConcept", "coding", "*", "code"]
    sent = [str(c) for c in select(list(_draft_orders(ctx.request).values()), path)]
    found = select(reply.body, ["@coverage-information"])
    if not sent or not found:
        return ["the request sends no billing options, or the answer no coverage information"]
    problems = []
    for ci in found:
        billed = {
            str(c) for c in select(ci, ["extension", {"url": "billingCode"}, "valueCoding", "code"])
        }
        said = " ".join(_assumptions(ci))
        problems += [
            f"billing option {code} was not considered"
            for code in sent
            if code not in billed and code not in said
        ]
    return problems


def _check_questionnaire_served(reply: Reply, ctx: CheckContext) -> list[str]:
    """resp-38: every questionnaire the coverage information names is served at its canonical
    URL, as a Questionnaire with that url and version (the canonical's `|version`)."""
    canonicals = select(
        reply.body, ["@coverage-information", "extension", {"url": "questionnaire"}]
    )
    if not canonicals:
        return ["no coverage-information extension names a questionnaire"]
    problems = []
    for part in canonicals:
        canonical = str(part.get("valueCanonical", ""))
        url, _, version = canonical.partition("|")
        try:
            answer = requests.get(url, headers={"Accept": "application/fhir+json"}, timeout=30)
        except requests.RequestException as exc:
            problems.append(f"{canonical}: not reachable ({type(exc).__name__})")
            continue
        body = answer.json() if answer.status_code == 200 else {}
        if body.get("resourceType") != "Questionnaire" or body.get("url") != url:
            problems.append(
                f"{canonical}: GET answered {answer.status_code}, not its Questionnaire"
            )
        elif version and body.get("version") != version:
            problems.append(f"{canonical}: the served version is {body.get('version')}")
    return problems


CHECKS: dict[str, Callable[[Reply, CheckContext], list[str]]] = {
    "questionnaire-served": _check_questionnaire_served,
    "assumptions-stated": _check_assumptions_stated,
    "billing-options-considered": _check_billing_options_considered,
    "coverage-information-valid": _check_coverage_information,
    "coverage-information-valid-when-sent": _check_coverage_information_when_sent,
    "action-changes-only-coverage-information": _check_action_changes_only_extension,
    "detail-links-in-card-links": _check_detail_links_in_card_links,
    "compact-json": _check_compact_json,
    "audit-record": _check_audit_record,
    "cards-name-their-orders": _check_cards_name_their_orders,
    "fhir-server-read": _check_fhir_server_read,
    "no-fhir-server-read": _check_no_fhir_server_read,
}


def check(assertion: Mapping[str, Any], replies: Sequence[Reply], ctx: CheckContext) -> list[str]:
    """Problems with `assertion` against the replies of one case ([] when it holds)."""
    reply = replies[-1]
    if "status" in assertion:
        want = assertion["status"]
        return [] if reply.status == want else [f"status {reply.status}, expected {want}"]
    if "check" in assertion:
        return [f"{assertion['check']}: {p}" for p in CHECKS[assertion["check"]](reply, ctx)]
    path = assertion["path"]
    values = select(reply.body, path)
    where = json.dumps(path)
    if "exists" in assertion:
        ok = bool(values) == bool(assertion["exists"])
        return (
            []
            if ok
            else [
                f"{where}: expected {'some' if assertion['exists'] else 'no'} value, "
                f"got {values!r:.300}"
            ]
        )
    if "count" in assertion:
        n = assertion["count"]
        return [] if len(values) == n else [f"{where}: {len(values)} values, expected {n}"]
    if "same_in_every_call" in assertion:
        seen = [select(r.body, path) for r in replies]
        return (
            []
            if all(s == seen[0] for s in seen) and seen[0]
            else [f"{where}: differs between calls: {seen!r:.300}"]
        )
    if "none_in" in assertion:
        bad = [v for v in values if v in assertion["none_in"]]
        return [f"{where}: unexpected {bad!r:.300}"] if bad else []
    if not values:
        return [f"{where}: no value"]
    if "equals" in assertion:
        bad = [v for v in values if v != assertion["equals"]]
    elif "all_in" in assertion:
        bad = [v for v in values if v not in assertion["all_in"]]
    elif "max_length" in assertion:
        bad = [v for v in values if not isinstance(v, str) or len(v) > assertion["max_length"]]
    elif "matches" in assertion:
        bad = [
            v for v in values if not isinstance(v, str) or not re.search(assertion["matches"], v)
        ]
    else:
        raise ValueError(f"unknown assertion {assertion!r}")
    return [f"{where}: {bad!r:.300}"] if bad else []
