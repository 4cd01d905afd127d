"""1,000 calls of the faults that answer fast, mixed, through a real HTTP server: a FHIR
server that resets, answers 500 or 429, sends malformed JSON or redirects elsewhere; chunked
framing that is not valid and a body shorter than its Content-Length; lone surrogates in the
body; hostile record text. Each is answered as the README documents (200 with a card, or the
JSON 400 `bad-framing`), every answered call is audited, and afterwards this process has no
more threads and open file descriptors than before, give or take a small constant.

The service runs in this process (so /proc/self/fd and the thread list are the service's)
under werkzeug's HTTP server, wrapped as `cds-service serve` wraps it (`BodyDeadline`, here
without gevent's timer). The slow faults (dripping servers, 9 MiB bundles) keep their
smaller counts in test_faults_fhir_server.py: each call there lasts the whole deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from cds_service.http_guard import BodyDeadline
from tests.answers import is_answered
from tests.cards.markdown_check import active
from tests.conftest import load_example, wait_for_audit
from tests.faults.fake_fhir import Behaviour, FakeFhir, fake_fhir

SIGN = "/cds-services/anakinra-order-sign"
CALLS = 1000
SLACK = 4
"""Threads / descriptors the process may gain for good (pool and writer threads started
late, a pooled database connection): a leak of one per call would be hundreds."""
CLIENT_TIMEOUT = 30.0
FHIR_FAULTS: tuple[Behaviour, ...] = ("reset", "http-500", "http-429", "malformed", "redirect")
HOSTILE = (
    "<script>alert(1)</script> [click](javascript:alert(1)) ![x](https://evil.example/x.png)"
    "\n# heading\n\u202egnp.exe\u202c zero\u200bwidth \x00\x1b[31m **bold** | a |"
)


def _threads() -> int:
    """This process's threads, except the fake FHIR servers' own."""
    return sum(1 for t in threading.enumerate() if not t.name.startswith("fake-fhir"))


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _no_timer(seconds: float, error: Exception) -> contextlib.AbstractContextManager[object]:
    """werkzeug's server is not gevent: reads are bounded by the client here, not a timer."""
    return contextlib.nullcontext()


