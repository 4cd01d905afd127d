"""HTTP endpoints: discovery, the service call, and the guard in front of them and feedback.

Every request to discovery, a service or feedback (not CORS preflights) first passes
`_guard`:
  authenticate (bare 401; 503 when the replay record cannot be reached)
  -> for POST: the body, at most `CDS_MAX_BODY_BYTES` (413), JSON (400) nested at most
     `CDS_MAX_JSON_DEPTH` deep (400)

POST /cds-services/<id>   (a published id, or an older id kept as an alias: same answer)
  unknown id (404) -> schema (400) -> `null` optional fields dropped (they mean absent)
  -> hook matches the service (400)
  -> at most `CDS_MAX_DRAFT_ORDERS` draft orders (400 `too-many-draft-orders`)
  -> no order that could be for a drug of a policy pack and none the service cannot
     read: {"cards": []} (see `cds_service.orders`)
  -> prefetch, fetching what is missing from a FHIR server this caller may make us read,
     when some order is for a pack's drug or only the data can tell its drug
  -> pipeline.run (each order by its own pack) -> response checked against the response
     schema -> 200

Every order that may be for a pack's drug gets a card: when the patient's record cannot be read
(required prefetch missing and the FHIR server absent, not allowed, unreachable, slow or
refusing), the card says what could not be read and why, and the evaluation extension
lists it (`missingData`); an order whose drug cannot be read gets a could-not-check
card. Errors are kept for requests that are not valid CDS Hooks calls.

The Da Vinci CRD reference client sends `"fhirServer": null`, `"fhirAuthorization":
null`, `"encounterId": null`: a `null` optional field is read as absent. Its older
`medication-prescribe` requests (the hook `order-select` replaced: `context.medications`
holds the draft MedicationRequests, the user is the top-level `user`) are answered by the
order-select service as that hook.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from flask import Blueprint, Flask, Request, Response, current_app, g, jsonify, request
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from requests.adapters import HTTPAdapter
from sqlalchemy.exc import SQLAlchemyError

from cds_service import body_parts, fast_json, orders, pipeline
from cds_service.audit_writer import AuditWriter
from cds_service.auth import AuthError, Principal, fhir_server_allowed
from cds_service.cards import MissingData
from cds_service.cards.merge import one_card_per_order
from cds_service.config import Settings
from cds_service.crd import configuration as crd_configuration
from cds_service.crd import dispatch, per_hook
from cds_service.crd.payer import CoverageNotHandledError
from cds_service.crd.types import COVERAGE_INFO
from cds_service.dtr import answers as dtr_answers
from cds_service.errors import ApiError
from cds_service.hooks import Catalog, ServiceDefinition
from cds_service.http_guard import may_hold_lone_surrogates, replace_lone_surrogates
from cds_service.prefetch import (
    FetchLimits,
    FhirClient,
    PrefetchResult,
    RequestsFhirClient,
    pooled_adapter,
    resolve_prefetch,
)
from cds_service.replay_fallback import ReplayCheckUnavailable
from cds_service.store import AuditStore, InvocationRecord

EXTENSION_KEY = "cds_service"
log = logging.getLogger("cds_service.api")
access_log = logging.getLogger("cds_service.access")
auth_log = logging.getLogger("cds_service.auth")
MAX_DETAILS = 20


class RequestAuthenticator(Protocol):
    """Checks the `Authorization` header of a call to `audience` (the URL called).

    Returns who called; raises `cds_service.auth.AuthError` to refuse (`cds_service.auth.
    Authenticator` is the real one)."""

    def authenticate(self, authorization_header: str | None, audience: str) -> Principal: ...


OrderFilter = Callable[[Mapping[str, Any], str], bool]
"""(context, hook) -> does this call carry an order the service should check (one that
could be for a drug of a policy pack, or one it cannot read)?"""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_uuid() -> str:
    return str(uuid.uuid4())


@dataclass
class ServiceState:
    """Everything a request needs, built once by `create_app`; no per-request data."""

    settings: Settings
    catalog: Catalog
    engine: pipeline.Engine
    store: AuditStore
    clock: Callable[[], datetime] = _utc_now
    uuid_factory: Callable[[], str] = _new_uuid
    monotonic: Callable[[], float] = time.monotonic
    fhir_client_factory: Callable[[], FhirClient] | None = None
    authenticator: RequestAuthenticator | None = None
    order_filter: OrderFilter | None = None
    """Default: `orders.needs_checking` for the drugs of the engine's packs."""
    audit_writer: AuditWriter | None = None
    """Takes the audit record off the reply path; None: written before the reply."""
    limits: FetchLimits = field(init=False)
    _pool: HTTPAdapter | None = field(default=None, init=False, repr=False)
    _pool_pid: int = field(default=0, init=False, repr=False)
    _pool_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.limits = FetchLimits(
            connect_timeout=s.fhir_connect_timeout,
            read_timeout=s.fhir_read_timeout,
            max_next_pages=s.max_next_pages,
            max_queries=s.max_fhir_queries,
            max_concurrent=s.max_concurrent_queries,
            max_response_bytes=s.max_fhir_response_bytes,
            max_call_bytes=s.max_fhir_call_bytes,
        )

    def new_fhir_client(self) -> FhirClient:
        """A client for one call. Its connections come from one pool per worker process
        (made on first use, after gunicorn forks), so calls reuse open connections."""
        if self.fhir_client_factory is not None:
            return self.fhir_client_factory()
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                # Every thread of a worker may run max_concurrent_queries at once.
                self._pool = pooled_adapter(self.settings.max_concurrent_queries * 4)
                self._pool_pid = os.getpid()
            pool = self._pool
        return RequestsFhirClient(monotonic=self.monotonic, adapter=pool)


