"""What the HTTP layer accepts before the application reads a request, and how long it waits.

A check of the headers, a WSGI middleware and the handling of text that is not Unicode:

- `refuse_early` (the first `before_request` of `create_app`'s app, so every server and the
  test client have it) answers from the request line and headers alone, before a byte of
  the body is read and before authentication: a `Content-Length` that is not a number (400) or over
  `CDS_MAX_BODY_BYTES` (413); a POST to `/cds-services/...` whose content type is not JSON
  (415) or that has no body at all (400).
- `BodyDeadline` (installed by `cds-service serve`, whose gevent workers can interrupt a
  read) gives a client `CDS_BODY_TIMEOUT` seconds, from the first read, to send the whole
  body (408), and turns framing the server cannot read (bad chunk sizes, a truncated body)
  into a 400 instead of an unexpected error.
- `replace_lone_surrogates`: JSON may escape half of a UTF-16 pair (`"\\ud800"`), which is
  no character and which no UTF-8 encoder (the audit database, the logs) accepts. The parsed
  body has each one replaced by U+FFFD, the replacement character, as a decoder does with
  bytes that are not UTF-8.

Error bodies are the service's JSON errors (`cds_service.errors`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import IO, Any, Final

from cds_service.errors import ApiError

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
TimerFactory = Callable[[float, Exception], AbstractContextManager[object]]
"""(seconds, error) -> a context that raises `error` in the block when `seconds` pass."""

JSON_PATH_PREFIX: Final = "/cds-services/"
"""POSTs under this prefix (service calls, feedback) must carry a JSON body."""


def is_json_media_type(content_type: str) -> bool:
    """`application/json` or a `+json` type (`application/fhir+json`), any parameters."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def early_answer(environ: Mapping[str, Any], max_body_bytes: int) -> tuple[int, str, str] | None:
    """(status, error code, message) for a request refused on its headers; None to go on."""
    raw_length = environ.get("CONTENT_LENGTH") or ""
    length: int | None = None
    if raw_length.strip():
        if not raw_length.strip().isdigit():
            return 400, "invalid-content-length", "Content-Length must be a number of bytes"
        length = int(raw_length)
        if length > max_body_bytes:
            return (
                413,
                "payload-too-large",
                f"request body too large (at most {max_body_bytes} bytes)",
            )
    if environ.get("REQUEST_METHOD") != "POST":
        return None
    if not str(environ.get("PATH_INFO", "")).startswith(JSON_PATH_PREFIX):
        return None
    if not is_json_media_type(str(environ.get("CONTENT_TYPE", ""))):
        return (
            415,
            "unsupported-media-type",
            "the request body must be JSON: send Content-Type: application/json",
        )
    chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
    if not chunked and not length:
        return 400, "bad-request", "the request body is empty: expected a JSON object"
    return None


def refuse_early(environ: Mapping[str, Any], max_body_bytes: int) -> None:
    """Raise the `ApiError` for a request refused on its headers (see `early_answer`)."""
    refused = early_answer(environ, max_body_bytes)
    if refused is not None:
        status, code, message = refused
        raise ApiError(message, status, error=code)


class TimedInput:
    """A request body stream whose reads, all together, end by a deadline that starts at
    the first read; a read the server cannot make sense of, or a body that ends before its
    `Content-Length`, is a 400."""

    def __init__(
        self,
        stream: IO[bytes],
        seconds: float,
        timer: TimerFactory,
        monotonic: Callable[[], float],
        content_length: int | None = None,
    ) -> None:
        self._stream = stream
        self._seconds = seconds
        self._timer = timer
        self._monotonic = monotonic
        self._expected = content_length
        self._received = 0
        self._deadline: float | None = None

    def _timed(self, read: Callable[[], bytes], asked: int | None) -> bytes:
        now = self._monotonic()
        if self._deadline is None:
            self._deadline = now + self._seconds
        remaining = self._deadline - now
        too_slow = ApiError(
            f"the request body did not arrive within {self._seconds:g} s",
            408,
            error="request-timeout",
        )
        if remaining <= 0:
            raise too_slow
        try:
            with self._timer(remaining, too_slow):
                data = read()
        except ApiError:
            raise
        except Exception as exc:  # bad chunk framing, a reset connection
            raise _bad_framing() from exc
        self._received += len(data)
        ended = not data and asked != 0
        if ended and self._expected is not None and self._received < self._expected:
            raise _bad_framing()
        return data

    def read(self, size: int | None = -1) -> bytes:
        wanted = -1 if size is None else size
        return self._timed(lambda: self._stream.read(wanted), wanted)

    def readline(self, size: int | None = -1) -> bytes:
        wanted = -1 if size is None else size
        return self._timed(lambda: self._stream.readline(wanted), wanted)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        for line in self:
            lines.append(line)
            if 0 < hint <= sum(len(item) for item in lines):
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line


def _bad_framing() -> ApiError:
    return ApiError(
        "the request body could not be read: its framing (Content-Length or chunked "
        "encoding) is invalid or it ended early",
        error="bad-framing",
    )


class BodyDeadline:
    """Installs `TimedInput` as every request's `wsgi.input`."""

    def __init__(
        self,
        app: WsgiApp,
        *,
        seconds: float,
        timer: TimerFactory,
        monotonic: Callable[[], float],
    ) -> None:
        self.app = app
        self.seconds = seconds
        self.timer = timer
        self.monotonic = monotonic

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        stream = environ.get("wsgi.input")
        if stream is not None:
            raw_length = str(environ.get("CONTENT_LENGTH") or "").strip()
            length = int(raw_length) if raw_length.isdigit() else None
            environ["wsgi.input"] = TimedInput(
                stream, self.seconds, self.timer, self.monotonic, length
            )
        return self.app(environ, start_response)


# --- text that is not Unicode --------------------------------------------------------------

_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")
_SURROGATE_UTF8 = re.compile(rb"\xed[\xa0-\xbf]")  # read by json.loads with surrogatepass
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def may_hold_lone_surrogates(data: bytes, encoding: str) -> bool:
    """False when the JSON text `data` certainly decodes to no lone surrogate (cheap: no
    escape of one, no UTF-8 bytes of one); True when it may."""
    if encoding not in ("utf-8", "utf-8-sig"):
        return True
    return bool(_SURROGATE_ESCAPE.search(data) or _SURROGATE_UTF8.search(data))


def replace_lone_surrogates(value: Any) -> Any:
    """`value` (parsed JSON) with every lone surrogate in its strings and keys replaced by
    U+FFFD. A valid pair was already joined into one character by the JSON decoder."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [replace_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {
            replace_lone_surrogates(key): replace_lone_surrogates(item)
            for key, item in value.items()
        }
    return value