@contextlib.contextmanager
def _served(app: Flask) -> Iterator[BaseWSGIServer]:
    wrapped = BodyDeadline(app, seconds=10.0, timer=_no_timer, monotonic=lambda: 0.0)
    server = make_server("127.0.0.1", 0, wrapped, threaded=False)
    thread = threading.Thread(target=server.serve_forever, name="leak-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _hostile_value(key: str, value: Any) -> Any:
    if key in ("display", "text") and isinstance(value, str):
        return value + HOSTILE
    return _with_hostile_text(value)


def _with_hostile_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _hostile_value(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_hostile_text(v) for v in value]
    return value


def _raw(port: int, data: bytes, *, half_close: bool = False) -> tuple[int, dict[str, Any]]:
    """Send raw bytes; the answer's status and JSON body (read until the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def _head(extra: str) -> bytes:
    return (
        f"POST {SIGN} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Connection: close\r\n{extra}\r\n"
    ).encode()


class Caller:
    """One call of each kind; every kind checks the answer the README documents."""

    def __init__(self, port: int, servers: dict[Behaviour, FakeFhir]) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.servers = servers
        self.answered = 0
        self.kinds: list[Callable[[int], None]] = [
            *(self._fhir_fault(b) for b in FHIR_FAULTS),
            self._lone_surrogates,
            self._hostile_text,
            self._bad_chunks,
            self._short_body,
        ]

    def _post(self, data: bytes) -> dict[str, Any]:
        response = requests.post(
            self.base + SIGN,
            data=data,
            headers={"Content-Type": "application/json", "Connection": "close"},
            timeout=CLIENT_TIMEOUT,
        )
        assert response.status_code == 200, response.text[:300]
        answer: dict[str, Any] = response.json()
        assert is_answered(answer)
        self.answered += 1
        return answer

    def _fhir_fault(self, behaviour: Behaviour) -> Callable[[int], None]:
        def call(index: int) -> None:
            body = load_example("order-sign-prefetch.json")
            body["hookInstance"] = f"leak-{behaviour}-{index}"
            body["fhirServer"] = self.servers[behaviour].base
            body["fhirAuthorization"] = {
                "access_token": "fault-token",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "user/*.read",
                "subject": "anakinra-cds",
            }
            body["prefetch"] = {}
            answer = self._post(json.dumps(body).encode())
            [evaluation] = answer["extension"]["com.anakinra-cds.evaluation"]
            assert evaluation["outcome"] == "not-evaluated", (behaviour, evaluation)

        return call

    def _lone_surrogates(self, index: int) -> None:
        body = load_example("order-sign-prefetch.json")
        body["hookInstance"] = f"leak-\ud800-{index}"
        body["context"]["draftOrders"]["entry"][0]["resource"]["note"] = [{"text": "\udfff"}]
        self._post(json.dumps(body).encode())  # ensure_ascii: "\ud800" escapes

    def _hostile_text(self, index: int) -> None:
        body = load_example("order-sign-prefetch.json")
        body["prefetch"] = _with_hostile_text(body["prefetch"])
        body["hookInstance"] = f"leak-hostile-{index}"
        answer = self._post(json.dumps(body).encode())
        for card in answer["cards"]:  # read as an EHR reads card Markdown
            assert not active(card.get("detail", "")), card["detail"]

    def _bad_chunks(self, index: int) -> None:
        data = _head("Transfer-Encoding: chunked\r\n") + b"zz\r\n{}\r\n0\r\n\r\n"
        status, answer = _raw(self.port, data)
        assert (status, answer["error"]) == (400, "bad-framing"), (status, answer)

    def _short_body(self, index: int) -> None:
        data = _head("Content-Length: 1000\r\n") + b'{"hook": "order-sign"'
        status, answer = _raw(self.port, data, half_close=True)
        assert (status, answer["error"]) == (400, "bad-framing"), (status, answer)

    def __call__(self, index: int) -> None:
        self.kinds[index % len(self.kinds)](index)


@pytest.fixture
def fhir_servers() -> Iterator[dict[Behaviour, FakeFhir]]:
    with contextlib.ExitStack() as stack:
        unpinned = stack.enter_context(fake_fhir("http-500"))
        servers = {
            b: stack.enter_context(fake_fhir(b, redirect_to=unpinned.base + "/Patient/pt-1"))
            for b in FHIR_FAULTS
        }
        yield servers
        assert unpinned.requests == 0, "a redirect was followed"


def _quiet(servers: dict[Behaviour, FakeFhir]) -> bool:
    return all(server.quiesce(10.0) for server in servers.values())


def test_a_thousand_fast_faults_leave_no_thread_or_descriptor_behind(
    make_app: Callable[..., Flask],
    fhir_servers: dict[Behaviour, FakeFhir],
    tmp_path: Path,
) -> None:
    database = tmp_path / "audit.sqlite"
    app = make_app(
        CDS_REQUEST_DEADLINE=1.0,
        CDS_FHIR_READ_TIMEOUT=0.5,
        CDS_FHIR_CONNECT_TIMEOUT=0.5,
        CDS_DATABASE_URL=f"sqlite:///{database}",
    )
    with _served(app) as server:
        call = Caller(server.server_port, fhir_servers)
        for index in range(len(call.kinds)):  # warm up: pools, the audit writer, the watchdog
            call(index)
        wait_for_audit(app)
        assert _quiet(fhir_servers)
        threads, fds = _threads(), _fds()
        for index in range(len(call.kinds), len(call.kinds) + CALLS):
            call(index)
        wait_for_audit(app)
        assert _quiet(fhir_servers), "the service kept a connection to a FHIR server open"
        grown = (_threads() - threads, _fds() - fds)
        assert grown[0] <= SLACK, f"{grown[0]} more threads after {CALLS} calls"
        assert grown[1] <= SLACK, f"{grown[1]} more open descriptors after {CALLS} calls"
    with sqlite3.connect(database) as conn:
        audited = conn.execute("select count(*) from invocations").fetchone()[0]
    assert audited == call.answered, "an answered call was not audited"
    for behaviour, fake in fhir_servers.items():
        assert fake.requests >= CALLS // len(call.kinds), f"{behaviour}: not asked"
