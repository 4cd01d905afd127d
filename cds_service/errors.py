"""Every error the service returns is JSON, and none carries a stack trace.

One exception class, `ApiError`, with a status code and `to_dict()`; `register` installs
the handlers once: for `ApiError`, for Flask / Werkzeug HTTP errors (404, 405, 413 ...)
and for anything unexpected (500, logged server-side without message or request data).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("cds_service.errors")

_ERROR_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    408: "request-timeout",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
}


def error_code(status: int) -> str:
    return _ERROR_CODES.get(status, "error" if status >= 500 else "client-error")


class ApiError(Exception):
    """An error answer: `{"error": code, "message": text, "details": [...]}`.

    `details` items are small JSON objects, e.g. `{"pointer": "/context/patientId",
    "message": "is a required property"}`. Messages never hold tokens or patient data.
    """

    status_code: int = 400

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        *,
        error: str | None = None,
        details: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code
        self.message = message
        self.error = error or error_code(self.status_code)
        self.details = [dict(item) for item in details]
        self.headers = dict(headers or {})

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.details:
            body["details"] = self.details
        if self.status_code in (400, 422):
            body["operationOutcome"] = operation_outcome(self.message, self.details)
        return body


def operation_outcome(message: str, details: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The FHIR OperationOutcome that Da Vinci CRD asks for with a request the service
    refuses as invalid (400 / 422): one issue per detail (its JSON pointer as the
    expression), else one for the whole request."""
    issues = [
        {
            "severity": "error",
            "code": "invalid",
            "diagnostics": str(item.get("message", message)),
            **({"expression": [str(item["pointer"])]} if item.get("pointer") else {}),
        }
        for item in details
    ] or [{"severity": "error", "code": "invalid", "diagnostics": message}]
    return {"resourceType": "OperationOutcome", "issue": issues}


def _json(
    body: Mapping[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> Response:
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _handle_api_error(exc: ApiError) -> Response:
    return _json(exc.to_dict(), exc.status_code, exc.headers)


def _handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    headers = {name: value for name, value in exc.get_headers() if name.lower() == "allow"}
    message = {
        404: "no such endpoint",
        405: "method not allowed on this endpoint",
        413: "request body too large",
    }.get(status, exc.name.lower())
    return _json({"error": error_code(status), "message": message}, status, headers)


def _handle_unexpected(exc: Exception) -> Response:
    # The exception's message may echo request data, so only its type and the code
    # locations are logged.
    frames = [
        f"{frame.filename}:{frame.lineno}:{frame.name}"
        for frame in traceback.extract_tb(exc.__traceback__)
    ]
    log.error(
        "unhandled error",
        extra={"event": "error", "exception": type(exc).__name__, "frames": frames[-8:]},
    )
    return _json({"error": error_code(500), "message": "internal error"}, 500)


def register(app: Flask) -> None:
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
