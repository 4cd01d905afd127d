"""The token replay check while the database that keeps token ids cannot be reached.

With authentication on, each call's token id (`jti`) is recorded in the database
(`cds_service.auth.StoreReplayGuard`, the `jwt_ids` table), so that a token is accepted
once by every worker and replica. When that database fails (unreachable, or hung and
ended by the store's timeouts), `FallbackReplayGuard` keeps the service answering for a
bounded window instead of refusing every call:

- from the first failure, for at most `CDS_REPLAY_FALLBACK_SECONDS` (default 300; 0:
  never), the worker remembers the ids it accepts in its own memory: a token that comes
  back to the same worker is still refused, one replayed to another worker or replica in
  that window is not (the weaker guarantee, for minutes, that keeps prescribers answered);
- calls do not wait for the failing database: one background attempt every
  `RETRY_SECONDS` writes the ids accepted meanwhile, and when it succeeds the database is
  used again (those ids are then refused everywhere; an id the database already knew is
  counted as a replay found after the outage);
- past the window the worker refuses (`ReplayCheckUnavailable`: 503 with Retry-After)
  until the database answers again: nothing is accepted unchecked for long;
- the start and the end of an outage are logged once each (`replay-store-failing`,
  `replay-store-recovered`), never a token or an id, and `status()` gives the counters
  (shown by `/health/ready` as `replay`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError

from cds_service.auth import InMemoryReplayGuard, ReplayGuard

log = logging.getLogger("cds_service.auth")

RETRY_SECONDS: Final = 2.0
"""How often, while the database fails, one background attempt to reach it is made."""
MAX_REMEMBERED: Final = 100_000
"""Ids one worker keeps during an outage; beyond, calls are refused (503)."""
PROBE_ISSUER: Final = "urn:cds-service:replay-probe"
"""The issuer of the short-lived id written to learn whether the database is back (no
token carries it)."""
REPLAY_GUARD_KEY: Final = "replay_guard"
"""Where `create_app` keeps the guard in `app.extensions`."""


class ReplayCheckUnavailable(Exception):  # noqa: N818 (an outcome, not a bug)
    """The replay record cannot be reached and the fallback window is over (or off)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("the token replay record cannot be reached")
        self.retry_after = retry_after


class FallbackReplayGuard:
    """A `ReplayGuard` over the database one, with a bounded in-memory fallback."""

    def __init__(
        self,
        store: ReplayGuard,
        *,
        window_seconds: float,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self._store = store
        self._window = window_seconds
        self._wall = wall_clock
        self._monotonic = monotonic
        self._retry = retry_seconds
        self._lock = threading.Lock()
        self._failing_since: float | None = None
        self._next_attempt = 0.0
        self._attempting = False
        self._local = InMemoryReplayGuard(wall_clock)
        self._pending: list[tuple[str, str, float]] = []
        self._counts = {
            "outages": 0,
            "accepted_during_outage": 0,
            "refused_during_outage": 0,
            "replays_found_after_outage": 0,
        }

    def remember(self, issuer: str, jti: str, expires_at: float) -> bool:
        with self._lock:
            if self._failing_since is not None:
                return self._fallback(issuer, jti, expires_at)
        try:
            return self._store.remember(issuer, jti, expires_at)
        except SQLAlchemyError as exc:
            with self._lock:
                if self._failing_since is None:
                    self._failing_since = self._monotonic()
                    self._next_attempt = self._failing_since + self._retry
                    self._counts["outages"] += 1
                    log.error(
                        "token replay record unavailable: accepting tokens checked in this "
                        "worker's memory only, for at most the fallback window",
                        extra={
                            "event": "replay-store-failing",
                            "error": type(exc).__name__,
                            "window_seconds": self._window,
                        },
                    )
                return self._fallback(issuer, jti, expires_at)

    def _fallback(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Under the lock, while the database fails."""
        assert self._failing_since is not None
        now = self._monotonic()
        if not self._attempting and now >= self._next_attempt:
            self._attempting = True
            threading.Thread(target=self._reconnect, name="replay-reconnect", daemon=True).start()
        late = now - self._failing_since >= self._window
        if late or len(self._pending) >= MAX_REMEMBERED:
            self._counts["refused_during_outage"] += 1
            raise ReplayCheckUnavailable(retry_after=max(1, round(self._retry)))
        if not self._local.remember(issuer, jti, expires_at):
            return False
        self._pending.append((issuer, jti, expires_at))
        self._counts["accepted_during_outage"] += 1
        return True

    def _reconnect(self) -> None:
        """In the background: write the ids accepted during the outage (or a probe id);
        when the database takes them, use it again."""
        written = 0
        while True:
            with self._lock:
                batch = self._pending[written:]
            try:
                if not batch and written == 0:
                    self._store.remember(PROBE_ISSUER, uuid.uuid4().hex, self._wall() + 1)
                for issuer, jti, expires_at in batch:
                    if not self._store.remember(issuer, jti, expires_at):
                        with self._lock:
                            self._counts["replays_found_after_outage"] += 1
            except SQLAlchemyError:
                with self._lock:
                    self._attempting = False
                    self._next_attempt = self._monotonic() + self._retry
                return
            written += len(batch)
            with self._lock:
                if len(self._pending) > written:
                    continue  # accepted while these were written
                assert self._failing_since is not None
                outage = round(self._monotonic() - self._failing_since, 1)
                log.warning(
                    "token replay record reachable again",
                    extra={
                        "event": "replay-store-recovered",
                        "outage_seconds": outage,
                        "accepted_during_outage": written,
                        "replays_found_after_outage": self._counts["replays_found_after_outage"],
                    },
                )
                self._failing_since = None
                self._attempting = False
                self._pending.clear()
                self._local = InMemoryReplayGuard(self._wall)
                return

    def status(self) -> dict[str, Any]:
        """Counters since the worker started, and whether the database is failing now."""
        with self._lock:
            failing = self._failing_since
            return {
                "store": "ok" if failing is None else "failing",
                "fallback_window_seconds": self._window,
                "outage_seconds": None
                if failing is None
                else round(self._monotonic() - failing, 1),
                **self._counts,
            }


def replay_status(extensions: dict[str, Any]) -> dict[str, Any] | None:
    """The counters of the app's replay guard (None with authentication off)."""
    guard = extensions.get(REPLAY_GUARD_KEY)
    return guard.status() if isinstance(guard, FallbackReplayGuard) else None