def get_state(app: Flask | None = None) -> ServiceState:
    state = (app or current_app).extensions[EXTENSION_KEY]
    assert isinstance(state, ServiceState)
    return state


def unauthorized() -> ApiError:
    """The one answer to every authentication failure: the reason goes to the log only."""
    return ApiError(
        "authentication required",
        401,
        error="unauthorized",
        headers={"WWW-Authenticate": "Bearer"},
    )


def called_url(req: Request, settings: Settings) -> str:
    """The URL the caller called, as the token's `aud` must name it: the configured public
    base URL (behind a proxy) plus the path, else the URL of the request as received."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/") + req.path
    return req.base_url


def public_base_url(req: Request, settings: Settings) -> str:
    """The service's external base URL, without a trailing slash: the configured public base
    URL (behind a proxy), else the root of the request as received. Policy links, the
    documentation template's canonical and the form pages are built on it."""
    return (settings.public_base_url or req.url_root).rstrip("/")


def authenticate(req: Request) -> Principal | None:
    """Who is calling; None with `CDS_AUTH=disabled`. Raises a bare 401 otherwise."""
    state = get_state()
    if state.settings.auth == "disabled":
        return None
    if state.authenticator is None:  # create_app refuses to start so; never pass silently
        auth_log.error("no authenticator installed", extra={"event": "auth-failed"})
        raise unauthorized()
    audience = called_url(req, state.settings)
    try:
        return state.authenticator.authenticate(req.headers.get("Authorization"), audience)
    except AuthError as refused:
        auth_log.warning(
            "authentication failed",
            extra={"event": "auth-failed", "reason": refused.reason, "route": req.path},
        )
        raise unauthorized() from None
    except SQLAlchemyError as exc:
        auth_log.error(
            "replay record unavailable",
            extra={"event": "auth-store-failed", "error": type(exc).__name__},
        )
        raise ApiError("the service cannot check credentials right now", 503) from None
    except ReplayCheckUnavailable as unavailable:
        raise ApiError(
            "the service cannot check credentials right now; try again shortly",
            503,
            headers={"Retry-After": str(unavailable.retry_after)},
        ) from None


# --- request body -------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


_STRUCTURE = b'"[]{}'
_NOT_STRUCTURE = bytes(range(256)).translate(None, _STRUCTURE)
_NUMERIC = b"0123456789.-:"
"""Digits, and the separators that most often stand between two runs of them in a chart
(dates, times, OIDs, UUIDs, decimals): kept by `_Scan` so that those runs stay apart."""
_NOT_STRUCTURE_OR_NUMERIC = bytes(range(256)).translate(None, _STRUCTURE + _NUMERIC)
_ONE_BRACKET = bytes.maketrans(b"{}", b"[]")


def json_nesting_exceeds(data: bytes, limit: int) -> bool:
    """True when arrays / objects in the JSON text `data` nest more than `limit` deep
    (`{}` is 1). `data` must be valid JSON (`json.loads` accepted it).

    Works on the text with a handful of C-speed byte operations instead of walking the
    parsed value in Python (which cost about as much as parsing it):
    1. escape pairs are dropped (`\\\\`, then `\\"`), so every quote left opens or
       closes a string;
    2. everything but quotes and brackets is dropped; two adjacent quotes are dropped
       (an empty string, or the end of one string and the start of the next: either way
       no bracket changes sides), and of the few quotes left the text between each pair
       (brackets inside strings) is dropped;
    3. `{}` become `[]`, and each pass that removes every `[]` removes one level: more
       than `limit` passes means deeper than `limit`.
    """
    encoding = json.detect_encoding(data)
    if encoding not in ("utf-8", "utf-8-sig"):
        # UTF-16/32: bracket and quote bytes can be halves of other characters.
        data = data.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
    return _marks_nest_deeper(_without_escape_pairs(data).translate(None, _NOT_STRUCTURE), limit)


