"""Hostile HTTP clients against the real server (`cds-service serve`, gevent workers, on
loopback, authentication on): slow-loris clients, malformed framing, lone surrogates, a
spoofed Host. Bounds are functional (a client's own timeout), not speed asserts."""

from __future__ import annotations

import json
import select
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.service import ServiceProcess, start_service
from tests.answers import is_answered
from tests.auth.conftest import Signer, jwks, make_signer
from tests.conftest import HOOKS_DIR, load_example

ISS = "https://ehr.example.org"
PUBLIC = "https://cds.example.org"
SIGN = "/cds-services/anakinra-order-sign"
HEADER_TIMEOUT = 2
BODY_TIMEOUT = 3
CLIENT_TIMEOUT = 10.0
"""What a calling EHR waits for an answer; every signed call must be answered within it."""
GIVE_UP = 60.0
"""How long a slow client keeps trickling before the test calls it 'never closed'."""

_jti = iter(range(1_000_000))


@dataclass
class Server:
    service: ServiceProcess
    signer: Signer
    database: Path
    port: int = field(init=False)

    def __post_init__(self) -> None:
        self.port = int(self.service.base_url.rsplit(":", 1)[1])

    def token(self, path: str = SIGN, aud: str | None = None) -> str:
        now = int(time.time())
        claims = {
            "iss": ISS,
            "aud": aud or PUBLIC + path,
            "iat": now,
            "exp": now + 300,
            "jti": f"http-{next(_jti)}",
        }
        return self.signer.sign(claims)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("http")
    signer = make_signer("ES384", "http-key")
    (folder / "keys.json").write_text(json.dumps(jwks(signer)))
    issuers = {"issuers": [{"iss": ISS, "jwks_file": "keys.json", "fhir_servers": []}]}
    (folder / "issuers.json").write_text(json.dumps(issuers))
    database = folder / "audit.sqlite"
    with start_service(
        fhir_servers=[],
        database_url=f"sqlite:///{database}",
        log_path=folder / "service.log",
        workers=2,
        timeout_s=90,  # start-up is slow on a busy machine
        extra_env={
            "CDS_HOOKS_DIR": str(HOOKS_DIR),
            "CDS_LOG_LEVEL": "WARNING",
            "CDS_AUTH": "enabled",
            "CDS_TRUSTED_ISSUERS": str(folder / "issuers.json"),
            "CDS_PUBLIC_BASE_URL": PUBLIC,
            "CDS_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "CDS_BODY_TIMEOUT": str(BODY_TIMEOUT),
        },
    ) as service:
        yield Server(service, signer, database)


def signed_call(server: Server, body: dict[str, Any] | None = None) -> requests.Response:
    return requests.post(
        server.service.base_url + SIGN,
        json=body or load_example("order-sign-prefetch.json"),
        headers={"Authorization": f"Bearer {server.token()}"},
        timeout=CLIENT_TIMEOUT,
    )


def post_head(length: int | None, *, token: str | None = None, extra: bytes = b"") -> bytes:
    head = f"POST {SIGN} HTTP/1.1\r\nHost: cds.example.org\r\nContent-Type: application/json\r\n"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    return head.encode() + extra + b"\r\n"


