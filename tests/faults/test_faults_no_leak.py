"""1,000 calls of the faults that answer fast, mixed, through the real server (`cds-service
serve`: gunicorn, two gevent workers): a FHIR server that resets, answers 500 or 429, sends
malformed JSON or redirects elsewhere; chunked framing that is not valid and a body shorter
than its Content-Length; lone surrogates in the body; hostile record text. Each is answered
as the README documents (200 with a card, or the JSON 400 `bad-framing`), every answered
call is audited, and afterwards each gunicorn worker has no more open file descriptors
(/proc/<pid>/fd) than after the warm-up, give or take a small constant, no more threads
(/proc/<pid>/task) than its main one and gevent's thread pool can hold, and no worker was
restarted.

The calls come from a few client threads at once, as EHRs send them, so both workers are
busy. The slow faults (dripping servers, 9 MiB bundles) keep their smaller counts in
test_faults_fhir_server.py: each call there lasts the whole deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from gevent.hub import Hub

from sandbox.service import ServiceProcess, start_service
from tests.answers import is_answered
from tests.cards.markdown_check import active
from tests.conftest import HOOKS_DIR, load_example
from tests.faults.fake_fhir import Behaviour, FakeFhir, fake_fhir

SIGN = "/cds-services/anakinra-order-sign"
CALLS = 1000
SLACK = 4
"""Threads / descriptors a worker may gain for good (a pooled database connection, a
thread started late): a leak of one per call would be hundreds."""
CLIENTS = 4
"""Client threads sending the calls at once."""
MOST_THREADS = 1 + Hub.threadpool_size + SLACK
"""A gevent worker's OS threads: its main thread (connections and the service's own
threads are greenlets) and gevent's thread pool (name lookups), which starts and ends
threads on demand up to its size: they are bounded, not compared with the warm-up."""
CLIENT_TIMEOUT = 30.0
FHIR_FAULTS: tuple[Behaviour, ...] = ("reset", "http-500", "http-429", "malformed", "redirect")
HOSTILE = (
    "<script>alert(1)</script> [click](javascript:alert(1)) ![x](https://evil.example/x.png)"
    "\n# heading\n\u202egnp.exe\u202c zero\u200bwidth \x00\x1b[31m **bold** | a |"
)


def _workers(service: ServiceProcess) -> list[int]:
    """The gunicorn worker processes (children of the master)."""
    pid = service.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sorted(int(child) for child in children)


def _counts(service: ServiceProcess) -> dict[int, tuple[int, int]]:
    """Each worker's (threads, open file descriptors)."""
    return {
        pid: (len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd")))
        for pid in _workers(service)
    }


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
        self._lock = threading.Lock()
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
        with self._lock:
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
    fhir_servers: dict[Behaviour, FakeFhir], tmp_path: Path
) -> None:
    database = tmp_path / "audit.sqlite"
    with start_service(
        fhir_servers=[server.base for server in fhir_servers.values()],
        database_url=f"sqlite:///{database}",
        log_path=tmp_path / "service.log",
        workers=2,
        extra_env={
            "CDS_HOOKS_DIR": str(HOOKS_DIR),
            "CDS_REQUEST_DEADLINE": "1.0",
            "CDS_FHIR_READ_TIMEOUT": "0.5",
            "CDS_FHIR_CONNECT_TIMEOUT": "0.5",
        },
    ) as service:
        port = int(service.base_url.rsplit(":", 1)[1])
        call = Caller(port, fhir_servers)
        with ThreadPoolExecutor(CLIENTS) as clients:
            # Warm up both workers: pools, the audit writer, the database watchdog.
            list(clients.map(call, range(4 * len(call.kinds))))
            assert _quiet(fhir_servers)
            before = _counts(service)
            start = 4 * len(call.kinds)
            list(clients.map(call, range(start, start + CALLS)))
        assert _quiet(fhir_servers), "the service kept a connection to a FHIR server open"
        after = _counts(service)
        assert set(after) == set(before), "a worker was restarted"
        for pid, (threads, fds) in after.items():
            assert threads <= MOST_THREADS, f"worker {pid}: {threads} threads after {CALLS} calls"
            assert fds - before[pid][1] <= SLACK, f"worker {pid}: {fds - before[pid][1]} more fds"
    # Stopped: each worker has written its audit queue.
    with sqlite3.connect(database) as conn:
        audited = conn.execute("select count(*) from invocations").fetchone()[0]
    assert audited == call.answered, "an answered call was not audited"
    for behaviour, fake in fhir_servers.items():
        assert fake.requests >= CALLS // len(call.kinds), f"{behaviour}: not asked"