def _without_escape_pairs(data: bytes) -> bytes:
    """Step 1 of `json_nesting_exceeds`."""
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    return data


def _marks_nest_deeper(marks: bytes, limit: int) -> bool:
    """Steps 2 (after the first drop) and 3 of `json_nesting_exceeds` on its quotes and
    brackets."""
    marks = marks.replace(b'""', b"")
    if b'"' in marks:
        marks = b"".join(marks.split(b'"')[::2])
    brackets = marks.translate(_ONE_BRACKET)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


@dataclass(frozen=True)
class _Scan:
    """One pass over a UTF-8 body for both checks of its text: whether it holds a run of
    19 digits (`fast_json.read`) and its quotes and brackets (`json_nesting_exceeds`).

    The body with its escape pairs dropped is cut down to its digits, quotes, brackets and
    `.-:` (about an eighth of a chart) in one pass; both checks then read that shorter text.
    Dropping bytes never breaks a run of digits, so a body with a run of 19 has one in the
    shorter text too; a run found there may be two joined where letters were dropped (a hex
    id), so it is looked for again in the body itself. The escape pairs dropped first are
    those `json_nesting_exceeds` drops, so the marks are the very bytes it reads."""

    long_digit_run: bool
    marks: bytes

    @classmethod
    def of(cls, data: bytes) -> _Scan:
        kept = _without_escape_pairs(data).translate(None, _NOT_STRUCTURE_OR_NUMERIC)
        long_run = fast_json.has_long_digit_run(kept) and fast_json.has_long_digit_run(data)
        return cls(long_run, kept.translate(None, _NUMERIC))


def _standard_loads(data: bytes) -> Any:
    return json.loads(data, parse_constant=_reject_constant)


def _read_part(data: bytes, max_depth: int) -> Any:
    """One part of a body (`body_parts`) read as `parse_json_body` reads a whole one when
    every check passes and orjson reads it; `body_parts.UnreadablePartError` otherwise."""
    scan = _Scan.of(data)
    if scan.long_digit_run:
        raise body_parts.UnreadablePartError
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise body_parts.UnreadablePartError from exc
    if _marks_nest_deeper(scan.marks, max_depth):
        raise body_parts.UnreadablePartError
    return value


def read_json_body(req: Request, max_depth: int) -> Any:
    """The parsed body; 400 when it is empty, not JSON, or nests deeper than `max_depth`."""
    data = req.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH; kept for feedback
    return parse_json_body(data, max_depth)


def parse_json_body(data: bytes, max_depth: int) -> Any:
    """`read_json_body` of the bytes `data`."""
    # `data.strip()` would copy a body that ends in a newline; isspace stops at the first
    # byte that is not (both know the same six ASCII whitespace bytes).
    if not data or data.isspace():
        raise ApiError("the request body is empty: expected a JSON object")
    # UTF-8 without a byte-order mark (what EHRs send): read by its parts (each prefetch
    # value sent before as read then), else both checks of the text from one pass over it
    # (`_Scan`); anything else the long way.
    utf8 = json.detect_encoding(data) == "utf-8"
    if utf8:
        parts = body_parts.read_by_parts(data, max_depth, _read_part)
        if parts is not None:
            return parts
    scan = _Scan.of(data) if utf8 else None
    try:
        if scan is None:
            body, by_orjson = fast_json.read(data, _standard_loads)
        else:
            body, by_orjson = fast_json.read(
                data, _standard_loads, long_digit_run=scan.long_digit_run
            )
    except json.JSONDecodeError as exc:
        raise ApiError(
            "the request body is not valid JSON",
            details=[{"message": f"{exc.msg} at line {exc.lineno} column {exc.colno}"}],
        ) from exc
    except RecursionError:
        too_deep = True  # far past any limit: the decoder itself gave up
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            "the request body is not valid JSON", details=[{"message": "not UTF-8 JSON text"}]
        ) from exc
    else:
        if scan is None:
            too_deep = json_nesting_exceeds(data, max_depth)
        else:
            too_deep = _marks_nest_deeper(scan.marks, max_depth)
    if too_deep:
        raise ApiError(
            f"the request body nests deeper than {max_depth} levels",
            error="too-deep",
        )
    # A body orjson read holds no lone surrogate (see `fast_json.read`): not looked for.
    if not by_orjson and may_hold_lone_surrogates(data, json.detect_encoding(data)):
        body = replace_lone_surrogates(body)  # no encoder (database, log) takes them
    return body


