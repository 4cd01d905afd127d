"""How `cds-service serve` runs the application: gunicorn with gevent workers.

Why gevent (measured with 32 clients trickling one byte a second into 2 workers): with the
former gthread workers (4 threads each) every thread was held by a trickling client and
signed calls timed out after 10 s; with gevent workers each connection costs a greenlet,
not a thread, so calls are answered while the slow clients wait, and the time a client may
take is bounded:

- request line and headers: `CDS_HEADER_TIMEOUT` seconds (gunicorn's `keepalive`, which
  the gevent worker applies to reading each request's head, the first one included);
  then the connection is closed;
- body: `CDS_BODY_TIMEOUT` seconds from the first read (`http_guard.BodyDeadline`), then a
  408; the body is read only after the caller is authenticated, so a caller without a
  valid token never holds a connection longer than the header timeout;
- connections: at most `CDS_MAX_CONNECTIONS` open per worker; more wait in the listen
  queue;
- `X-Forwarded-Proto` / `SCRIPT_NAME` headers are believed only from `CDS_TRUSTED_PROXIES`
  (gunicorn's `forwarded_allow_ips`; nothing by default, where gunicorn trusts loopback).

`docs/operations.md` describes these and the front proxy settings that go with them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final, NoReturn

from cds_service.config import Settings
from cds_service.http_guard import BodyDeadline, WsgiApp

GEVENT_ENTRY: Final = "cds_service.gevent_serve"
"""The module the serving process starts from (`exec_patched`)."""
LIMIT_REQUEST_LINE = 4094
"""Longest request line (method, path, version) in bytes: 414 beyond (gunicorn)."""
LIMIT_REQUEST_FIELDS = 100
"""Most header fields in a request: 431 beyond (gunicorn)."""
LIMIT_REQUEST_FIELD_SIZE = 8190
"""Longest header field in bytes: 431 beyond (gunicorn)."""


def gunicorn_options(settings: Settings, *, host: str, port: int, workers: int) -> dict[str, Any]:
    """The gunicorn settings of `cds-service serve` (hooks and the logger are added by it)."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gevent",
        "worker_connections": settings.max_connections,
        "keepalive": settings.header_timeout,
        # Above the per-call deadline, so a slow FHIR server ends the call, not the worker.
        "timeout": max(30, int(settings.request_deadline * 4), int(settings.call_deadline * 2)),
        "graceful_timeout": 10,
        "preload_app": True,
        "limit_request_line": LIMIT_REQUEST_LINE,
        "limit_request_fields": LIMIT_REQUEST_FIELDS,
        "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
        "forwarded_allow_ips": ",".join(settings.trusted_proxies),
        # The app logs one JSON event per request (`request`), gunicorn one access line
        # (`access`); both JSON on standard error with the request id (cli.py's logger).
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "control_socket_disable": True,
        # Nagle's algorithm is already off: gunicorn sets TCP_NODELAY on its listening
        # sockets, and the connections it accepts inherit it.
    }


def gevent_timer(seconds: float, error: Exception) -> AbstractContextManager[object]:
    """A gevent timeout raising `error` in the greenlet that blocks past `seconds`."""
    import gevent

    timeout: AbstractContextManager[object] = gevent.Timeout(seconds, error)
    return timeout


def served_app(app: WsgiApp, settings: Settings) -> WsgiApp:
    """`app` as the gevent workers run it: request bodies read within `CDS_BODY_TIMEOUT`."""
    return BodyDeadline(
        app, seconds=settings.body_timeout, timer=gevent_timer, monotonic=time.monotonic
    )


def gevent_patched() -> bool:
    """True in the serving process: the standard library was made cooperative first."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


def exec_patched(serve_args: Sequence[str]) -> NoReturn:
    """Replace this process (same pid, so a supervisor's signals still reach it) by
    `python -m cds_service.gevent_serve SERVE_ARGS`, which patches the standard library
    before it imports anything else: sockets, `ssl`, threads, locks and `select` are then
    gevent's everywhere, the database driver picks its gevent-friendly wait, and the FHIR
    client's TLS sockets cooperate. Patching later (after `requests` imported `ssl`) would
    leave some blocking. This package is put first on PYTHONPATH so the same code runs."""
    package_parent = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", GEVENT_ENTRY, *serve_args], env)  # noqa: S606 - fixed program, no shell
