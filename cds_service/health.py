"""Health endpoints for orchestration: no authentication, no data, cheap.

    GET /health/live    200 {"status": "live"}: the process answers HTTP.
    GET /health/ready   200 {"status": "ready"}: policy packs are loaded and the audit
                        database answered `SELECT 1` within `CDS_READY_TIMEOUT` seconds;
                        503 {"status": "not-ready", "reason": CODE} otherwise, CODE one of
                        `no-policy-packs`, `database-unreachable`, `database-timeout`.

The reason is a fixed code, never the driver's message (which can name hosts, users or
files). One database probe runs at a time per worker process: while one is still waiting
on a database that does not answer, readiness says `database-timeout` at once instead of
starting another, and a result is reused for `PROBE_REUSE_SECONDS` so frequent probes
(or a caller hammering the endpoint) cost at most one query a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Final

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import Engine, text

from cds_service.audit_writer import audit_status
from cds_service.replay_fallback import replay_status

PROBE_REUSE_SECONDS: Final = 1.0
HEALTH_KEY: Final = "cds_health_probe"

health_blueprint = Blueprint("health", __name__)


class DatabaseProbe:
    """`check()`: None when the database answers within `timeout`, else a reason code."""

    def __init__(
        self,
        engine: Engine,
        timeout: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._timeout = timeout
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._pending: Future[str | None] | None = None
        self._last: tuple[float, str | None] | None = None

    def _probe(self, future: Future[str | None]) -> None:
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # any failure means "not reachable"; its message is not shown
            result: str | None = "database-unreachable"
        else:
            result = None
        with self._lock:
            self._last = (self._monotonic(), result)
        future.set_result(result)

    def check(self) -> str | None:
        with self._lock:
            now = self._monotonic()
            if self._last is not None and now - self._last[0] < PROBE_REUSE_SECONDS:
                return self._last[1]
            if self._pending is not None and not self._pending.done():
                return "database-timeout"  # the previous probe still waits for an answer
            future: Future[str | None] = Future()
            self._pending = future
        threading.Thread(
            target=self._probe, args=(future,), name="readiness-probe", daemon=True
        ).start()
        try:
            return future.result(timeout=self._timeout)
        except FutureTimeout:
            return "database-timeout"


def readiness_problem(pack_count: int, probe: DatabaseProbe) -> str | None:
    """The first reason the service is not ready, or None."""
    if pack_count < 1:
        return "no-policy-packs"
    return probe.check()


@health_blueprint.get("/health/live")
def live() -> Response:
    return jsonify({"status": "live"})


@health_blueprint.get("/health/ready")
def ready() -> tuple[Response, int]:
    from cds_service.api import get_state

    state = get_state()
    probe = current_app.extensions[HEALTH_KEY]
    assert isinstance(probe, DatabaseProbe)
    reason = readiness_problem(len(state.engine.registry.packs), probe)
    # The audit queue's counters (written, delayed, dropped, ...) of the worker that answers:
    # numbers only, no record content.
    audit = audit_status(current_app.extensions)
    extra = {} if audit is None else {"audit": audit}
    replay = replay_status(current_app.extensions)  # with authentication on
    if replay is not None:
        extra["replay"] = replay
    if reason is not None:
        return jsonify({"status": "not-ready", "reason": reason, **extra}), 503
    return jsonify({"status": "ready", **extra}), 200