def _pointer(parts: Sequence[Any]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _type_names(value: Any) -> str:
    names = value if isinstance(value, list) else [value]
    return " or ".join(str(n) for n in names)


def describe_error(error: ValidationError) -> list[dict[str, str]]:
    """JSON-pointer + message pairs for one schema error. Messages are built from the
    schema, never from the offending value (which may be patient data)."""
    path = list(error.absolute_path)
    kind = str(error.validator)
    value: Any = error.validator_value
    instance: Any = error.instance
    if kind == "required" and isinstance(instance, Mapping):
        return [
            {"pointer": _pointer([*path, name]), "message": "is required"}
            for name in value
            if name not in instance
        ]
    if kind == "dependentRequired" and isinstance(instance, Mapping):
        return [
            {"pointer": _pointer([*path, needed]), "message": f"is required with '{prop}'"}
            for prop, needs in value.items()
            if prop in instance
            for needed in needs
            if needed not in instance
        ]
    messages: dict[str, Callable[[], str]] = {
        "type": lambda: f"must be of type {_type_names(value)}",
        "const": lambda: f"must be {json.dumps(value)}",
        "enum": lambda: "must be one of " + ", ".join(json.dumps(v) for v in value),
        "pattern": lambda: "has an invalid format",
        "minLength": lambda: "must not be empty" if value == 1 else f"is shorter than {value}",
        "maxLength": lambda: f"is longer than {value} characters",
        "minItems": lambda: f"must have at least {value} item(s)",
        "anyOf": lambda: (
            "must be a FHIR resource (an object with resourceType) or null"
            if path and len(path) == 2 and path[0] == "prefetch"
            else "matches none of the allowed forms"
        ),
        "minimum": lambda: f"must be at least {value}",
    }
    make: Callable[[], str] | None = messages.get(kind)
    text = make() if make is not None else f"is invalid ({kind})"
    return [{"pointer": _pointer(path), "message": text}]


def validation_details(validator: Draft202012Validator, instance: Any) -> list[dict[str, str]]:
    details: list[dict[str, str]] = []
    errors = sorted(
        validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]
    )
    for error in errors:
        for item in describe_error(error):
            if item not in details:
                details.append(item)
    return details[:MAX_DETAILS]


_RESOURCE_RULE = {"anyOf": [{"$ref": "#/$defs/resource"}, {"type": "null"}]}


@dataclass(frozen=True)
class _PrefetchShortcut:
    """The request validator without its rule for each prefetch value, and that rule's
    resourceType pattern, for requests whose prefetch values are checked in a loop instead
    (the validator resolves a reference for every key)."""

    validator: Draft202012Validator
    lighter: Draft202012Validator
    resource_type: re.Pattern[str]


_SHORTCUTS: dict[int, _PrefetchShortcut | None] = {}
_SHORTCUTS_LOCK = threading.Lock()


def _shortcut(validator: Draft202012Validator) -> _PrefetchShortcut | None:
    """Built once per validator; None when the schema's prefetch rule is not the simple one
    (any prefetch value: null, or an object with a resourceType matching a pattern), so
    that a changed schema is never checked by a loop that does not follow it."""
    with _SHORTCUTS_LOCK:
        if id(validator) in _SHORTCUTS:
            found = _SHORTCUTS[id(validator)]
            if found is None or found.validator is validator:
                return found
        schema = json.loads(json.dumps(validator.schema))
        prefetch = schema.get("properties", {}).get("prefetch", {})
        resource = schema.get("$defs", {}).get("resource", {})
        type_rule = resource.get("properties", {}).get("resourceType", {})
        shortcut = None
        if (
            prefetch.get("additionalProperties") == _RESOURCE_RULE
            and set(resource) == {"type", "required", "properties"}
            and resource["type"] == "object"
            and resource["required"] == ["resourceType"]
            and set(resource["properties"]) == {"resourceType"}
            and set(type_rule) == {"type", "pattern"}
            and type_rule["type"] == "string"
        ):
            del prefetch["additionalProperties"]
            shortcut = _PrefetchShortcut(
                validator, Draft202012Validator(schema), re.compile(type_rule["pattern"])
            )
        _SHORTCUTS[id(validator)] = shortcut
        return shortcut


def _plain_prefetch(body: Any, resource_type: re.Pattern[str]) -> bool:
    """Every prefetch value is null or an object whose resourceType matches (as the
    validator matches a pattern), so the schema's rule for prefetch values finds nothing."""
    prefetch = body.get("prefetch") if type(body) is dict else None
    if type(prefetch) is not dict:
        return False
    for value in prefetch.values():
        if value is None:
            continue
        if type(value) is not dict:
            return False
        kind = value.get("resourceType")
        if type(kind) is not str or resource_type.search(kind) is None:
            return False
    return True


