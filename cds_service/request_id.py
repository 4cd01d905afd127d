"""A request id for every HTTP request, in every log line about it.

Each request gets an id: the caller's `X-Request-Id` when it is a short plain token (so a
front proxy's id, e.g. nginx `$request_id`, carries through), else a new random one. The
answer carries it back in `X-Request-Id`; the app's log lines written while the request is
handled, and gunicorn's access line for it, carry it as `request_id`. Lines that belong to
no request (start-up, shutdown, the audit writer) carry `"request_id": null`.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from flask import Flask

REQUEST_ID_HEADER: Final = "X-Request-Id"
ENVIRON_KEY: Final = "cds.request_id"
"""Where the id is kept in the WSGI environ (gunicorn's access log reads it there)."""
_ACCEPTED: Final = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def choose_request_id(incoming: str | None, new: Callable[[], str]) -> str:
    """The caller's id when it is a plain token of 8 to 64 characters, else `new()`:
    nothing else a caller sends reaches a log line."""
    if incoming is not None and _ACCEPTED.match(incoming):
        return incoming
    return new()


def _new_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the request being handled in this thread / greenlet; None outside one."""
    from flask import has_request_context, request

    if not has_request_context():
        return None
    value = request.environ.get(ENVIRON_KEY)
    return value if isinstance(value, str) else None


class RequestIdFilter(logging.Filter):
    """Puts `request_id` on every record (None outside a request), for the JSON lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(getattr(record, "request_id", None), str):
            record.request_id = current_request_id()
        return True


def install(app: Flask) -> None:
    """Give each request of `app` its id first of all, and send it back in the answer."""
    from flask import Response, request

    def assign() -> None:
        request.environ[ENVIRON_KEY] = choose_request_id(
            request.headers.get(REQUEST_ID_HEADER), _new_id
        )

    def answer(response: Response) -> Response:
        request_id = request.environ.get(ENVIRON_KEY)
        if isinstance(request_id, str):
            response.headers[REQUEST_ID_HEADER] = request_id
        return response

    app.before_request_funcs.setdefault(None, []).insert(0, assign)
    app.after_request(answer)


def access_fields(
    environ: Mapping[str, Any], status: int | None, sent: int | None, seconds: float
) -> dict[str, Any]:
    """gunicorn's access line for one request: what was asked (never the query string,
    headers or body), how it ended, how long it took and its request id."""
    return {
        "event": "access",
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"),
        "status": status,
        "bytes": sent,
        "duration_ms": round(seconds * 1000, 1),
        "request_id": environ.get(ENVIRON_KEY),
    }
