"""A PostgreSQL that misbehaves, for fault tests: a real TCP server in a thread.

Modes (for connections accepted from then on):
- `silent`: accepts and reads, never answers a byte;
- `stall`: completes the startup handshake (no password, a few server parameters, ready
  for a query), then answers nothing more;
- `forward`: passes bytes to and from a real server (`upstream`), so a test can make the
  database come back.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Literal
from urllib.parse import urlsplit

import pytest

from cds_service.store import AuditStore

Mode = Literal["silent", "stall", "forward"]
SSL_REQUEST = 80877103


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _handshake() -> bytes:
    params = {
        "server_version": "16.0",
        "server_encoding": "UTF8",
        "client_encoding": "UTF8",
        "standard_conforming_strings": "on",
        "integer_datetimes": "on",
        "DateStyle": "ISO, MDY",
        "TimeZone": "UTC",
    }
    out = _message(b"R", struct.pack("!I", 0))
    for name, value in params.items():
        out += _message(b"S", name.encode() + b"\0" + value.encode() + b"\0")
    out += _message(b"K", struct.pack("!II", 4242, 4242))
    return out + _message(b"Z", b"I")


def _read_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _startup(conn: socket.socket) -> None:
    """Read the client's startup message, refusing TLS first if it asks."""
    while True:
        (length,) = struct.unpack("!I", _read_exact(conn, 4))
        body = _read_exact(conn, length - 4)
        if struct.unpack("!I", body[:4])[0] == SSL_REQUEST:
            conn.sendall(b"N")
            continue
        return


class FakePostgres:
    def __init__(self, mode: Mode = "silent", upstream: tuple[str, int] | None = None) -> None:
        self.mode: Mode = mode
        self.upstream = upstream
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, database: str = "cds_test", user: str = "postgres") -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn, self.mode), daemon=True).start()

    def _serve(self, conn: socket.socket, mode: Mode) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            if mode == "forward":
                assert self.upstream is not None
                self._forward(conn, socket.create_connection(self.upstream))
                return
            if mode == "stall":
                _startup(conn)
                conn.sendall(_handshake())
            while conn.recv(65536):  # read whatever comes, answer nothing
                pass

    def _forward(self, client: socket.socket, server: socket.socket) -> None:
        with self._lock:
            self._open.append(server)

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        threading.Thread(target=pipe, args=(server, client), daemon=True).start()
        pipe(client, server)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()


@contextlib.contextmanager
def fake_postgres(mode: Mode, upstream: tuple[str, int] | None = None) -> Iterator[FakePostgres]:
    server = FakePostgres(mode, upstream)
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def proxied_test_postgres() -> Iterator[tuple[FakePostgres, str]]:
    """A forwarding proxy to the test PostgreSQL (`CDS_TEST_POSTGRES_URL`, set by
    scripts/with-postgres.sh) with an empty audit schema, and the database URL through it; a
    test makes the database hang by setting the proxy's `mode`. Skips when no test
    PostgreSQL is set."""
    real = os.environ.get("CDS_TEST_POSTGRES_URL")
    if not real:
        pytest.skip("CDS_TEST_POSTGRES_URL is not set (run under scripts/with-postgres.sh)")
    parts = urlsplit(real.replace("postgresql+psycopg", "http", 1))
    assert parts.hostname is not None
    assert parts.port is not None
    with fake_postgres("forward", (parts.hostname, parts.port)) as pg:
        url = pg.url(database=parts.path.lstrip("/"), user=parts.username or "postgres")
        cleaner = AuditStore(url)
        cleaner.drop_schema()
        cleaner.dispose()
        yield pg, url