def validate_request(catalog: Catalog, body: Any) -> None:
    validator = catalog.validators["request"]
    shortcut = _shortcut(validator)
    if shortcut is not None and _plain_prefetch(body, shortcut.resource_type):
        # Same errors: the only rule left out holds for every prefetch value.
        validator = shortcut.lighter
    details = validation_details(validator, body)
    if details:
        first = details[0]
        raise ApiError(
            f"not a valid CDS Hooks request: {first['pointer'] or '/'} {first['message']}",
            error="invalid-request",
            details=details,
        )


OPTIONAL_FIELDS = ("fhirServer", "fhirAuthorization", "prefetch", "extension")
LEGACY_PRESCRIBE = "medication-prescribe"


def without_nulls(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request with `null` optional top-level fields and `null` context fields left
    out: clients (the Da Vinci CRD reference client among them) send `null` for "not
    given". Prefetch keys keep their `null` (CDS Hooks: the client has no such data)."""
    out = {k: v for k, v in body.items() if not (k in OPTIONAL_FIELDS and v is None)}
    context = body.get("context")
    if isinstance(context, Mapping):
        out["context"] = {k: v for k, v in context.items() if v is not None}
    return out


def as_sent_by_ehrs(body: Any) -> Any:
    """Two context shapes EHRs send that CDS Hooks writes otherwise, read as what they
    mean before the request is validated (a 400 would leave the prescriber with no card):
    `patientId` as a reference ("Patient/123": the id is the part after the type; what is
    left must still pass the id pattern), and `draftOrders` as a list of resources or of
    Bundle entries instead of a Bundle. Anything else is left for validation to judge."""
    if not isinstance(body, Mapping) or not isinstance(body.get("context"), Mapping):
        return body
    context = dict(body["context"])
    patient = context.get("patientId")
    if isinstance(patient, str) and patient.startswith("Patient/"):
        context["patientId"] = patient.removeprefix("Patient/")
    drafts = context.get("draftOrders")
    if isinstance(drafts, list) and drafts:  # an empty list carries no order: left as sent
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                item
                if isinstance(item, Mapping) and "resource" in item and "resourceType" not in item
                else {"resource": item}
                for item in drafts
            ],
        }
    return {**body, "context": context}


def from_medication_prescribe(body: Mapping[str, Any]) -> dict[str, Any]:
    """A pre-1.0 `medication-prescribe` request as the `order-select` request it became:
    `context.medications` (a Bundle or a list of MedicationRequests) are the draft orders,
    all of them selected; the user is `context.userId`, else the top-level `user`."""
    context = dict(body.get("context") or {})
    medications = context.pop("medications", None)
    if isinstance(medications, Mapping):
        entries = medications.get("entry")
        entries = entries if isinstance(entries, list) else []
    elif isinstance(medications, list):
        entries = [{"resource": item} for item in medications]
    else:
        entries = []
    context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    context["selections"] = [
        f"MedicationRequest/{entry['resource']['id']}"
        for entry in entries
        if isinstance(entry, Mapping)
        and isinstance(entry.get("resource"), Mapping)
        and entry["resource"].get("resourceType") == "MedicationRequest"
        and isinstance(entry["resource"].get("id"), str)
    ]
    user = body.get("user")
    if "userId" not in context and isinstance(user, str):
        context["userId"] = user
    return {**body, "hook": "order-select", "context": context}


# --- endpoints ----------------------------------------------------------------------

bp = Blueprint("cds", __name__)


@bp.get("/cds-services")
def discovery() -> Response:
    return jsonify(get_state().catalog.discovery())


_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def check_draft_order_count(context: Mapping[str, Any], limit: int) -> None:
    draft = context.get("draftOrders")
    entries = draft.get("entry") if isinstance(draft, Mapping) else None
    if isinstance(entries, list) and len(entries) > limit:
        raise ApiError(
            f"too many draft orders: this service evaluates at most {limit} per call",
            error="too-many-draft-orders",
            details=[{"pointer": "/context/draftOrders/entry", "message": f"at most {limit}"}],
        )


def fhir_server_check(state: ServiceState, principal: Principal | None) -> Callable[[str], bool]:
    """Which `fhirServer` this call may make us read: the caller's pinned bases with auth
    on (nothing without a principal); `CDS_FHIR_SERVERS` (or loopback) with auth off."""
    if state.settings.auth == "disabled":
        allowlist = state.settings.fhir_servers
        return lambda url: fhir_server_allowed(None, url, auth_disabled_allowlist=allowlist)
    if principal is None:
        return lambda url: False
    return lambda url: fhir_server_allowed(principal, url, auth_disabled_allowlist=())


