"""Every line the service writes, as one JSON object (docs/operations.md "Logs").

The fields, in this order: `message` (what happened, in words: a person reading the terminal
reads it first), `level`, `ts`, `logger`, `request_id` (None outside a request), then the
line's own fields (`event`, ...). An exception adds `exception` (its type) and `traceback`
(where it happened: `file:line:function`, innermost last), never the exception's message or
local values, which can carry request data.

The serving process (`cds_service.gevent_serve`) also calls `install_process_hooks`, so that
what does not go through `logging` comes out as JSON too: uncaught exceptions (main thread,
other threads, gevent greenlets), warnings, exceptions ignored at shutdown, and any plain text
a library prints on standard output or error (gunicorn prints a crashed worker's exception
there): each such line becomes `{"message": <the line>, "logger": "stderr" | "stdout", ...}`.
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, TextIO

_RECORD_FIELDS: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
}
_FIXED: Final = ("message", "level", "ts", "logger", "request_id")
TRACEBACK_FRAMES: Final = 30
"""At most this many frames (the innermost) in a `traceback` field."""


def timestamp(created: float) -> str:
    """`created` (seconds since the epoch) as UTC ISO 8601 with milliseconds."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def traceback_frames(tb: TracebackType | None) -> list[str]:
    """Where an exception happened, `file:line:function` per frame, innermost last: code
    locations only (no source text, no values)."""
    frames = [f"{f.filename}:{f.lineno}:{f.name}" for f in traceback.extract_tb(tb)]
    return frames[-TRACEBACK_FRAMES:]


def exception_fields(
    exc_type: type[BaseException] | None, tb: TracebackType | None
) -> dict[str, Any]:
    """`exception` (the type's name) and `traceback` (code locations) of an exception."""
    if exc_type is None:
        return {}
    return {"exception": exc_type.__name__, "traceback": traceback_frames(tb)}


def json_line(
    message: str,
    *,
    level: str,
    logger: str,
    created: float,
    request_id: str | None = None,
    fields: Mapping[str, Any] | None = None,
) -> str:
    """One log line: `message` first, then level, time, logger, request id, `fields`."""
    line: dict[str, Any] = {
        "message": message,
        "level": level,
        "ts": timestamp(created),
        "logger": logger,
        "request_id": request_id,
    }
    for key, value in (fields or {}).items():
        if key not in _FIXED:
            line[key] = value
    return json.dumps(line, default=str, separators=(",", ":"))


