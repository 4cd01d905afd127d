"""Load with slow clients: thousands of signed calls while other clients trickle bytes.

    .venv/bin/python -m benchmarks.slow_clients [--calls 3000] [--clients 16] [--slow 32]

Starts `cds-service serve` as production does (gunicorn, `--workers` workers,
authentication ON with a trusted issuer whose key is made here, a temporary SQLite audit
store), then, all at once:
- `--clients` threads send `--calls` signed order-sign calls in all (full prefetch, a new
  token and hookInstance each), over keep-alive connections;
- `--slow` clients each open a connection and send a request one byte every
  `--drip` seconds, reconnecting whenever the service closes it.
Reports errors (anything but 200 with a card, timeouts included), latency p50 / p95 / p99
/ max, throughput, the workers' memory (RSS, summed) every second, and whether every call
was audited (counted in the store after the service has stopped, which writes what its
workers still had queued). Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from sandbox.service import ServiceProcess, start_service

ROOT = Path(__file__).resolve().parent.parent
ISS = "http://127.0.0.1:9/bench-ehr"
SIGN = "/cds-services/prior-auth-order-sign"
PUBLIC = "http://cds.bench.example"
"""CDS_PUBLIC_BASE_URL of the service: the audience its callers' tokens name."""


def _issuer(folder: Path) -> Callable[[str], str]:
    """Write a trusted-issuers file for a new ES384 key; returns a token maker (aud)."""
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "bench-1", "alg": "ES384"}
    (folder / "keys.json").write_text(json.dumps({"keys": [jwk]}))
    issuers = {"issuers": [{"iss": ISS, "jwks_file": "keys.json", "fhir_servers": []}]}
    (folder / "issuers.json").write_text(json.dumps(issuers))

    def token(audience: str) -> str:
        now = int(time.time())
        claims = {"iss": ISS, "aud": audience, "iat": now, "exp": now + 300}
        claims["jti"] = str(uuid.uuid4())
        return jwt.encode(claims, key, algorithm="ES384", headers={"kid": "bench-1"})

    return token


def _workers(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _slow_client(host: str, port: int, drip: float, stop: threading.Event) -> None:
    request = (
        f"POST {SIGN} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n"
    ).encode() + b" " * 100000
    while not stop.is_set():
        try:
            with socket.create_connection((host, port), timeout=5) as sock:
                for byte in request:
                    if stop.wait(drip):
                        return
                    sock.sendall(bytes([byte]))
        except OSError:
            stop.wait(drip)


def run(args: argparse.Namespace) -> dict[str, Any]:
    body = json.loads((ROOT / "hooks" / "examples" / "order-sign-prefetch.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        token = _issuer(folder)
        database = folder / "audit.sqlite"
        service: ServiceProcess = start_service(
            fhir_servers=[],
            database_url=f"sqlite:///{database}",
            log_path=folder / "service.log",
            workers=args.workers,
            extra_env={
                "CDS_AUTH": "enabled",
                "CDS_TRUSTED_ISSUERS": str(folder / "issuers.json"),
                "CDS_PUBLIC_BASE_URL": PUBLIC,
                "CDS_LOG_LEVEL": "WARNING",
            },
            ready=(401,),  # discovery needs a token too
        )
        with service:
            base = service.base_url
            host, port = base.removeprefix("http://").split(":")
            stop = threading.Event()
            slow = [
                threading.Thread(
                    target=_slow_client, args=(host, int(port), args.drip, stop), daemon=True
                )
                for _ in range(args.slow)
            ]
            for thread in slow:
                thread.start()
            workers = _workers(service.process.pid)
            memory: list[tuple[float, float]] = []
            started = time.monotonic()

            def sample() -> None:
                while not stop.wait(1.0):
                    memory.append((time.monotonic() - started, _rss_mib(workers)))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            local = threading.local()

            def one(index: int) -> tuple[str, float]:
                session = getattr(local, "session", None)
                if session is None:
                    session = local.session = requests.Session()
                call = {**body, "hookInstance": f"bench-{index}"}
                headers = {"Authorization": f"Bearer {token(PUBLIC + SIGN)}"}
                t0 = time.monotonic()
                try:
                    answer = session.post(base + SIGN, json=call, headers=headers, timeout=30)
                    cards = answer.status_code == 200 and bool(answer.json().get("cards"))
                    outcome = "ok" if cards else f"status-{answer.status_code}"
                except (requests.RequestException, ValueError) as error:
                    outcome = type(error).__name__
                return outcome, time.monotonic() - t0

            with ThreadPoolExecutor(max_workers=args.clients) as pool:
                results = list(pool.map(one, range(args.calls)))
            elapsed = time.monotonic() - started
            stop.set()
            service.stop()  # workers write what they still have queued, then exit
        with sqlite3.connect(database) as conn:
            audited = conn.execute("select count(*) from invocations").fetchone()[0]
    latencies = sorted(t * 1000 for _, t in results)
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "calls": args.calls,
        "clients": args.clients,
        "slow_clients": args.slow,
        "workers": args.workers,
        "errors": sum(1 for outcome, _ in results if outcome != "ok"),
        "error_kinds": dict(Counter(outcome for outcome, _ in results if outcome != "ok")),
        "p50_ms": round(cuts[49], 1),
        "p95_ms": round(cuts[94], 1),
        "p99_ms": round(cuts[98], 1),
        "max_ms": round(latencies[-1], 1),
        "calls_per_s": round(args.calls / elapsed, 1),
        "seconds": round(elapsed, 1),
        "audited": audited,
        "rss_mib": [(round(t), round(m, 1)) for t, m in memory],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--slow", type=int, default=32)
    parser.add_argument("--drip", type=float, default=1.0, help="seconds between bytes")
    parser.add_argument("--workers", type=int, default=2)
    result = run(parser.parse_args())
    timeline = result.pop("rss_mib")
    print(json.dumps(result, indent=2))
    step = max(1, len(timeline) // 10)
    print("worker RSS (MiB, all workers) over time:")
    print("  " + "  ".join(f"{t}s={m}" for t, m in timeline[::step] + timeline[-1:]))


if __name__ == "__main__":
    main()