def client_shows_coverage_information(state: ServiceState, principal: Principal | None) -> bool:
    """Whether the calling client shows the prescriber the coverage-information system
    action: its trusted-issuers entry with auth on, `CDS_CLIENT_SHOWS_COVERAGE_INFORMATION`
    with auth off. When it does not, a criteria-met order keeps its card beside it."""
    if state.settings.auth == "disabled":
        return state.settings.client_shows_coverage_information
    return principal is None or principal.shows_coverage_information


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    state = get_state()
    service = state.catalog.service(service_id)  # its id, or an older id kept as an alias
    if service is None:
        raise ApiError("no CDS service with this id; see GET /cds-services", 404)
    # The id as called: the audit record and feedback sent to the same URL then agree, and
    # the audit shows which EHRs still call an alias.
    g.cds_service_id = service_id
    body = as_sent_by_ehrs(g.cds_body)
    validate_request(state.catalog, body)
    body = without_nulls(body)
    if body["hook"] == LEGACY_PRESCRIBE and service.hook == "order-select":
        body = from_medication_prescribe(body)
        validate_request(state.catalog, body)
    hook_instance = str(body["hookInstance"])
    if _SAFE_TOKEN.match(hook_instance):
        g.cds_hook_instance = hook_instance
    if body["hook"] != service.hook:
        raise ApiError(
            f"service '{service_id}' answers the '{service.hook}' hook only",
            error="wrong-hook",
            details=[{"pointer": "/hook", "message": f'must be "{service.hook}"'}],
        )
    config = crd_settings(service, body)
    dispatched = DispatchRead(service, body)
    if service.hook == "order-dispatch":
        dispatched = read_dispatched(state, service, body)
        service, body = dispatched.service, dispatched.body
    context: Mapping[str, Any] = body["context"]
    check_draft_order_count(context, state.settings.max_draft_orders)
    drugs = state.engine.drugs
    checks = state.order_filter or (lambda c, h: orders.needs_checking(c, h, drugs))
    if not checks(context, service.hook) and not dispatched.unread:
        g.cds_outcome = "no-medication-order"
        return jsonify({"cards": []})

    started: float = g.get("cds_started", state.monotonic())
    if orders.needs_data(context, service.hook, drugs):
        result = resolve_prefetch(
            service.prefetch,
            service.required_prefetch,
            body,
            server_allowed=fhir_server_check(state, g.get("cds_principal")),
            client_factory=state.new_fhir_client,
            limits=state.limits,
            deadline=fetch_deadline(state, started),
            monotonic=state.monotonic,
            also_read=orders.medication_reads(context, service.hook),
        )
        result = dtr_answers.quiet(result)  # no answered template is no gap in the chart
    else:  # only orders the service cannot read: the chart would not change the answer
        result = PrefetchResult(resources=(), missing=())
    g.cds_prefetch_missing = [*result.required_missing, *result.missing] or None
    g.cds_fhir_queries = result.queries
    if result.unread:
        g.cds_medications_unread = len(result.unread)

    call = pipeline.CallContext(
        service_id=service_id,
        hook=service.hook,
        hook_instance=hook_instance,
        context=context,
        now=state.clock(),
        uuid_factory=state.uuid_factory,
        missing_prefetch=result.missing,
        fhir_server_used=result.queries > 0,
        unavailable_types=service.resource_types(result.missing),
        missing_data=missing_data(service, result),
        record_unreadable=bool(result.required_missing),
        public_base_url=public_base_url(request, state.settings),
        # Switched off by the caller: rendered without it, so the cards that would only
        # repeat it (CRD resp-12) come back.
        coverage_information=COVERAGE_INFO not in config.disabled_types,
        coverage_information_shown=client_shows_coverage_information(state, g.get("cds_principal")),
        out_of_time=call_out_of_time(state, started),
    )
    answer = coverage_checked_run(call, result.resources, state.engine, body)
    if dispatched.unread:
        answer = pipeline.merge_responses([answer, dispatched.unread_answer(state, call)])
    answer = crd_configuration.apply(per_hook.for_hook(answer, service.hook), config)
    answer = one_card_per_order(answer)  # after the configuration: per-type switches stay exact
    problems = validation_details(state.catalog.validators["response"], answer)
    if problems:
        # A response the EHR may not be able to show is a bug here, not a valid answer.
        pointers = [p["pointer"] for p in problems]
        log.error("invalid response", extra={"event": "response-invalid", "pointers": pointers})
        raise RuntimeError("response fails the response schema")
    g.cds_outcome = f"{len(answer.get('cards', []))}-cards"
    _audit(state, call, answer, started)
    return jsonify(answer)