class JsonLineFormatter(logging.Formatter):
    """A log record as one JSON line (`json_line`); its `extra` fields follow the fixed ones."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            key: value
            for key, value in vars(record).items()
            if key not in _RECORD_FIELDS and not key.startswith("_")
        }
        request_id = fields.pop("request_id", None)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception's type and code locations: its message can carry request data.
            fields.update(exception_fields(record.exc_info[0], record.exc_info[2]))
        return json_line(
            record.getMessage(),
            level=record.levelname.lower(),
            logger=record.name,
            created=record.created,
            request_id=request_id if isinstance(request_id, str) else None,
            fields=fields,
        )


def print_line(message: str, *, level: str, logger: str, stream: TextIO, **fields: Any) -> None:
    """Write one JSON line outside `logging` (start-up refusals, the `listening on` line)."""
    line = json_line(message, level=level, logger=logger, created=time.time(), fields=fields)
    stream.write(line + "\n")
    stream.flush()


class JsonLineStream(io.TextIOBase):
    """A text stream whose every line comes out as JSON: lines that already are a JSON
    object pass through, any other line becomes one (`message` = the line, `logger` =
    `name`). Partial lines wait for their end (or the process's exit)."""

    def __init__(self, target: TextIO, name: str, level: str) -> None:
        super().__init__()
        self._target = target
        self._name = name
        self._level = level
        self._pending = ""
        self._echo: list[str] = []
        # Re-entrant: a signal handler may write while a write is under way.
        self._lock = threading.RLock()

    @property
    def target(self) -> TextIO:
        return self._target

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._target.encoding

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            if "\n" in self._pending:
                *lines, self._pending = self._pending.split("\n")
                self._target.write("".join(self._convert(line) for line in lines))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def drop_echo(self, text: str) -> None:
        """The next plain lines written, if they are `text`'s lines, are dropped: gunicorn
        prints a crashed worker's exception message after logging it, and that message can
        carry request data (the logged line has the exception's type and traceback)."""
        with self._lock:
            self._echo = [line.strip() for line in text.splitlines() if line.strip()]

    def drain(self) -> None:
        """Write out a last line that has no end yet (at exit)."""
        with self._lock:
            if self._pending:
                self._target.write(self._convert(self._pending))
                self._pending = ""
        self._target.flush()

    def _convert(self, line: str) -> str:
        stripped = line.strip()
        if not stripped:
            return ""
        if stripped.startswith("{") and stripped.endswith("}"):
            return stripped + "\n"
        if self._echo:
            expected = self._echo.pop(0)
            if stripped == expected:
                return ""
            self._echo = []
        return json_line(stripped, level=self._level, logger=self._name, created=time.time()) + "\n"


_QUERY: Final = re.compile(r"\?[^\s'\"]+")


def drop_exception_echo() -> None:
    """After logging the exception being handled: gunicorn's plain echo of its message on
    standard error is dropped (`JsonLineStream.drop_echo`)."""
    exc = sys.exc_info()[1]
    if exc is not None and isinstance(sys.stderr, JsonLineStream):
        sys.stderr.drop_echo(str(exc))


class DropQueryStrings(logging.Filter):
    """For gunicorn's error log: its messages can quote a request's target ("Error handling
    request POST /path?query", an invalid request line); the query string goes, as in the
    access lines (it can carry patient ids)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg = _QUERY.sub("", message)
            record.args = ()
        return True


_log = logging.getLogger("cds_service.process")


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    _log.critical("uncaught exception", extra={"event": "crash", **exception_fields(exc_type, tb)})


def _thread_excepthook(hook: threading.ExceptHookArgs) -> None:
    if hook.exc_type is SystemExit:
        return
    _log.error(
        "uncaught exception in a thread",
        extra={"event": "crash", **exception_fields(hook.exc_type, hook.exc_traceback)},
    )


def _unraisablehook(hook: Any) -> None:
    _log.warning(
        "exception ignored",
        extra={"event": "ignored-exception", **exception_fields(hook.exc_type, hook.exc_traceback)},
    )


def _hub_print_exception(
    hub: Any, context: object, exc_type: Any, exc: Any, tb: TracebackType | None
) -> None:
    """gevent's report of a greenlet that ended with an exception, as a JSON line."""
    if isinstance(exc_type, type) and issubclass(exc_type, BaseException):
        fields = exception_fields(exc_type, tb)
    else:
        fields = {"exception": type(exc).__name__}
    _log.error("a greenlet ended with an exception", extra={"event": "crash", **fields})


def install_process_hooks() -> None:
    """Make this process write JSON only: standard output and error wrapped
    (`JsonLineStream`), uncaught exceptions, warnings and gevent's greenlet errors logged."""
    if not isinstance(sys.stderr, JsonLineStream):
        sys.stderr = JsonLineStream(sys.stderr, "stderr", "error")
    if not isinstance(sys.stdout, JsonLineStream):
        sys.stdout = JsonLineStream(sys.stdout, "stdout", "info")
    atexit.register(sys.stderr.drain)
    atexit.register(sys.stdout.drain)
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
    sys.unraisablehook = _unraisablehook
    logging.captureWarnings(True)
    hub = sys.modules.get("gevent.hub")
    if hub is not None:
        hub.Hub.print_exception = _hub_print_exception
    if not logging.getLogger().handlers:
        # Until the service configures logging (cli.configure_logging): JSON on stderr.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLineFormatter())
        logging.getLogger().addHandler(handler)
