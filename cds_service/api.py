"""HTTP endpoints: discovery, the service call, and the guard in front of them and feedback.

Every request to discovery, a service or feedback (not CORS preflights) first passes
`_guard`:
  authenticate (bare 401; 503 when the replay record cannot be reached)
  -> for POST: the body, at most `CDS_MAX_BODY_BYTES` (413), JSON (400) nested at most
     `CDS_MAX_JSON_DEPTH` deep (400)

POST /cds-services/<id>
  unknown id (404) -> schema (400) -> hook matches the service (400)
  -> at most `CDS_MAX_DRAFT_ORDERS` draft orders (400 `too-many-draft-orders`)
  -> no order that could be anakinra: {"cards": []}
  -> prefetch, fetching what is missing from a FHIR server this caller may make us read
     (412 when required data cannot be had)
  -> pipeline.run, plus a could-not-check card for every order whose medication stays
     unknown -> response checked against the response schema -> 200
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from flask import Blueprint, Flask, Request, Response, current_app, g, jsonify, request
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from cds_service import pipeline
from cds_service.auth import AuthError, Principal, fhir_server_allowed
from cds_service.cards import NotEvaluated, render_response
from cds_service.config import Settings
from cds_service.errors import ApiError
from cds_service.hooks import Catalog
from cds_service.prefetch import (
    FetchLimits,
    FhirClient,
    RequestsFhirClient,
    resolve_prefetch,
)
from cds_service.store import AuditStore, InvocationRecord
from fhir_mappings.medications import identify_concept

EXTENSION_KEY = "cds_service"
log = logging.getLogger("cds_service.api")
access_log = logging.getLogger("cds_service.access")
auth_log = logging.getLogger("cds_service.auth")
MAX_DETAILS = 20
ANAKINRA = "anakinra"


class RequestAuthenticator(Protocol):
    """Checks the `Authorization` header of a call to `audience` (the URL called).

    Returns who called; raises `cds_service.auth.AuthError` to refuse (`cds_service.auth.
    Authenticator` is the real one)."""

    def authenticate(self, authorization_header: str | None, audience: str) -> Principal: ...


OrderFilter = Callable[[Mapping[str, Any], str], bool]
"""(context, hook) -> does this call carry an order the service should evaluate?"""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_uuid() -> str:
    return str(uuid.uuid4())


# --- which draft orders matter ------------------------------------------------------

MedicationKind = Literal["anakinra", "other", "unknown", "none"]
"""What a draft MedicationRequest is for: anakinra; recognisably another drug (coded or
named); a drug we cannot tell (a reference to a Medication we do not have); or no drug
chosen yet."""


def relevant_medication_requests(
    context: Mapping[str, Any], hook: str
) -> Iterator[Mapping[str, Any]]:
    """The draft MedicationRequests of the call (for order-select: the selected ones)."""
    draft = context.get("draftOrders")
    entries = draft.get("entry") if isinstance(draft, Mapping) else None
    selections = context.get("selections")
    selected = (
        {s for s in selections if isinstance(s, str)} if isinstance(selections, list) else set()
    )
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping) or resource.get("resourceType") != "MedicationRequest":
            continue
        if hook == "order-select" and f"MedicationRequest/{resource.get('id')}" not in selected:
            continue
        yield resource


def _has_content(concept: Any) -> bool:
    if not isinstance(concept, Mapping):
        return False
    codings = concept.get("coding")
    if isinstance(codings, list) and any(
        isinstance(c, Mapping) and (c.get("code") or c.get("display")) for c in codings
    ):
        return True
    text = concept.get("text")
    return isinstance(text, str) and bool(text.strip())


def _kind_of_concepts(concepts: Sequence[Any]) -> MedicationKind:
    named = [c for c in concepts if _has_content(c)]
    if not named:
        return "unknown"
    drugs = {identity.drug for c in named for identity in identify_concept(c)}
    return "anakinra" if ANAKINRA in drugs else "other"


def _medication_kind(medication: Mapping[str, Any]) -> MedicationKind:
    """A Medication resource: its code and its ingredients' codes."""
    concepts: list[Any] = [medication.get("code")]
    ingredients = medication.get("ingredient")
    for ingredient in ingredients if isinstance(ingredients, list) else []:
        if isinstance(ingredient, Mapping):
            concepts.append(ingredient.get("itemCodeableConcept"))
            item = ingredient.get("itemReference")
            if isinstance(item, Mapping) and isinstance(item.get("display"), str):
                concepts.append({"text": item["display"]})
    return _kind_of_concepts(concepts)


