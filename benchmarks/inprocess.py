"""In-process latency of the service against the floor, interleaved, at several chart sizes.

    python -m benchmarks.inprocess [--sizes 50,500,5000,20000] [--calls N] [--json FILE]

Times are CPU seconds of the calling thread (`CLOCK`; `--wall` for wall time). Both apps
are called through their WSGI interface (Flask test client), ours in this process and the
floor (`benchmarks/floor.py`) in a process of its own (`FloorProcess`: its heap is its own,
as when served), one call of ours then one call of the floor's with the same body, so that
whatever else the machine is doing falls on both alike: the ratio of the medians is the
figure that means something on a busy machine, the milliseconds much less.

Each size is measured with the cyclic garbage collector treated the same way on both sides:

- `gc on`: as served (`gc.freeze()` after start-up, the default thresholds);
- `gc off`: the collector disabled around each call (both sides), so a collection that the
  previous calls' garbage happens to trigger does not land on one side.

Four figures of ours, interleaved with the floor call by call:

- `ours`: the chart sent again (the benchmark sends the same body every time, as an EHR
  does for order-select, each edit of the order and order-sign of one patient, when it
  sends the same prefetch text each time);
- `new bundles`: the same chart again, but each prefetch Bundle with a new `id` and
  `meta.lastUpdated` every call (`new_bundles`), as when the EHR runs each prefetch query
  again and its FHIR server writes a new Bundle around the same resources;
- `new patient`: ours again after the memos kept per resource body and per patient are
  emptied (`forget_bodies`), those kept per code, name and shape left: a worker that has
  served other patients of the same EHR meets this chart for the first time;
- `first sight`: ours again with every per-process memo emptied (`forget_memos`): a worker
  that has never met any chart like this one.

Nothing passes or fails; prints one line per size and, with `--json`, writes the figures.
"""

from __future__ import annotations

import argparse
import copy
import gc
import itertools
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from benchmarks import floor
from benchmarks.workload import order_sign_request

SIZES = (50, 500, 5000, 20000)
SERVICE_PATH = "/cds-services/prior-auth-order-sign"
CALLS_BUDGET_S = 20.0
"""Seconds of our calls per size and GC mode (fewer calls at the large sizes)."""


def service_app(database: str) -> Flask:
    from cds_service import create_app

    return create_app(
        {
            "CDS_AUTH": "disabled",
            "CDS_DATABASE_URL": database,
            "CDS_CALL_DEADLINE": "120",
            "CDS_REQUEST_DEADLINE": "120",
            # 20,000 resources are about 14 MB of JSON, past the default body limit (5 MB).
            "CDS_MAX_BODY_BYTES": str(64 * 1024 * 1024),
        }
    )


def forget_bodies() -> None:
    """Empty the memos kept per resource body and per patient (prefetch values sent before,
    records of charts read before, bodies seen valid or needing no fix, the readings of
    each body, chart digests, assertion ids, reference texts), and keep those kept per
    code, name and shape: a worker that has served other patients of
    the same EHR meets a new patient's chart."""
    from cds_service import body_parts
    from cds_service.crd import coverage
    from fhir_mappings import conditions, fields, medications, observations, r4, record

    body_parts.forget_sent()
    record.forget_records()
    r4.forget_validated()
    fields.forget_references()
    observations.forget_readings()
    medications.forget_readings()
    conditions.forget_readings()
    coverage.forget_assertion_ids()


def forget_memos() -> None:
    """Empty the per-process memos, as in a worker that has never seen this chart nor any
    chart like it (no code, name or shape met before either)."""
    from fhir_mappings import (
        conditions,
        fast_validation,
        medications,
        observations,
        valuesets,
        words,
    )

    forget_bodies()
    words.forget_texts()
    fast_validation.forget_shapes()
    valuesets.forget_matches()
    conditions.forget_classified()
    medications.forget_identified()
    observations.forget_kinds()


def timed(client: FlaskClient, body: bytes, *, gc_off: bool) -> float:
    """Seconds of CPU this thread spent on one call (see `CLOCK`)."""
    if gc_off:
        gc.disable()
    try:
        started = CLOCK()
        response = client.post(SERVICE_PATH, data=body, content_type="application/json")
        elapsed = CLOCK() - started
    finally:
        if gc_off:
            gc.enable()
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.get_data(as_text=True)[:300]}")
    return elapsed


