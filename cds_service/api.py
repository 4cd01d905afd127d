"""HTTP endpoints: discovery and the service call. A thin controller.

POST /cds-services/<id>
  unknown id (404) -> authenticate (401) -> JSON body (400 / 413) -> schema (400)
  -> hook matches the service (400) -> no medication order: {"cards": []}
  -> prefetch, fetching what is missing (412 when required data cannot be had)
  -> pipeline.run -> response checked against the response schema -> 200
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Request, Response, current_app, g, jsonify, request
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from cds_service import pipeline
from cds_service.config import Settings
from cds_service.errors import ApiError
from cds_service.hooks import Catalog, ServiceDefinition
from cds_service.prefetch import (
    FetchLimits,
    FhirClient,
    RequestsFhirClient,
    resolve_prefetch,
)
from cds_service.store import AuditStore, InvocationRecord

EXTENSION_KEY = "cds_service"
log = logging.getLogger("cds_service.api")
access_log = logging.getLogger("cds_service.access")
MAX_DETAILS = 20

Authenticator = Callable[[Request, ServiceDefinition], None]
"""Checks the caller of a service; returns to accept, raises `ApiError(..., 401)` to refuse."""

OrderFilter = Callable[[Mapping[str, Any], str], bool]
"""(context, hook) -> does this call carry an order the service should evaluate?"""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_uuid() -> str:
    return str(uuid.uuid4())


def has_medication_order(context: Mapping[str, Any], hook: str) -> bool:
    """True when the draft orders hold a MedicationRequest with a medication chosen
    (for order-select: among the selected orders). An order-select fired before any
    drug is picked, or an order-sign of an order with no medication, has nothing to
    evaluate."""
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
        if _names_a_medication(resource):
            return True
    return False


def _names_a_medication(resource: Mapping[str, Any]) -> bool:
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, Mapping):
        codings = concept.get("coding")
        if isinstance(codings, list) and any(
            isinstance(c, Mapping) and (c.get("code") or c.get("display")) for c in codings
        ):
            return True
        text = concept.get("text")
        if isinstance(text, str) and text.strip():
            return True
    reference = resource.get("medicationReference")
    return isinstance(reference, Mapping) and bool(
        reference.get("reference") or reference.get("display") or reference.get("identifier")
    )


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
    authenticator: Authenticator | None = None
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


def authenticate(req: Request, service: ServiceDefinition) -> None:
    """The authentication seam. `CDS_AUTH=disabled` accepts every caller (local use);
    otherwise the installed authenticator decides, and with none installed every call
    is refused: an enabled check never passes silently."""
    state = get_state()
    if state.settings.auth == "disabled":
        return
    if state.authenticator is None:
        raise ApiError(
            "authentication is enabled but no verifier is configured on this server",
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    state.authenticator(req, service)


# --- request body -------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def read_json_body(req: Request) -> Any:
    data = req.get_data(cache=False)  # 413 past MAX_CONTENT_LENGTH
    if not data.strip():
        raise ApiError("the request body is empty: expected a CDS Hooks request in JSON")
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(
            "the request body is not valid JSON",
            details=[{"message": f"{exc.msg} at line {exc.lineno} column {exc.colno}"}],
        ) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            "the request body is not valid JSON", details=[{"message": "not UTF-8 JSON text"}]
        ) from exc


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


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    state = get_state()
    service = state.catalog.services.get(service_id)
    if service is None:
        raise ApiError("no CDS service with this id; see GET /cds-services", 404)
    g.cds_service_id = service.id
    authenticate(request, service)

    body = read_json_body(request)
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
    if not state.order_filter(context, service.hook):
        g.cds_outcome = "no-medication-order"
        return jsonify({"cards": []})

    started: float = g.get("cds_started", state.monotonic())
    result = resolve_prefetch(
        service.prefetch,
        service.required_prefetch,
        body,
        allowed_servers=state.settings.fhir_servers,
        client_factory=state.new_fhir_client,
        limits=state.limits,
        deadline=started + state.settings.request_deadline,
        monotonic=state.monotonic,
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


@bp.before_app_request
def _start_timer() -> None:
    g.cds_started = get_state().monotonic()


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