def medication_kind(
    resource: Mapping[str, Any], resources: Mapping[str, Mapping[str, Any]] | None = None
) -> MedicationKind:
    """What a draft MedicationRequest is for (see `MedicationKind`).

    `resources` (by `Type/id`) are the data of the call, to follow a `medicationReference`;
    without them a reference to a non-contained Medication is `unknown` unless its display
    names the drug."""
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, Mapping):
        return _kind_of_concepts([concept]) if _has_content(concept) else "none"
    reference = resource.get("medicationReference")
    if not isinstance(reference, Mapping) or not (
        reference.get("reference") or reference.get("display") or reference.get("identifier")
    ):
        return "none"
    display = reference.get("display")
    by_name: MedicationKind = "unknown"
    if isinstance(display, str) and display.strip():
        by_name = _kind_of_concepts([{"text": display}])
        if by_name == "anakinra":
            return by_name
    target = reference.get("reference")
    medication: Mapping[str, Any] | None = None
    if isinstance(target, str) and target.startswith("#"):
        contained = resource.get("contained")
        for item in contained if isinstance(contained, list) else []:
            if (
                isinstance(item, Mapping)
                and item.get("resourceType") == "Medication"
                and item.get("id") == target[1:]
            ):
                medication = item
    elif isinstance(target, str) and resources is not None:
        medication = resources.get(target)
    if medication is not None:
        return _medication_kind(medication)
    # Before the data is read a reference always goes on; after, a display naming another
    # drug is enough to tell.
    return by_name if resources is not None else "unknown"


def has_medication_order(context: Mapping[str, Any], hook: str) -> bool:
    """True when some relevant draft MedicationRequest could be for anakinra.

    The call is skipped (no prefetch, `{"cards": []}`) only when every one is
    recognisably another drug (a code or name that is not anakinra) or names no drug
    yet. A `medicationReference` to a Medication that is not contained always goes on:
    its drug is known only once the data is read."""
    return any(
        medication_kind(resource) in ("anakinra", "unknown")
        for resource in relevant_medication_requests(context, hook)
    )


def medication_reads(context: Mapping[str, Any], hook: str) -> list[str]:
    """`Medication/<id>` references of relevant draft orders, to read when not sent."""
    refs: list[str] = []
    for resource in relevant_medication_requests(context, hook):
        reference = resource.get("medicationReference")
        target = reference.get("reference") if isinstance(reference, Mapping) else None
        if isinstance(target, str) and target.startswith("Medication/"):
            refs.append(target)
    return refs


UNIDENTIFIED_REASON = (
    "the drug of this order could not be identified (its Medication resource was neither "
    "sent nor readable from the EHR), so the policy could not be applied"
)


def unidentified_orders(
    context: Mapping[str, Any], hook: str, resources: Sequence[Mapping[str, Any]]
) -> list[NotEvaluated]:
    """Orders whose drug stays unknown with all the data: each gets a could-not-check card
    (it may be Kineret, and silence would read as "no prior authorization issue")."""
    by_ref = {
        f"{r.get('resourceType')}/{r.get('id')}": r for r in resources if isinstance(r, Mapping)
    }
    return [
        NotEvaluated(f"MedicationRequest/{resource.get('id', 'unknown')}", UNIDENTIFIED_REASON)
        for resource in relevant_medication_requests(context, hook)
        if medication_kind(resource, by_ref) == "unknown"
    ]