CLOCK = time.thread_time
"""CPU time of the calling thread, not wall time: on a machine busy with other work, a call
that is descheduled does not count the time it waited, so a long call (ours) is not
penalised against a short one (the floor) for the load around it. The audit writer's thread
is not counted (it is off the reply path). `--wall` measures wall time instead."""


_CALL_MARK = "CALLNO__"


def new_bundles(request: dict[str, Any]) -> Iterator[bytes]:
    """The request's body again and again, each prefetch Bundle with a new `id` and
    `meta.lastUpdated` every time, as a FHIR server writes the Bundle of each search: the
    same chart in a text never sent before."""
    marked = copy.deepcopy(request)
    for key, value in marked["prefetch"].items():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            value["id"] = f"{key}-{_CALL_MARK}"
            value["meta"] = {"lastUpdated": f"2026-12-04T10:00:00.{_CALL_MARK}Z"}
    text = json.dumps(marked).encode("utf-8")
    for call in itertools.count(1):
        yield text.replace(_CALL_MARK.encode(), f"{call:08d}".encode())


class FloorProcess:
    """The floor app in a Python process of its own, called in turn with ours: its heap
    is its own, as when it is served (in this process, the floor's garbage collections
    would also walk every object the service keeps, and look slower than they are)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # a clean interpreter
        self._conn, child = context.Pipe()
        wall = CLOCK is time.perf_counter
        self._process = context.Process(target=_floor_worker, args=(child, wall), daemon=True)
        self._process.start()
        child.close()

    def send_body(self, body: bytes) -> None:
        self._conn.send(("body", body))

    def call(self, *, gc_off: bool) -> float:
        """Seconds of CPU the floor's process spent on one call of the body sent."""
        self._conn.send(("call", gc_off))
        answer = self._conn.recv()
        if isinstance(answer, str):
            raise RuntimeError(answer)
        return float(answer)

    def close(self) -> None:
        self._conn.send(("stop", None))
        self._process.join(timeout=10)


class FloorHere:
    """The floor in the benchmark's own process (`--floor-here`): as measured before step 22
    of docs/performance.md, for comparison."""

    def __init__(self) -> None:
        self._client = floor.app.test_client()
        self._body = b""

    def send_body(self, body: bytes) -> None:
        self._body = body

    def call(self, *, gc_off: bool) -> float:
        return timed(self._client, self._body, gc_off=gc_off)

    def close(self) -> None:
        pass


def _floor_worker(conn: Connection, wall: bool) -> None:
    if wall:
        global CLOCK
        CLOCK = time.perf_counter
    client = floor.app.test_client()
    gc.collect()
    gc.freeze()  # as the gunicorn master does before it forks (both sides)
    body = b""
    while True:
        kind, value = conn.recv()
        if kind == "stop":
            return
        if kind == "body":
            body = value
            continue
        try:
            conn.send(timed(client, body, gc_off=value))
        except RuntimeError as failed:
            conn.send(str(failed))


def measure(
    ours: FlaskClient,
    base: FloorProcess | FloorHere,
    body: bytes,
    *,
    gc_off: bool,
    min_calls: int,
    rewrapped: Iterator[bytes],
) -> dict[str, float | int]:
    """Medians (ms) of ours, the floor, ours in new Bundles (`rewrapped`: `new_bundles` of
    the body), for a new patient and at first sight, interleaved call by call."""
    for _ in range(2):  # warm up both
        timed(ours, body, gc_off=gc_off)
        base.call(gc_off=gc_off)
    a: list[float] = []
    b: list[float] = []
    wrapped: list[float] = []
    fresh: list[float] = []
    cold: list[float] = []
    spent = 0.0
    while len(a) < min_calls or (spent < CALLS_BUDGET_S and len(a) < 400):
        a.append(timed(ours, body, gc_off=gc_off))
        b.append(base.call(gc_off=gc_off))
        wrapped.append(timed(ours, next(rewrapped), gc_off=gc_off))
        forget_bodies()
        fresh.append(timed(ours, body, gc_off=gc_off))
        forget_memos()
        cold.append(timed(ours, body, gc_off=gc_off))
        spent += a[-1] + wrapped[-1] + fresh[-1] + cold[-1]
    ours_ms = statistics.median(a) * 1000
    floor_ms = statistics.median(b) * 1000
    fresh_ms = statistics.median(fresh) * 1000
    cold_ms = statistics.median(cold) * 1000
    wrapped_ms = statistics.median(wrapped) * 1000
    return {
        "calls": len(a),
        "ours_ms": round(ours_ms, 2),
        "floor_ms": round(floor_ms, 2),
        "ratio": round(ours_ms / floor_ms, 2),
        "new_bundles_ms": round(wrapped_ms, 2),
        "new_bundles_ratio": round(wrapped_ms / floor_ms, 2),
        "new_patient_ms": round(fresh_ms, 2),
        "new_patient_ratio": round(fresh_ms / floor_ms, 2),
        "first_sight_ms": round(cold_ms, 2),
        "first_sight_ratio": round(cold_ms / floor_ms, 2),
    }