def exchange(server: Server, data: bytes, *, half_close: bool = False) -> tuple[int, bytes]:
    """Send raw bytes; (status, body) of the answer read until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:  # closed with our unread bytes pending: answer is in
            pass
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"chunked" in head.lower():
        body = _dechunk(body)
    return status, body


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + rest[:size], rest[size + 2 :]
    return out


@dataclass
class SlowClient:
    """A socket that sends `head`, then one byte of `trickle` every 0.5 s, until the server
    closes it (or `GIVE_UP` passes). `answer` is the first response line it got, if any."""

    head: bytes
    trickle: bytes
    closed_by_server: bool = False
    answer: bytes = b""

    def run(self, port: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            end = time.monotonic() + GIVE_UP
            try:
                sock.sendall(self.head)
                while time.monotonic() < end:
                    sock.sendall(self.trickle)
                    readable, _, _ = select.select([sock], [], [], 0.5)
                    if readable:
                        chunk = sock.recv(65536)
                        if not chunk:
                            self.closed_by_server = True
                            return
                        self.answer = self.answer or chunk.split(b"\r\n", 1)[0]
            except OSError:  # reset or broken pipe: the server closed it
                self.closed_by_server = True


def test_slow_clients_neither_starve_signed_calls_nor_stay_open(server: Server) -> None:
    slow = (
        # the request line and headers, a header field every half second
        [SlowClient(f"POST {SIGN} HTTP/1.1\r\n".encode(), b"X") for _ in range(16)]
        # a body without a token: refused before the body is read
        + [SlowClient(post_head(100_000), b" ") for _ in range(16)]
        # a signed call whose body trickles: the body deadline ends it
        + [SlowClient(post_head(100_000, token=server.token()), b" ") for _ in range(8)]
    )
    threads = [threading.Thread(target=c.run, args=(server.port,), daemon=True) for c in slow]
    for thread in threads:
        thread.start()
    time.sleep(1)  # every slow client is connected and trickling

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: signed_call(server), range(24)))
    for thread in threads:
        thread.join(GIVE_UP + 5)

    assert [a.status_code for a in answers] == [200] * 24
    assert all(is_answered(a.json()) for a in answers)
    assert [c.closed_by_server for c in slow] == [True] * len(slow)
    assert {c.answer for c in slow[:16]} == {b""}  # head never finished: closed unanswered
    assert {c.answer for c in slow[16:32]} == {b"HTTP/1.1 401 UNAUTHORIZED"}
    assert {c.answer for c in slow[32:]} == {b"HTTP/1.1 408 REQUEST TIMEOUT"}


def _audited_hook_instances(server: Server) -> list[str]:
    with sqlite3.connect(server.database) as conn:
        rows = conn.execute("select hook_instance from invocations").fetchall()
    return [row[0] for row in rows]


def _signed_raw(server: Server, body: bytes) -> tuple[int, bytes]:
    return exchange(server, post_head(len(body), token=server.token()) + body)


def test_a_lone_surrogate_in_hook_instance_is_answered_and_audited(server: Server) -> None:
    request = load_example("order-sign-prefetch.json")
    request["hookInstance"] = "lone-\ud800-surrogate"
    status, body = _signed_raw(server, json.dumps(request).encode())  # ASCII: \ud800 escape
    assert status == 200
    assert is_answered(json.loads(body))
    assert "lone-\ufffd-surrogate" in _audited_hook_instances(server)


def test_a_lone_surrogate_in_an_order_id_gets_a_card_not_an_error(server: Server) -> None:
    request = load_example("order-sign-prefetch.json")
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    order["id"] = order["id"] + "\udfff"
    status, body = _signed_raw(server, json.dumps(request).encode())
    assert status == 200
    assert is_answered(json.loads(body))


def test_lone_surrogates_in_record_text_and_keys_are_answered(server: Server) -> None:
    request = load_example("order-sign-prefetch.json")
    patient = request["prefetch"]["patient"]
    patient["name"] = [{"text": "\udc00\ud83d", "family": "\ud800"}]
    request["extension"] = {"\udbff": "\ud800"}
    # The surrogate also as raw UTF-8 bytes (ED A0 80), which JSON decoding lets through.
    raw = json.dumps(request).encode().replace(b"\\udc00", b"\xed\xb0\x80")
    status, body = _signed_raw(server, raw)
    assert status == 200
    assert is_answered(json.loads(body))


@pytest.mark.parametrize(
    ("name", "head", "body"),
    [
        ("chunk size not hex", b"Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n"),
        ("chunk without its CRLF", b"Transfer-Encoding: chunked\r\n", b"5\r\nabcdeXX\r\n0\r\n\r\n"),
        ("chunk longer than sent", b"Transfer-Encoding: chunked\r\n", b"ffff\r\n{}"),
    ],
)
def test_malformed_chunked_framing_is_a_json_400(
    server: Server, name: str, head: bytes, body: bytes
) -> None:
    data = post_head(None, token=server.token(), extra=head) + body
    status, answer = exchange(server, data, half_close=True)
    assert status == 400, name
    assert json.loads(answer)["error"] == "bad-framing"


def test_a_body_shorter_than_its_content_length_is_a_json_400(server: Server) -> None:
    body = json.dumps(load_example("order-sign-prefetch.json")).encode()
    status, answer = exchange(
        server, post_head(len(body) + 50, token=server.token()) + body, half_close=True
    )
    assert status == 400
    assert json.loads(answer)["error"] == "bad-framing"


@pytest.mark.parametrize(
    "content_length",
    [b"abc", b"-5", b"5\r\nContent-Length: 6", b"1e3", b"3\r\nTransfer-Encoding: chunked"],
)
def test_a_bad_content_length_is_the_servers_400(server: Server, content_length: bytes) -> None:
    data = post_head(
        None, token=server.token(), extra=b"Content-Length: " + content_length + b"\r\n"
    )
    status, answer = exchange(server, data + b"{}")
    assert status == 400
    assert b"Traceback" not in answer


@pytest.mark.parametrize(
    ("head", "status", "error"),
    [
        (post_head(10**10), 413, "payload-too-large"),
        (post_head(0), 400, "bad-request"),
        (post_head(None), 400, "bad-request"),
        (post_head(2).replace(b"application/json", b"text/plain"), 415, "unsupported-media-type"),
        (post_head(2).replace(b"Content-Type: application/json\r\n", b""), 415, None),
    ],
)
def test_what_cannot_be_a_call_is_refused_before_the_body_and_the_token(
    server: Server, head: bytes, status: int, error: str | None
) -> None:
    # No token and no body bytes: the answer comes from the headers alone.
    answered, answer = exchange(server, head, half_close=True)
    assert answered == status
    assert json.loads(answer)["error"] == (error or "unsupported-media-type")


def test_health_needs_no_token_and_shows_no_data(server: Server) -> None:
    live = requests.get(server.service.base_url + "/health/live", timeout=CLIENT_TIMEOUT)
    ready = requests.get(server.service.base_url + "/health/ready", timeout=CLIENT_TIMEOUT)
    assert (live.status_code, live.json()) == (200, {"status": "live"})
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    # Beside the status only the audit queue's and the replay record's counters: numbers,
    # no names, no settings.
    assert set(ready.json()) == {"status", "audit", "replay"}
    assert all(
        value is None or isinstance(value, int | float) or key in {"database", "last_error"}
        for key, value in ready.json()["audit"].items()
    )
    assert all(
        value is None or isinstance(value, int | float) or (key, value) == ("store", "ok")
        for key, value in ready.json()["replay"].items()
    )
    discovery = requests.get(server.service.base_url + "/cds-services", timeout=CLIENT_TIMEOUT)
    assert discovery.status_code == 401


@pytest.mark.parametrize(
    "spoof",
    [
        {"Host": "evil.example.net"},
        {"X-Forwarded-Host": "evil.example.net", "X-Forwarded-Proto": "https"},
        {"Forwarded": "host=evil.example.net;proto=https"},
    ],
)
def test_a_token_for_a_spoofed_host_is_refused(server: Server, spoof: dict[str, str]) -> None:
    host = "evil.example.net"
    for scheme in ("http", "https"):
        token = server.token(aud=f"{scheme}://{host}{SIGN}")
        answer = requests.post(
            server.service.base_url + SIGN,
            json=load_example("order-sign-prefetch.json"),
            headers={"Authorization": f"Bearer {token}", **spoof},
            timeout=CLIENT_TIMEOUT,
        )
        assert answer.status_code == 401
    # The same headers with a token for the configured public URL: accepted.
    answer = requests.post(
        server.service.base_url + SIGN,
        json=load_example("order-sign-prefetch.json"),
        headers={"Authorization": f"Bearer {server.token()}", **spoof},
        timeout=CLIENT_TIMEOUT,
    )
    assert answer.status_code == 200