def coverage_checked_run(
    call: pipeline.CallContext,
    resources: Sequence[Mapping[str, Any]],
    engine: pipeline.Engine,
    body: Mapping[str, Any],
) -> dict[str, Any]:
    """`pipeline.run`; a call whose primary Coverage the payer does not handle is answered
    400 with an OperationOutcome saying which (CRD hook-13, payer mode `reject`)."""
    try:
        return pipeline.run(call, resources, engine)
    except CoverageNotHandledError as exc:
        g.cds_outcome = "coverage-not-handled"
        prefetch = body.get("prefetch")
        where = (
            "/prefetch/coverage" if isinstance(prefetch, Mapping) and "coverage" in prefetch else ""
        )
        detail = {"message": exc.message, **({"pointer": where} if where else {})}
        raise ApiError(
            "the call's primary Coverage is not one this service handles: " + exc.message,
            error="coverage-not-handled",
            details=[detail],
        ) from None


def fetch_deadline(state: ServiceState, started: float) -> float:
    """When fetching from the FHIR server stops: `CDS_REQUEST_DEADLINE` after the call
    arrived, and never later than the call's own deadline (`CDS_CALL_DEADLINE`)."""
    settings = state.settings
    return started + min(settings.request_deadline, settings.call_deadline)


def call_out_of_time(state: ServiceState, started: float) -> Callable[[], bool]:
    """Whether the call's deadline (`CDS_CALL_DEADLINE` after it arrived) has passed."""
    end = started + state.settings.call_deadline
    return lambda: state.monotonic() >= end


def crd_settings(
    service: ServiceDefinition, body: Mapping[str, Any]
) -> crd_configuration.Configuration:
    """The call's CRD configuration (`cds_service.crd.configuration`); 400 when it asks for a
    CRD version the service does not speak or sends an advertised option with a value of
    another type. Options the service does not advertise are ignored."""
    extension = body.get("extension")
    try:
        crd_configuration.check_version(crd_configuration.versions_of(service.discovery), extension)
        config = crd_configuration.read(crd_configuration.options_of(service.discovery), extension)
    except crd_configuration.ConfigurationError as exc:
        raise ApiError(
            exc.message,
            error=exc.error,
            details=[{"pointer": exc.pointer, "message": exc.message}],
        ) from None
    if config.ignored:
        g.cds_config_ignored = len(config.ignored)
    return config


@dataclass(frozen=True)
class DispatchRead:
    """An order-dispatch call after its dispatched MedicationRequests were looked for
    (`cds_service.crd.dispatch`); for other hooks, the call as it came."""

    service: ServiceDefinition
    body: Mapping[str, Any]
    unread: tuple[str, ...] = ()
    """Dispatched MedicationRequests that could not be found."""
    reason: str = ""
    missing: tuple[MissingData, ...] = ()

    def unread_answer(self, state: ServiceState, call: pipeline.CallContext) -> dict[str, Any]:
        return dispatch.unread_response(
            state.engine,
            call.hook,
            self.unread,
            self.reason,
            self.missing,
            uuid_factory=call.uuid_factory,
            now=call.now,
        )


def read_dispatched(
    state: ServiceState, service: ServiceDefinition, body: Mapping[str, Any]
) -> DispatchRead:
    """Find the dispatched MedicationRequests among the patient's medication orders (the
    `medicationRequests` prefetch, else the FHIR server) and turn the call into one the
    rest of the service reads like order-sign (`dispatch.order_context`)."""
    context = body["context"]
    refs = dispatch.medication_refs(context)
    limit = state.settings.max_draft_orders
    if len(refs) > limit:
        raise ApiError(
            f"too many dispatched orders: this service evaluates at most {limit} per call",
            error="too-many-draft-orders",
            details=[{"pointer": "/context/dispatchedOrders", "message": f"at most {limit}"}],
        )
    service = replace(service, prefetch={**service.prefetch, **dispatch.REQUESTER_PREFETCH})
    if not refs:
        return DispatchRead(service, {**body, "context": dispatch.order_context(context, [])})
    key = dispatch.ORDERS_KEY
    started: float = g.get("cds_started", state.monotonic())
    result = resolve_prefetch(
        {key: service.prefetch[key]},
        frozenset({key}),
        body,
        server_allowed=fhir_server_check(state, g.get("cds_principal")),
        client_factory=state.new_fhir_client,
        limits=state.limits,
        deadline=fetch_deadline(state, started),
        monotonic=state.monotonic,
    )
    found, unread = dispatch.find_orders(refs, result.resources)
    read = {**body, "context": dispatch.order_context(context, found)}
    if not result.required_missing:
        read = dispatch.with_orders_prefetch(read, result.resources)
    why = result.reasons.get(key) if result.required_missing else None
    return DispatchRead(
        service,
        read,
        unread=tuple(unread),
        reason=dispatch.unread_reason(why),
        missing=missing_data(service, result),
    )