def slope(rows: dict[int, dict[str, float | int]], key: str) -> dict[str, float]:
    """Extra cost per extra resource (µs) between consecutive sizes."""
    sizes = sorted(rows)
    return {
        f"{lo}-{hi}": round((float(rows[hi][key]) - float(rows[lo][key])) * 1000 / (hi - lo), 2)
        for lo, hi in itertools.pairwise(sizes)
    }


def run(
    sizes: tuple[int, ...], min_calls: int, database: str, *, floor_here: bool = False
) -> dict[str, Any]:
    ours_app = service_app(database)
    gc.collect()
    gc.freeze()  # as the gunicorn master does before forking the workers (both sides)
    ours = ours_app.test_client()
    base: FloorProcess | FloorHere = FloorHere() if floor_here else FloorProcess()
    results: dict[str, Any] = {"sizes": list(sizes), "gc_on": {}, "gc_off": {}}
    try:
        for n in sizes:
            _measure_size(ours, base, n, min_calls, results)
    finally:
        base.close()
    for mode in ("gc_on", "gc_off"):
        rows = results[mode]
        results[f"{mode}_slope_us"] = {
            "ours": slope(rows, "ours_ms"),
            "floor": slope(rows, "floor_ms"),
            "new_bundles": slope(rows, "new_bundles_ms"),
            "new_patient": slope(rows, "new_patient_ms"),
            "first_sight": slope(rows, "first_sight_ms"),
        }
    return results


def _measure_size(
    ours: FlaskClient,
    base: FloorProcess | FloorHere,
    n: int,
    min_calls: int,
    results: dict[str, Any],
) -> None:
    request = order_sign_request(n)
    body = json.dumps(request).encode("utf-8")
    base.send_body(body)
    for mode in ("gc_on", "gc_off"):
        row = measure(
            ours,
            base,
            body,
            gc_off=mode == "gc_off",
            min_calls=min_calls,
            rewrapped=new_bundles(request),
        )
        results[mode][n] = row
        print(
            f"{n:>6} resources, {mode.replace('_', ' ')}: ours {row['ours_ms']:.2f} ms, "
            f"floor {row['floor_ms']:.2f} ms, ratio {row['ratio']:.2f}x; new bundles "
            f"{row['new_bundles_ms']:.2f} ms ({row['new_bundles_ratio']:.2f}x); new patient "
            f"{row['new_patient_ms']:.2f} ms ({row['new_patient_ratio']:.2f}x); first sight "
            f"{row['first_sight_ms']:.2f} ms ({row['first_sight_ratio']:.2f}x); "
            f"{row['calls']} calls",
            flush=True,
        )


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--calls", type=int, default=5, help="at least this many calls a size")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--database", default="sqlite://", help="the audit store")
    parser.add_argument("--wall", action="store_true", help="wall time, not CPU time")
    parser.add_argument(
        "--floor-here", action="store_true", help="the floor in this process, not its own"
    )
    args = parser.parse_args(argv)
    if args.wall:
        global CLOCK
        CLOCK = time.perf_counter
    sizes = tuple(int(s) for s in args.sizes.split(","))
    results = run(sizes, args.calls, args.database, floor_here=args.floor_here)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        out(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
