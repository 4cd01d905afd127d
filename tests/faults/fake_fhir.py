"""A FHIR server that misbehaves, for fault tests: a real socket server in a thread that
answers every request in the way `behaviour` says, closing each connection after it."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Literal

Behaviour = Literal[
    "drip", "drip-headers", "reset", "redirect", "huge", "malformed", "http-500", "http-429"
]
HUGE_BYTES = 9 * 1024 * 1024


def _huge_bundle() -> bytes:
    """A valid searchset Bundle of about 9 MiB (one long note: cheap to process)."""
    pad = "x" * HUGE_BYTES
    return json.dumps(
        {"resourceType": "Bundle", "type": "searchset", "total": 0, "meta": {"tag": [pad]}}
    ).encode()


class FakeFhir:
    def __init__(self, behaviour: Behaviour, redirect_to: str = "", drip_every: float = 0.05):
        self.behaviour = behaviour
        self.redirect_to = redirect_to
        self.drip_every = drip_every
        self.requests = 0
        self._huge = _huge_bundle() if behaviour == "huge" else b""
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._listener.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self._lock = threading.Lock()
        self._handlers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="fake-fhir", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            handler = threading.Thread(
                target=self._serve, args=(conn,), name="fake-fhir-conn", daemon=True
            )
            with self._lock:
                self.requests += 1
                self._handlers = [t for t in self._handlers if t.is_alive()]
                self._handlers.append(handler)
            handler.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            self._answer(conn)

    def _send(self, conn: socket.socket, status: str, body: bytes, extra: str = "") -> None:
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: application/fhir+json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
        )
        conn.sendall(head.encode() + body)

    def _drip(self, conn: socket.socket, data: bytes) -> None:
        for byte in data:
            if self._stop.wait(self.drip_every):
                return
            conn.sendall(bytes([byte]))

    def _answer(self, conn: socket.socket) -> None:
        b = self.behaviour
        if b == "drip":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                b"Content-Length: 100000\r\nConnection: close\r\n\r\n"
            )
            self._drip(conn, b" " * 100000)
        elif b == "drip-headers":
            self._drip(conn, b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 100000)
        elif b == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif b == "redirect":
            self._send(conn, "302 Found", b"", f"Location: {self.redirect_to}\r\n")
        elif b == "huge":
            self._send(conn, "200 OK", self._huge)
        elif b == "malformed":
            self._send(conn, "200 OK", b'{"resourceType": "Bundle", "entry": [{"resource": ')
        elif b == "http-500":
            self._send(conn, "500 Internal Server Error", b'{"resourceType": "Bundle"}')
        elif b == "http-429":
            self._send(conn, "429 Too Many Requests", b"{}", "Retry-After: 1\r\n")

    def quiesce(self, timeout: float) -> bool:
        """Wait until every connection handler has ended; False when `timeout` passed."""
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            handler.join(timeout)
        return not any(h.is_alive() for h in handlers)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self.quiesce(5.0)


@contextlib.contextmanager
def fake_fhir(behaviour: Behaviour, redirect_to: str = "") -> Iterator[FakeFhir]:
    server = FakeFhir(behaviour, redirect_to)
    try:
        yield server
    finally:
        server.close()
