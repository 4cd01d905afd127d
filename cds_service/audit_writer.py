"""The audit write, off the reply path: a bounded in-process queue drained by one writer
thread per worker process.

A call's answer never waits for the database. `AuditWriter.submit` puts the call's record
in the queue and returns at once; the writer thread stores it, lingering `linger` seconds
(50 ms) for more records so that a busy worker writes them in batches. While the database
cannot be written (down, hung, locked), the record at the head of the queue is tried again with
a growing pause (at most `retry_max` seconds) and every record waits in the queue, up to
`capacity`; when the database answers again the queue is written in order (catch-up).

Nothing audited is lost without a count and a log line:
- `dropped`: the queue was full when the call ended, so its record was never queued;
- `rejected`: the database refused the record itself (not an outage), so trying again
  would not help;
- `unwritten`: records still queued when the process stopped and the shutdown wait
  (`close`) ran out;
- `delayed`: records whose first write failed (written later, or counted above).
Each lost record is logged with its hookInstance and service id (never patient data);
an outage is logged when it starts and when the queue has caught up.

The queue is flushed on shutdown: `close` is registered with `atexit`, which runs when a
gunicorn worker exits (it ends with `sys.exit`) and when any other process ends normally.
`flush` waits until everything submitted so far is stored or counted (tests use it
before reading the store). `status()` is what an operator sees (the readiness endpoint
shows it): counters, queue length, whether the last write succeeded.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from cds_service.store import InvocationRecord

log = logging.getLogger("cds_service.audit")

_SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeoutError,
)
"""Failures of the database rather than of the record: the record is kept and retried."""
IDLE_SECONDS = 60.0
"""A writer thread with nothing to write for this long ends (the next record starts one)."""


@dataclass(frozen=True)
class AuditStatus:
    """What the audit queue of one worker process has done since it started."""

    queued: int
    """Records waiting to be written now."""
    capacity: int
    written: int
    delayed: int
    dropped: int
    rejected: int
    unwritten: int
    database: str
    """"ok" (the last write succeeded), "failing" (the last write failed: records wait),
    or "unknown" (nothing written yet)."""
    last_error: str | None
    """The type of the last write failure (no message: it can quote the record)."""
    oldest_queued_seconds: float | None
    """How long the oldest queued record has waited."""

    @property
    def lost(self) -> int:
        return self.dropped + self.rejected + self.unwritten

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lost": self.lost}


@dataclass
class _Item:
    record: InvocationRecord
    queued_at: float
    delayed: bool = False


def _label(record: InvocationRecord) -> dict[str, str]:
    """Log fields naming a record without patient data."""
    fields = {"service": record.service_id if _SAFE.match(record.service_id) else "-"}
    fields["hookInstance"] = record.hook_instance if _SAFE.match(record.hook_instance) else "-"
    return fields


class AuditWriter:
    """See the module docstring. `write` stores records in one transaction, all or none
    (`AuditStore.record_invocations`); up to `batch_size` queued records go at once."""

    def __init__(
        self,
        write: Callable[[Sequence[InvocationRecord]], object],
        *,
        capacity: int = 10_000,
        batch_size: int = 100,
        shutdown_timeout: float = 10.0,
        retry_initial: float = 0.05,
        retry_max: float = 2.0,
        linger: float = 0.05,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._batch_size = batch_size
        self._linger = linger
        self._flushing = 0
        self._capacity = capacity
        self._shutdown_timeout = shutdown_timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._queue: collections.deque[_Item] = collections.deque()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stopping = False
        self._accepted = 0
        self._settled = 0
        self._counts = dict.fromkeys(("written", "delayed", "dropped", "rejected", "unwritten"), 0)
        self._database = "unknown"
        self._last_error: str | None = None
        _WRITERS.add(self)

    # -- the reply path -------------------------------------------------------------

    def submit(self, record: InvocationRecord) -> bool:
        """Queue `record`; False (counted, logged) when the queue is full or closed."""
        with self._cond:
            self._ensure_thread()
            if self._stopping or len(self._queue) >= self._capacity:
                self._counts["dropped"] += 1
                dropped = self._counts["dropped"]
                reason = "stopping" if self._stopping else "queue-full"
            else:
                self._queue.append(_Item(record, self._monotonic()))
                self._accepted += 1
                self._cond.notify_all()
                return True
        log.error(
            "audit record not written: "
            + ("the service is stopping" if reason == "stopping" else "the audit queue is full"),
            extra={"event": "audit-record-lost", "reason": reason, "dropped": dropped}
            | _label(record),
        )
        return False

    # -- operators and tests --------------------------------------------------------

    def status(self) -> AuditStatus:
        with self._cond:
            oldest = round(self._monotonic() - self._queue[0].queued_at, 3) if self._queue else None
            return AuditStatus(
                queued=len(self._queue),
                capacity=self._capacity,
                database=self._database,
                last_error=self._last_error,
                oldest_queued_seconds=oldest,
                **self._counts,
            )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record submitted before this call is written or counted as
        lost; False when `timeout` seconds were not enough (the database is failing)."""
        end = time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            self._flushing += 1  # the writer stops lingering
            self._cond.notify_all()
            try:
                while self._settled < target:
                    left = end - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float | None = None) -> AuditStatus:
        """Write what is queued (waiting at most `timeout` seconds, default the
        `shutdown_timeout`), then stop; what is left is counted and logged as unwritten."""
        wait = self._shutdown_timeout if timeout is None else timeout
        with self._cond:
            running = self._thread is not None and self._pid == os.getpid()
        if running:
            self.flush(wait)
        with self._cond:
            self._stopping = True
            left = list(self._queue)
            self._queue.clear()
            self._counts["unwritten"] += len(left)
            self._settled += len(left)
            self._cond.notify_all()
        for item in left:
            log.error(
                "audit record not written before shutdown",
                extra={"event": "audit-record-lost", "reason": "shutdown"} | _label(item.record),
            )
        return self.status()

    def at_exit(self) -> None:
        """Close the queue of this process (see `_close_all`)."""
        with self._cond:
            mine = self._thread is not None and self._pid == os.getpid() and not self._stopping
        if mine:
            status = self.close()
            log.info("audit queue closed", extra={"event": "audit-closed", **status.as_dict()})

    # -- the writer thread ----------------------------------------------------------

    def _ensure_thread(self) -> None:
        """Start the writer in this process (after a fork the parent's thread is gone)."""
        if self._thread is not None and self._pid == os.getpid():
            return
        if self._pid != os.getpid():  # a forked child: the parent's queue is the parent's
            self._pid = os.getpid()
            self._queue.clear()
            self._accepted = self._settled = 0
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pause = self._retry_initial
        while True:
            with self._cond:
                if not self._queue and not self._stopping:
                    self._cond.wait(IDLE_SECONDS)
                if not self._queue:
                    if not self._stopping:  # idle: the next submit starts a new thread
                        self._thread = None
                    return
                # Linger a moment for more records: a batch costs about what one record
                # costs, so a busy worker spends far less on its audit writes.
                self._cond.wait_for(self._batch_ready, self._linger)
                batch = list(itertools.islice(self._queue, self._batch_size))
            error = self._try(batch)
            if error is not None and not isinstance(error, OUTAGE_ERRORS) and len(batch) > 1:
                error = self._one_by_one(batch)
            elif error is None or not isinstance(error, OUTAGE_ERRORS):
                self._settle(batch, error)
            if error is None or not isinstance(error, OUTAGE_ERRORS):
                pause = self._retry_initial
                continue
            with self._cond:
                if not self._stopping:
                    self._cond.wait(pause)
            pause = min(self._retry_max, pause * 2)

    def _batch_ready(self) -> bool:
        return len(self._queue) >= self._batch_size or self._stopping or self._flushing > 0

    def _one_by_one(self, batch: list[_Item]) -> Exception | None:
        """Write a batch the database refused one record at a time, so that only the
        record it refuses is lost; an outage meanwhile stops (the rest stays queued)."""
        for item in batch:
            error = self._try([item])
            if isinstance(error, OUTAGE_ERRORS):
                return error
            self._settle([item], error)
        return None

    def _try(self, batch: list[_Item]) -> Exception | None:
        try:
            self._write([item.record for item in batch])
        except Exception as exc:  # any failure is counted and logged, never raised here
            if isinstance(exc, OUTAGE_ERRORS):
                self._failed(batch, exc)
            return exc
        return None

    def _settle(self, batch: list[_Item], error: Exception | None) -> None:
        """The head records are done: written, or (one) refused by the database itself."""
        recovered = 0
        with self._cond:
            done = 0
            for item in batch:
                if not self._queue or self._queue[0] is not item:
                    break  # close() took the rest meanwhile and counted it as unwritten
                self._queue.popleft()
                done += 1
            self._settled += done
            if error is None:
                self._counts["written"] += done
                if self._database == "failing" and done:
                    recovered = self._counts["delayed"]
                self._database = "ok"
            else:
                self._counts["rejected"] += done
                self._last_error = type(error).__name__
            self._cond.notify_all()
            queued = len(self._queue)
        if error is not None:
            for item in batch[:done]:
                log.error(
                    "audit record refused by the database",
                    extra={
                        "event": "audit-record-lost",
                        "reason": "rejected",
                        "error": type(error).__name__,
                    }
                    | _label(item.record),
                )
        elif recovered:
            log.warning(
                "audit store writable again; queued records are being written",
                extra={"event": "audit-recovered", "queued": queued, "delayed": recovered},
            )

    def _failed(self, batch: list[_Item], error: Exception) -> None:
        with self._cond:
            first_failure = self._database != "failing"
            self._database = "failing"
            self._last_error = type(error).__name__
            for item in batch:
                if not item.delayed:
                    item.delayed = True
                    self._counts["delayed"] += 1
            queued = len(self._queue)
        if first_failure:
            log.error(
                "audit store write failed; records wait in the audit queue",
                extra={
                    "event": "audit-failing",
                    "error": type(error).__name__,
                    "queued": queued,
                    "capacity": self._capacity,
                },
            )


_WRITERS: weakref.WeakSet[AuditWriter] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """At process exit (a gunicorn worker ends with `sys.exit`): write what is queued."""
    for writer in list(_WRITERS):
        writer.at_exit()


def audit_status(extensions: Mapping[str, Any]) -> dict[str, Any] | None:
    """The audit queue's counters of this worker for `app.extensions` (None without one):
    for the readiness endpoint."""
    writer = extensions.get("audit_writer")
    return writer.status().as_dict() if isinstance(writer, AuditWriter) else None


__all__ = ["OUTAGE_ERRORS", "AuditStatus", "AuditWriter", "audit_status"]
