"""CDS Hooks 2.0.1 feedback endpoint: `POST /cds-services/<service_id>/feedback`.

The body is validated against `hooks/schemas/feedback.schema.json` (400 with a
JSON body naming each problem), the service id against
`current_app.config["CDS_SERVICE_IDS"]` when that is set (404), and the items
go to `current_app.extensions["audit_store"]` (503 when no store is set up or it
fails: the EHR may send the feedback again).
Success is 200 `{}`, also for a repeated delivery or an unknown card uuid (the
store reports those; only their counts are logged, never comments or codes).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from jsonschema import Draft202012Validator
from sqlalchemy.exc import SQLAlchemyError

from cds_service.audit_writer import AuditWriter
from cds_service.resources import default_hooks_dir
from cds_service.store import AuditStore

log = logging.getLogger(__name__)

feedback_blueprint = Blueprint("cds_feedback", __name__)

FEEDBACK_FLUSH_SECONDS = 1.0
"""Longest wait for queued audit records before feedback is stored."""

DEFAULT_SCHEMA = default_hooks_dir() / "schemas" / "feedback.schema.json"


@lru_cache(maxsize=4)
def _validator(path: str) -> Draft202012Validator:
    with open(path, encoding="utf-8") as handle:
        schema = json.load(handle)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _schema_path() -> str:
    hooks_dir = current_app.config.get("CDS_HOOKS_DIR")
    if hooks_dir:
        return str(Path(hooks_dir) / "schemas" / "feedback.schema.json")
    return str(DEFAULT_SCHEMA)


def _error(status: int, message: str, problems: list[str] | None = None) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": message}
    if problems:
        body["problems"] = problems
    return jsonify(body), status


def _location(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(body)"


@feedback_blueprint.post("/cds-services/<service_id>/feedback")
def receive_feedback(service_id: str) -> tuple[Response, int]:
    known = current_app.config.get("CDS_SERVICE_IDS")
    if known is not None and service_id not in known:
        return _error(404, f"no CDS service with id {service_id!r}")
    # The body as the guard read it (lone surrogates replaced); parsed here without one.
    body = g.cds_body if "cds_body" in g else request.get_json(silent=True)
    if body is None:
        return _error(400, "the request body must be a JSON object")
    errors = sorted(_validator(_schema_path()).iter_errors(body), key=lambda e: list(e.path))
    if errors:
        problems = [f"{_location(e.path)}: {e.message}" for e in errors[:20]]
        return _error(400, "invalid feedback", problems)
    store = current_app.extensions.get("audit_store")
    if not isinstance(store, AuditStore):
        return _error(503, "feedback cannot be stored right now")
    writer = current_app.extensions.get("audit_writer")
    if isinstance(writer, AuditWriter):
        # Feedback can follow its card within moments: let the card's record land first.
        writer.flush(timeout=FEEDBACK_FLUSH_SECONDS)
    try:
        result = store.record_feedback(service_id, body["feedback"])
    except SQLAlchemyError as exc:
        log.error(
            "feedback not stored: the audit store failed",
            extra={"event": "feedback-failed", "error": type(exc).__name__},
        )
        return _error(503, "feedback cannot be stored right now")
    log.info(
        "feedback service=%s stored=%d duplicates=%d unknown_cards=%d",
        service_id,
        result.stored,
        result.duplicates,
        len(result.unknown_cards),
    )
    return jsonify({}), 200