@bp.get("/policies/<pack_id>")
@bp.get("/policies/<pack_id>/<version>")
def policy_text(pack_id: str, version: str | None = None) -> Response:
    """The policy text of a pack (its `source.txt`), the target of the coverage
    information's policy link: public text, no patient data, no token needed. With a
    version, only while that version is the one in force (404 otherwise)."""
    pack = get_state().engine.registry.packs.get(pack_id)
    source = pack.directory / "source.txt" if pack is not None else None
    if (
        pack is None
        or source is None
        or not source.is_file()
        or version not in (None, pack.version)
    ):
        raise ApiError("no policy with this id and version", 404, error="not-found")
    text = source.read_text("utf-8")
    response = Response(text, mimetype="text/plain")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def missing_data(service: ServiceDefinition, result: PrefetchResult) -> tuple[MissingData, ...]:
    """What could not be read for the call, in the service's prefetch order."""
    return tuple(
        MissingData(
            prefetch_key=key,
            resource_type=next(iter(service.resource_types([key])), key),
            issue=result.failures.get(key, "unknown"),
            reason=result.reasons.get(key, "it could not be read"),
            required=key in result.required_missing,
        )
        for key in service.prefetch
        if key in result.required_missing or key in result.missing
    )


def _patient_ref(context: Mapping[str, Any]) -> str | None:
    patient = context.get("patientId")
    if not isinstance(patient, str) or not _SAFE_TOKEN.match(patient):
        return None
    return patient if patient.startswith("Patient/") else f"Patient/{patient}"


def _audit(
    state: ServiceState, call: pipeline.CallContext, answer: Mapping[str, Any], started: float
) -> None:
    """Record the invocation: queued for the audit writer (the reply does not wait for the
    database; see `cds_service.audit_writer`). Without a writer it is written here; a
    store that fails is logged, and the prescriber still gets the cards."""
    record = InvocationRecord.from_response(
        hook_instance=call.hook_instance,
        service_id=call.service_id,
        hook=call.hook,
        received_at=call.now,
        patient_ref=_patient_ref(call.context),
        response=answer,
        timings_ms={"total": round((state.monotonic() - started) * 1000, 1)},
    )
    if state.audit_writer is not None:
        state.audit_writer.submit(record)
        return
    try:
        state.store.record_invocation(record)
    except SQLAlchemyError as exc:
        log.error(
            "audit store write failed",
            extra={"event": "audit-failed", "error": type(exc).__name__},
        )


GUARDED_ENDPOINTS = frozenset(
    {"cds.discovery", "cds.call_service", "cds_feedback.receive_feedback"}
)


@bp.before_app_request
def _guard() -> None:
    """Time every request; authenticate every call to discovery, a service or feedback
    (CORS preflights carry no credentials and get no data); read POST bodies within the
    size and nesting limits."""
    state = get_state()
    g.cds_started = state.monotonic()
    if request.method == "OPTIONS" or request.endpoint not in GUARDED_ENDPOINTS:
        return
    g.cds_principal = authenticate(request)
    if request.method == "POST":
        g.cds_body = read_json_body(request, state.settings.max_json_depth)


@bp.after_app_request
def _log_request(response: Response) -> Response:
    """One event per request: what, for which service and hook call, how it ended and
    how long it took. Never the body, the headers or anything from the patient."""
    state = get_state()
    started = g.get("cds_started")
    rule = request.url_rule.rule if request.url_rule is not None else None
    event: dict[str, Any] = {
        "event": "request",
        "method": request.method,
        "route": rule or "unmatched",
        "status": response.status_code,
        "service": g.get("cds_service_id"),
        "hookInstance": g.get("cds_hook_instance"),
        "outcome": g.get("cds_outcome"),
        "prefetchMissing": g.get("cds_prefetch_missing"),
        "fhirQueries": g.get("cds_fhir_queries"),
        "medicationsUnread": g.get("cds_medications_unread"),
        "configurationIgnored": g.get("cds_config_ignored"),
    }
    if isinstance(started, float):
        event["duration_ms"] = round((state.monotonic() - started) * 1000, 1)
    access_log.info("request", extra={k: v for k, v in event.items() if v is not None})
    return response