def _merge(answer: dict[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    """`answer` with the cards, system actions and extension lists of `more` appended."""
    merged = dict(answer)
    for key in ("cards", "systemActions"):
        if more.get(key):
            merged[key] = [*answer.get(key, []), *more[key]]
    extension = more.get("extension")
    if isinstance(extension, Mapping) and extension:
        combined = dict(answer.get("extension", {}))
        for name, value in extension.items():
            before = combined.get(name)
            combined[name] = (
                [*before, *value] if isinstance(before, list) and isinstance(value, list) else value
            )
        merged["extension"] = combined
    return merged


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
    order_filter: OrderFilter = has_medication_order
    limits: FetchLimits = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.limits = FetchLimits(
            connect_timeout=s.fhir_connect_timeout,
            read_timeout=s.fhir_read_timeout,
            max_next_pages=s.max_next_pages,
            max_queries=s.max_fhir_queries,
            max_concurrent=s.max_concurrent_queries,
            max_response_bytes=s.max_fhir_response_bytes,
        )

    def new_fhir_client(self) -> FhirClient:
        if self.fhir_client_factory is not None:
            return self.fhir_client_factory()
        return RequestsFhirClient(
            monotonic=self.monotonic, pool_size=self.settings.max_concurrent_queries
        )


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


# --- request body -------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def nesting_exceeds(value: Any, limit: int) -> bool:
    """True when arrays / objects in `value` nest more than `limit` deep (`{}` is 1)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def read_json_body(req: Request, max_depth: int) -> Any:
    data = req.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH; kept for feedback
    if not data.strip():
        raise ApiError("the request body is empty: expected a JSON object")
    try:
        body = json.loads(data, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(
            "the request body is not valid JSON",
            details=[{"message": f"{exc.msg} at line {exc.lineno} column {exc.colno}"}],
        ) from exc
    except RecursionError:
        body = None
        too_deep = True
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            "the request body is not valid JSON", details=[{"message": "not UTF-8 JSON text"}]
        ) from exc
    else:
        too_deep = nesting_exceeds(body, max_depth)
    if too_deep:
        raise ApiError(
            f"the request body nests deeper than {max_depth} levels",
            error="too-deep",
        )
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


def validate_request(catalog: Catalog, body: Any) -> None:
    details = validation_details(catalog.validators["request"], body)
    if details:
        first = details[0]
        raise ApiError(
            f"not a valid CDS Hooks request: {first['pointer'] or '/'} {first['message']}",
            error="invalid-request",
            details=details,
        )


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


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    state = get_state()
    service = state.catalog.services.get(service_id)
    if service is None:
        raise ApiError("no CDS service with this id; see GET /cds-services", 404)
    g.cds_service_id = service.id
    body = g.cds_body
    validate_request(state.catalog, body)
    hook_instance = str(body["hookInstance"])
    if _SAFE_TOKEN.match(hook_instance):
        g.cds_hook_instance = hook_instance
    if body["hook"] != service.hook:
        raise ApiError(
            f"service '{service.id}' answers the '{service.hook}' hook only",
            error="wrong-hook",
            details=[{"pointer": "/hook", "message": f'must be "{service.hook}"'}],
        )
    context: Mapping[str, Any] = body["context"]
    check_draft_order_count(context, state.settings.max_draft_orders)
    if not state.order_filter(context, service.hook):
        g.cds_outcome = "no-medication-order"
        return jsonify({"cards": []})

    started: float = g.get("cds_started", state.monotonic())
    result = resolve_prefetch(
        service.prefetch,
        service.required_prefetch,
        body,
        server_allowed=fhir_server_check(state, g.get("cds_principal")),
        client_factory=state.new_fhir_client,
        limits=state.limits,
        deadline=started + state.settings.request_deadline,
        monotonic=state.monotonic,
        also_read=medication_reads(context, service.hook),
    )
    g.cds_prefetch_missing = list(result.missing)
    g.cds_fhir_queries = result.queries

    call = pipeline.CallContext(
        service_id=service.id,
        hook=service.hook,
        hook_instance=hook_instance,
        context=context,
        now=state.clock(),
        uuid_factory=state.uuid_factory,
        missing_prefetch=result.missing,
        fhir_server_used=result.queries > 0,
    )
    answer = pipeline.run(call, result.resources, state.engine)
    unknown = unidentified_orders(context, service.hook, result.resources)
    if unknown:
        answer = _merge(
            answer,
            render_response(
                service.hook,
                unknown,
                settings=state.engine.card_settings,
                uuid_factory=state.uuid_factory,
                now=call.now,
            ),
        )
    problems = validation_details(state.catalog.validators["response"], answer)
    if problems:
        # A response the EHR may not be able to show is a bug here, not a valid answer.
        pointers = [p["pointer"] for p in problems]
        log.error("invalid response", extra={"event": "response-invalid", "pointers": pointers})
        raise RuntimeError("response fails the response schema")
    g.cds_outcome = f"{len(answer.get('cards', []))}-cards"
    _audit(state, call, answer, started)
    return jsonify(answer)


def _patient_ref(context: Mapping[str, Any]) -> str | None:
    patient = context.get("patientId")
    if not isinstance(patient, str) or not _SAFE_TOKEN.match(patient):
        return None
    return patient if patient.startswith("Patient/") else f"Patient/{patient}"


def _audit(
    state: ServiceState, call: pipeline.CallContext, answer: Mapping[str, Any], started: float
) -> None:
    """Record the invocation. A store that fails is logged, and the prescriber still gets
    the cards: losing one audit row is better than hiding a prior-authorization answer."""
    record = InvocationRecord.from_response(
        hook_instance=call.hook_instance,
        service_id=call.service_id,
        hook=call.hook,
        received_at=call.now,
        patient_ref=_patient_ref(call.context),
        response=answer,
        timings_ms={"total": round((state.monotonic() - started) * 1000, 1)},
    )
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
    }
    if isinstance(started, float):
        event["duration_ms"] = round((state.monotonic() - started) * 1000, 1)
    access_log.info("request", extra={k: v for k, v in event.items() if v is not None})
    return response
