"""The service under gunicorn, end to end, beside the floor served the same way; and the
FHIR-query path against a FHIR server that answers each query after a set delay.

    python -m benchmarks.served [--concurrency 1,4,16] [--duration 8] [--size 500]

1. Concurrency: `cds-service serve` (gunicorn, gevent workers, one per usable CPU unless
   `--workers`) and the floor (`benchmarks/floor.py`) under gunicorn with the same worker
   class, worker count, preload and `pre_fork` hook, each driven over loopback by `clients`
   keep-alive connections for `--duration` seconds, ours then the floor's at each level:
   calls/s, p50 and p99.
2. FHIR-query path: a small FHIR server in this process (`DelayedFhir`) answers every
   prefetch query of the service from the benchmark chart after `--delay` ms (the
   Observation query after twice that: the slowest one). The service gets the call with no
   prefetch and reads the server itself; its p50 is compared with the slowest single query
   timed directly (and with that + the evaluation, the full-prefetch p50 in process).

Every process started is stopped on exit. Nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from benchmarks import run as bench
from benchmarks.workload import chart, context_only_request, order_sign_request, prefetch
from cds_service.cpus import usable_cpus
from sandbox.ehr import fill_template, token_values


def start_floor_gevent(tmp: Path, workers: int) -> bench.Server:
    """The floor under gunicorn with gevent workers, as `cds-service serve` serves ours."""
    return bench.start_floor(tmp, workers, worker_class="gevent")


def level(port: int, body: bytes, clients: int, duration: float) -> dict[str, float]:
    rate, sample = bench.concurrent(port, body, clients, duration)
    return {
        "calls_per_s": round(rate, 1),
        "p50_ms": round(bench.pct(sample.seconds, 50), 1),
        "p99_ms": round(bench.pct(sample.seconds, 99), 1),
        "calls": len(sample.seconds),
        "errors": sample.errors,
    }


def concurrency(
    levels: list[int], duration: float, size: int, workers: int
) -> dict[str, dict[str, Any]]:
    body = json.dumps(order_sign_request(size)).encode("utf-8")
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="cds-served-") as folder:
        tmp = Path(folder)
        ours = bench.start_service(tmp, workers)
        try:
            floor = start_floor_gevent(tmp, workers)
            try:
                for clients in levels:
                    a = level(ours.port, body, clients, duration)
                    b = level(floor.port, body, clients, duration)
                    ratio = round(a["p50_ms"] / b["p50_ms"], 2) if b["p50_ms"] else None
                    out[str(clients)] = {"ours": a, "floor": b, "p50_ratio": ratio}
                    print(
                        f"{clients:>3} clients: ours p50 {a['p50_ms']} ms p99 {a['p99_ms']} ms "
                        f"({a['calls_per_s']}/s); floor p50 {b['p50_ms']} ms p99 {b['p99_ms']} "
                        f"ms ({b['calls_per_s']}/s); p50 ratio {ratio}x",
                        flush=True,
                    )
            finally:
                floor.stop()
        finally:
            ours.stop()
    return out


# --------------------------------------------------------------------------- FHIR server


def _shape(path: str, query: str) -> tuple[str, frozenset[str]]:
    """A query's resource path and its parameter names: enough to tell the keys apart."""
    return path.strip("/"), frozenset(name for name, _ in parse_qsl(query))


class DelayedFhir:
    """Answers each prefetch query of the service from the chart after a delay (seconds)."""

    def __init__(self, size: int, delay_s: float) -> None:
        resources, _ = chart(size)
        self.answers = prefetch(resources, "http://127.0.0.1/fhir")
        body = order_sign_request(size)
        templates: Mapping[str, str] = bench._service_definition()["prefetch"]
        values = token_values(body["context"], {})
        self.routes: dict[tuple[str, frozenset[str]], str] = {}
        self.queries: dict[str, str] = {}
        for key, template in templates.items():
            filled = fill_template(template, values)
            if filled is None:
                continue
            path, _, query = filled.partition("?")
            self.routes[_shape(path, query)] = key
            self.queries[key] = filled
        self.delays = {key: delay_s * (2 if key == "observations" else 1) for key in self.queries}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                path = parts.path.removeprefix("/fhir")
                key = owner.routes.get(_shape(path, parts.query))
                answer: Any = owner.answers.get(key) if key else None
                if key is not None and answer is None:
                    answer = {"resourceType": "Bundle", "type": "searchset", "total": 0}
                time.sleep(owner.delays.get(key or "", 0.0))
                data = json.dumps(answer).encode("utf-8")
                self.send_response(200 if answer is not None else 404)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> DelayedFhir:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def fhir_path(size: int, delay_ms: float, calls: int, workers: int) -> dict[str, Any]:
    import requests

    with DelayedFhir(size, delay_ms / 1000) as fhir, tempfile.TemporaryDirectory() as folder:
        slowest: dict[str, float] = {}
        with requests.Session() as session:
            for key, query in fhir.queries.items():
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    session.get(f"{fhir.base}/{query}", timeout=30).json()
                    times.append(time.perf_counter() - t0)
                slowest[key] = statistics.median(times) * 1000
        ours = bench.start_service(Path(folder), workers, fhir_servers=[fhir.base])
        try:
            body = json.dumps(context_only_request(fhir.base, size)).encode("utf-8")
            full = json.dumps(order_sign_request(size)).encode("utf-8")
            without = bench.sequential(ours.port, body, budget_s=10, max_n=calls, min_n=calls)
            evaluation = bench.sequential(ours.port, full, budget_s=10, max_n=calls, min_n=calls)
        finally:
            ours.stop()
    top = max(slowest, key=lambda k: slowest[k])
    p50 = bench.pct(without.seconds, 50)
    eval_p50 = bench.pct(evaluation.seconds, 50)
    result = {
        "size": size,
        "delay_ms": delay_ms,
        "queries_ms": {k: round(v, 1) for k, v in sorted(slowest.items())},
        "slowest_key": top,
        "slowest_ms": round(slowest[top], 1),
        "sum_ms": round(sum(slowest.values()), 1),
        "no_prefetch_p50_ms": round(p50, 1),
        "evaluation_p50_ms": round(eval_p50, 1),
        "errors": without.errors,
        "ratio_to_slowest": round(p50 / slowest[top], 2),
        "ratio_to_slowest_plus_evaluation": round(p50 / (slowest[top] + eval_p50), 2),
    }
    print(
        f"no prefetch p50 {result['no_prefetch_p50_ms']} ms; slowest query ({top}) "
        f"{result['slowest_ms']} ms, all one after the other {result['sum_ms']} ms; "
        f"evaluation p50 {result['evaluation_p50_ms']} ms; ratios "
        f"{result['ratio_to_slowest']}x / {result['ratio_to_slowest_plus_evaluation']}x",
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per level")
    parser.add_argument("--size", type=int, default=500, help="resources per chart")
    parser.add_argument("--workers", type=int, default=None, help="default: usable CPUs")
    parser.add_argument("--delay", type=float, default=100.0, help="ms per FHIR query")
    parser.add_argument("--calls", type=int, default=20, help="no-prefetch calls")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    workers = args.workers or usable_cpus()
    results = {
        "workers": workers,
        "concurrency": concurrency(
            [int(c) for c in args.concurrency.split(",")], args.duration, args.size, workers
        ),
        "fhir_path": fhir_path(args.size, args.delay, args.calls, workers),
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
