"""Latency, throughput and memory of the service under gunicorn, against a floor.

    .venv/bin/python -m benchmarks.run            # about 3 minutes; writes docs/benchmarks.md

Starts `cds-service serve` the way production does (gunicorn, one worker per core,
CDS_AUTH=disabled, a temporary SQLite audit store) and the floor (`benchmarks/floor.py`:
Flask, parse the body, one fixed card) served the same way, and drives both from this
process over loopback:

1. latency p50 / p95 / p99 of order-sign calls with full prefetch of 50, 500 and 5,000
   resources (`benchmarks/workload.py`), one call at a time;
2. throughput at concurrency 1, 4 and 16 (500-resource calls, fixed duration);
3. the no-prefetch path: the FHIR sandbox (`sandbox/fhir_sandbox.py`) holds the
   500-resource chart, the service reads it (CDS_FHIR_SERVERS); its latency is compared
   with the slowest single prefetch query timed directly against the sandbox;
4. peak memory (VmHWM) of every gunicorn worker.

Results go to docs/benchmarks.md (between the results markers) and
docs/latency-vs-prefetch.png. Every process started here is stopped on exit. Not a test:
nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cds_service.store import COVERAGE_INFORMATION_URL
from sandbox import service as shared_service
from sandbox.ehr import fill_template, next_link, token_values

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "latency-vs-prefetch.png"
HOOK = "order-sign"


def _service_definition(hook: str = HOOK) -> dict[str, Any]:
    """The service definition (hooks/services/*.json) of the order-sign hook."""
    for path in sorted((ROOT / "hooks" / "services").glob("*.json")):
        definition: dict[str, Any] = json.loads(path.read_text())
        if definition.get("hook") == hook:
            return definition
    raise RuntimeError(f"no service definition for {hook} in hooks/services/")


SERVICE_PATH = f"/cds-services/{_service_definition()['id']}"
START_MARK = "<!-- results:start -->"
END_MARK = "<!-- results:end -->"
INSTALL_HINT = ".venv/bin/pip install -e '.[test,bench]'"
START_TIMEOUT_S = 60.0


# --------------------------------------------------------------------------- processes


@dataclass
class Server:
    """A server under test (ours or the floor) under gunicorn in its own session, stopped by
    `sandbox.service`: SIGTERM to the master, then SIGKILL of its process group."""

    name: str
    process: shared_service.ServiceProcess
    port: int

    def worker_pids(self) -> list[int]:
        pid = self.process.process.pid
        try:
            return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def peak_rss_mb(self) -> list[float]:
        out = []
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/status").read_text()
                match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
                if match:
                    out.append(int(match.group(1)) / 1024)
        return out

    def stop(self) -> None:
        self.process.stop()


def ready(name: str, process: shared_service.ServiceProcess, workers: int) -> Server:
    """`process` (already answering discovery) once all its `workers` are forked and booted;
    stopped if that does not happen within START_TIMEOUT_S."""
    server = Server(name, process, urlsplit(process.base_url).port or 0)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while len(server.worker_pids()) < workers:
            if process.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: {workers} workers did not start\n{process.log_tail()}")
            time.sleep(0.1)
        time.sleep(0.5)  # let the last worker finish booting
    except BaseException:
        server.stop()
        raise
    return server


def start_service(tmp: Path, workers: int, fhir_servers: Sequence[str] = ()) -> Server:
    """`cds-service serve` as production runs it, by the shared runner: authentication off,
    a fresh SQLite audit store in `tmp`, warnings only in the log."""
    label = "no-prefetch" if fhir_servers else "prefetch"
    process = shared_service.start_service(
        fhir_servers=fhir_servers,
        database_url=f"sqlite:///{tmp / f'audit-{label}.sqlite'}",
        log_path=tmp / f"service-{label}.log",
        workers=workers,
        timeout_s=START_TIMEOUT_S,
        extra_env={"CDS_LOG_LEVEL": "WARNING"},
    )
    return ready("service", process, workers)


def start_floor(tmp: Path, workers: int, worker_class: str = "gthread") -> Server:
    """The floor under gunicorn, set up as `cds-service serve` sets up the service (the
    shared runner starts only our service; stopping and waiting are the shared ones):
    `gthread` with 4 threads per worker, or `gevent` (benchmarks/served.py)."""
    port = shared_service.free_port()
    cmd = [
        str(VENV_BIN / "gunicorn"),
        "--config",
        "python:benchmarks.floor_gunicorn",  # what `cds-service serve` sets beyond these
        "--bind",
        f"{shared_service.LOOPBACK}:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        *(["--threads", "4"] if worker_class == "gthread" else []),  # as `cds-service serve`
        "--preload",
        "--log-level",
        "warning",
        "benchmarks.floor:app",
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    log = tmp / "floor.log"
    with log.open("wb") as sink:
        popen = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process = shared_service.ServiceProcess(popen, f"http://{shared_service.LOOPBACK}:{port}", log)
    try:
        shared_service.wait_for_discovery(process, START_TIMEOUT_S)
    except shared_service.ServiceError:
        code = popen.poll()
        process.stop()
        why = f"exited with {code}" if code is not None else "did not answer discovery"
        raise RuntimeError(f"the floor {why}\n{process.log_tail()}") from None
    except BaseException:  # also Ctrl-C while waiting: never leave gunicorn behind
        process.stop()
        raise
    return ready("floor", process, workers)


# --------------------------------------------------------------------------- load


@dataclass
class Sample:
    seconds: list[float] = field(default_factory=list)
    errors: int = 0
    first_body: bytes = b""


def connect(port: int, timeout: float = 60) -> http.client.HTTPConnection:
    """A keep-alive connection with Nagle off, as load generators (wrk, hey) do: with it on,
    delayed ACKs add up to 40 ms to some calls and measure the kernel, not the server."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", SERVICE_PATH, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def sequential(port: int, body: bytes, *, budget_s: float, max_n: int, min_n: int) -> Sample:
    """One call at a time on one keep-alive connection, after 3 warm-up calls."""
    sample = Sample()
    conn = connect(port)
    for _ in range(3):
        status, sample.first_body = post(conn, body)
    started = time.monotonic()
    while len(sample.seconds) < max_n and (
        len(sample.seconds) < min_n or time.monotonic() - started < budget_s
    ):
        t0 = time.perf_counter()
        status, _ = post(conn, body)
        sample.seconds.append(time.perf_counter() - t0)
        sample.errors += status != 200
    conn.close()
    return sample


def concurrent(port: int, body: bytes, clients: int, duration_s: float) -> tuple[float, Sample]:
    """`clients` threads, each on its own connection, for `duration_s`: calls per second."""
    sample = Sample()
    lock = threading.Lock()
    stop_at = time.monotonic() + duration_s
    barrier = threading.Barrier(clients)

    def client() -> None:
        conn = connect(port, timeout=120)
        post(conn, body)  # warm the connection
        barrier.wait()
        mine: list[float] = []
        errors = 0
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            status, _ = post(conn, body)
            mine.append(time.perf_counter() - t0)
            errors += status != 200
        conn.close()
        with lock:
            sample.seconds.extend(mine)
            sample.errors += errors

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return len(sample.seconds) / elapsed, sample


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1] * 1000


# --------------------------------------------------------------------------- sandbox


def _read_key(session: Any, base: str, path: str) -> None:
    """GET one prefetch query and every next page, as the service does."""
    url: str | None = f"{base}/{path}"
    while url is not None:
        resp = session.get(url, headers={"Accept": "application/fhir+json"}, timeout=30)
        resp.raise_for_status()
        body = resp.json()
        url = next_link(body)


def time_queries(
    base: str, context: dict[str, Any], repeats: int, concurrency: int = 8
) -> tuple[dict[str, float], float]:
    """Median seconds per prefetch key (one after the other, every page), and median
    seconds to read all of them at once with `concurrency` threads (the service's
    `CDS_MAX_CONCURRENT_QUERIES` default), each on its own keep-alive connection."""
    import requests

    templates = _service_definition()["prefetch"]
    values = token_values(context, {})
    paths = {
        key: path for key, t in templates.items() if (path := fill_template(t, values)) is not None
    }
    times: dict[str, list[float]] = {}
    with requests.Session() as session:
        for _ in range(repeats):
            for key, path in paths.items():
                t0 = time.perf_counter()
                _read_key(session, base, path)
                times.setdefault(key, []).append(time.perf_counter() - t0)
    local = threading.local()

    def read(path: str) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        _read_key(local.session, base, path)

    together: list[float] = []
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(read, paths.values()))  # open the connections
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(read, paths.values()))
            together.append(time.perf_counter() - t0)
    medians = {key: statistics.median(values) for key, values in times.items()}
    return medians, statistics.median(together)


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError):
        kb = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --------------------------------------------------------------------------- run


@dataclass
class Results:
    machine: dict[str, str]
    command: str
    workers: int
    latency: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    throughput: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    no_prefetch: dict[str, Any] = field(default_factory=dict)
    memory_mb: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def measure_latency(server: Server, bodies: dict[int, bytes], budget_s: float) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for size, body in bodies.items():
        sample = sequential(server.port, body, budget_s=budget_s, max_n=200, min_n=15)
        out[size] = {
            "n": len(sample.seconds),
            "p50": pct(sample.seconds, 50),
            "p95": pct(sample.seconds, 95),
            "p99": pct(sample.seconds, 99),
            "errors": sample.errors,
        }
        print(f"  {server.name} {size:>5} resources: p50 {out[size]['p50']:.1f} ms", flush=True)
        if server.name == "service":
            check_answer(sample.first_body, f"{size}-resource call")
    return out


def check_answer(body: bytes, what: str) -> None:
    """The benchmark's order meets the criteria: the answer is the coverage information
    attached to it (covered, Da Vinci CRD), with no card repeating it."""
    answer = json.loads(body)
    covered = [
        part.get("valueCode")
        for action in answer.get("systemActions", [])
        for ext in action.get("resource", {}).get("extension", [])
        if ext.get("url") == COVERAGE_INFORMATION_URL
        for part in ext.get("extension", [])
        if part.get("url") == "covered"
    ]
    if covered != ["covered"]:
        summaries = [c.get("summary", "") for c in answer.get("cards", [])]
        raise RuntimeError(f"{what}: unexpected answer: covered {covered}, cards {summaries}")


def measure_throughput(
    server: Server, body: bytes, levels: list[int], duration_s: float
) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for clients in levels:
        rate, sample = concurrent(server.port, body, clients, duration_s)
        out[clients] = {"rps": rate, "p50": pct(sample.seconds, 50), "errors": sample.errors}
        print(f"  {server.name} concurrency {clients:>2}: {rate:.1f} calls/s", flush=True)
    return out


def no_prefetch(tmp: Path, workers: int, size: int, repeats: int) -> dict[str, Any]:
    from benchmarks.workload import context_only_request, transaction
    from sandbox import fhir_sandbox

    fhir_sandbox.install()
    sandbox = fhir_sandbox.start()
    try:
        bundle = tmp / "chart.json"
        bundle.write_text(json.dumps(transaction(size)))
        fhir_sandbox.load_patients(sandbox.base_url, [bundle])
        service = start_service(tmp, workers, fhir_servers=[sandbox.base_url])
        try:
            request = context_only_request(sandbox.base_url, size)
            body = json.dumps(request).encode()
            sample = sequential(service.port, body, budget_s=20, max_n=repeats, min_n=repeats)
            check_answer(sample.first_body, "no-prefetch call")
            queries, together = time_queries(sandbox.base_url, request["context"], repeats=5)
        finally:
            service.stop()
    finally:
        sandbox.stop()
    slowest = max(queries, key=lambda k: queries[k])
    return {
        "size": size,
        "p50": pct(sample.seconds, 50),
        "p95": pct(sample.seconds, 95),
        "errors": sample.errors,
        "queries_ms": {k: v * 1000 for k, v in sorted(queries.items())},
        "slowest_key": slowest,
        "slowest_ms": queries[slowest] * 1000,
        "sum_ms": sum(queries.values()) * 1000,
        "together_ms": together * 1000,
    }


def run(args: argparse.Namespace) -> Results:
    from benchmarks.workload import count_prefetch, order_sign_request

    workers = os.cpu_count() or 1
    results = Results(machine(), command="python -m benchmarks.run", workers=workers)
    sizes = [int(s) for s in args.sizes.split(",")]
    requests_by_size = {n: order_sign_request(n) for n in sizes}
    bodies = {n: json.dumps(r).encode() for n, r in requests_by_size.items()}
    for n, r in requests_by_size.items():
        assert count_prefetch(r) == n, (n, count_prefetch(r))
    tput_size = 500 if 500 in bodies else sizes[len(sizes) // 2]
    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory(prefix="cds-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for name, starter in (("floor", start_floor), ("service", start_service)):
            print(f"{name}: starting ({workers} workers)", flush=True)
            server = starter(tmp, workers)
            try:
                results.latency[name] = measure_latency(server, bodies, args.budget)
                results.throughput[name] = measure_throughput(
                    server, bodies[tput_size], levels, args.duration
                )
                results.memory_mb[name] = server.peak_rss_mb()
            finally:
                server.stop()
        if args.no_sandbox:
            results.notes.append("The no-prefetch measurement was skipped (--no-sandbox).")
        else:
            print("no-prefetch: FHIR sandbox", flush=True)
            try:
                results.no_prefetch = no_prefetch(tmp, workers, tput_size, repeats=15)
            except Exception as exc:  # the rest of the report is still worth writing
                results.notes.append(f"The no-prefetch measurement failed: {exc}")
    results.throughput_size = tput_size  # type: ignore[attr-defined]
    return results


# --------------------------------------------------------------------------- report


def plot(results: Results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, style in (("service", "o-"), ("floor", "s--")):
        data = results.latency[name]
        sizes = sorted(data)
        p50 = [data[s]["p50"] for s in sizes]
        p95 = [data[s]["p95"] for s in sizes]
        label = "anakinra-cds" if name == "service" else "floor (parse + fixed card)"
        ax.plot(sizes, p50, style, label=f"{label} p50")
        ax.fill_between(sizes, p50, p95, alpha=0.15)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("prefetch size (FHIR resources)")
    ax.set_ylabel("latency (ms), p50; band up to p95")
    ax.set_title(
        f"order-sign latency vs prefetch size ({results.workers} gunicorn workers, "
        f"{results.machine['nproc']} cores)"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT)
    plt.close(fig)


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def render(results: Results) -> str:
    m = results.machine
    ours, floor = results.latency["service"], results.latency["floor"]
    sizes = sorted(ours)
    lines = [
        START_MARK,
        f"Measured {m['date']} on {m['nproc']} cores ({m['cpu']}), {m['memory']} memory, "
        f"Python {m['python']}, {m['os']}; {results.workers} gunicorn workers (gthread, "
        f"4 threads) for both servers; command `{results.command}`.",
        "",
        "### Latency, one call at a time (full prefetch)",
        "",
        "| prefetch | calls | ours p50 | p95 | p99 | floor p50 | p95 | p99 | p50 ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in sizes:
        o, f = ours[s], floor[s]
        lines.append(
            f"| {s:,} | {o['n']} | {o['p50']:.1f} ms | {o['p95']:.1f} | {o['p99']:.1f} "
            f"| {f['p50']:.1f} ms | {f['p95']:.1f} | {f['p99']:.1f} | {o['p50'] / f['p50']:.2f}x |"
        )
    lines += [
        "",
        "With a few dozen calls per size, p99 is close to the slowest call seen.",
        "",
        "![latency vs prefetch size](latency-vs-prefetch.png)",
        "",
    ]
    # Linear growth: marginal cost per resource between consecutive sizes.
    marginal = []
    for a, b in itertools.pairwise(sizes):
        per = (ours[b]["p50"] - ours[a]["p50"]) / (b - a) * 1000
        fper = (floor[b]["p50"] - floor[a]["p50"]) / (b - a) * 1000
        marginal.append((a, b, per, fper))
    lines.append("Cost per extra resource (p50 difference / resource difference):")
    lines.append("")
    for a, b, per, fper in marginal:
        lines.append(f"- {a:,} to {b:,}: ours {per:.1f} µs, floor {fper:.1f} µs")
    tput_size = getattr(results, "throughput_size", 500)
    lines += [
        "",
        f"### Throughput ({tput_size}-resource calls, {results.workers} workers)",
        "",
        "| concurrency | ours calls/s | ours p50 | floor calls/s | floor p50 | ratio (calls/s) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for c in sorted(results.throughput["service"]):
        o, f = results.throughput["service"][c], results.throughput["floor"][c]
        lines.append(
            f"| {c} | {o['rps']:.1f} | {o['p50']:.1f} ms | {f['rps']:.1f} | {f['p50']:.1f} ms "
            f"| {o['rps'] / f['rps']:.2f} |"
        )
    lines += [
        "",
        "The load generator runs on the same cores as the servers (loopback).",
        "",
        "### No prefetch: the service reads the FHIR sandbox",
        "",
    ]
    npf = results.no_prefetch
    evaluation = 0.0
    if npf:
        evaluation = ours.get(npf["size"], {}).get("p50", 0.0)
        bound = npf["slowest_ms"] + evaluation
        lines += [
            f"Chart of {npf['size']} resources in the sandbox (pages of 100). The service's "
            f"p50 is **{npf['p50']:.1f} ms** (p95 {npf['p95']:.1f}). The slowest single "
            f"prefetch query (`{npf['slowest_key']}`, all its pages) takes "
            f"{npf['slowest_ms']:.1f} ms; all queries one after the other "
            f"{npf['sum_ms']:.1f} ms. Evaluation (the same call with full prefetch) p50 "
            f"{evaluation:.1f} ms. Ratio to slowest query + evaluation: "
            f"**{npf['p50'] / bound:.2f}x**.",
            "",
        ]
        if "together_ms" in npf:
            together = npf["together_ms"] + evaluation
            lines += [
                f"A bare client reading all the queries at once (8 threads, keep-alive, every "
                f"page, JSON parsed) needs {npf['together_ms']:.1f} ms: what this FHIR server "
                f"can give when asked for everything together. Ratio to that + evaluation: "
                f"**{npf['p50'] / together:.2f}x**.",
                "",
            ]
        lines += [
            "| prefetch key | ms (median of 5, every page) |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {v:.1f} |" for k, v in npf["queries_ms"].items()]
        lines.append("")
    else:
        lines += ["Not measured in this run.", ""]
    lines += [
        "### Peak memory per worker (VmHWM)",
        "",
        "| server | workers' peak RSS |",
        "|---|---|",
    ]
    for name in ("service", "floor"):
        mem = ", ".join(f"{v:.0f} MB" for v in results.memory_mb.get(name, []))
        lines.append(f"| {'ours' if name == 'service' else 'floor'} | {mem or 'n/a'} |")
    lines += ["", "### Targets", ""]
    r500 = ours[500]["p50"] / floor[500]["p50"] if 500 in ours else None
    r5000 = ours[5000]["p50"] / floor[5000]["p50"] if 5000 in ours else None
    if r500 is not None:
        lines.append(
            f"- p50 at 500 resources at most 1.5x the floor: {r500:.2f}x, {verdict(r500 <= 1.5)}"
        )
    if r5000 is not None:
        lines.append(
            f"- p50 at 5,000 resources at most 2x the floor: {r5000:.2f}x, {verdict(r5000 <= 2)}"
        )
    if len(marginal) >= 2 and marginal[0][2] > 0:
        growth = marginal[-1][2] / marginal[0][2]
        lines.append(
            f"- cost linear in prefetch size: per-resource cost {marginal[0][2]:.1f} µs "
            f"({marginal[0][0]:,}-{marginal[0][1]:,}) vs {marginal[-1][2]:.1f} µs "
            f"({marginal[-1][0]:,}-{marginal[-1][1]:,}), ratio {growth:.2f}: "
            f"{verdict(growth <= 1.5)} (linear: ratio near 1 or below)"
        )
    if npf:
        ratio = npf["p50"] / (npf["slowest_ms"] + evaluation)
        lines.append(
            f"- no-prefetch within 1.3x of slowest query + evaluation: {ratio:.2f}x, "
            f"{verdict(ratio <= 1.3)}"
        )
        if "together_ms" in npf:
            ratio = npf["p50"] / (npf["together_ms"] + evaluation)
            lines.append(
                f"  (within 1.3x of all queries read at once + evaluation: {ratio:.2f}x, "
                f"{verdict(ratio <= 1.3)})"
            )
    lines += [f"- {note}" for note in results.notes]
    lines.append(END_MARK)
    return "\n".join(lines) + "\n"


def write_doc(results: Results) -> None:
    block = render(results)
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        tail = rest.split(END_MARK, 1)[1]
        text = head + block.rstrip("\n") + tail
    else:
        text = "# Benchmarks\n\n" + block
    DOC.write_text(text, encoding="utf-8")
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "latest.json").write_text(
        json.dumps(results.__dict__, indent=1, default=str), encoding="utf-8"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--sizes", default="50,500,5000", help="prefetch sizes")
    parser.add_argument("--concurrency", default="1,4,16", help="throughput levels")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per latency size")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per level")
    parser.add_argument("--no-sandbox", action="store_true", help="skip the no-prefetch part")
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"matplotlib is missing: run {INSTALL_HINT}", file=sys.stderr)
        return 2
    if (
        not (VENV_BIN / "cds-service").exists()
        or shutil.which("gunicorn", path=str(VENV_BIN)) is None
    ):
        print(f"cds-service / gunicorn not found beside {sys.executable}: run {INSTALL_HINT}")
        return 2
    results = run(args)
    plot(results)
    write_doc(results)
    print(f"wrote {DOC.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
