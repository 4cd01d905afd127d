"""Memory over many calls: the service answers N order-sign calls in this process and the
resident set size is read every so often. Flat means it stops growing once the per-process
memos (validated bodies, value-set look-ups; both bounded) are full.

    python -m benchmarks.memory [--calls 100000] [--size 50] [--json FILE]

Every call sends a chart that differs from all before it (one Observation value changes
per call), so the memo of validated bodies fills to its bound and then keeps replacing
entries, as in a worker that serves many patients. Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.inprocess import SERVICE_PATH, service_app
from benchmarks.workload import order_sign_request


def rss_mb() -> float:
    text = Path("/proc/self/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def varied_bodies(size: int) -> tuple[bytes, bytes]:
    """The body split around one Observation value, so each call can carry its own value."""
    body = order_sign_request(size)
    marker = 987654.25
    for entry in body["prefetch"]["observations"]["entry"]:
        resource = entry["resource"]
        if "valueQuantity" in resource:
            resource["valueQuantity"]["value"] = marker
            break
    text = json.dumps(body).encode("utf-8")
    head, tail = text.split(str(marker).encode(), 1)
    return head, tail


def run(calls: int, size: int, every: int) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="cds-memory-")
    app = service_app(f"sqlite:///{folder}/audit.db")  # a file, as served: not in memory
    gc.collect()
    gc.freeze()
    client = app.test_client()
    head, tail = varied_bodies(size)
    samples: list[tuple[int, float]] = [(0, rss_mb())]
    started = time.monotonic()
    for i in range(1, calls + 1):
        body = head + f"{100 + (i % 900_000) / 1000:.3f}".encode() + tail
        response = client.post(SERVICE_PATH, data=body, content_type="application/json")
        if response.status_code != 200:
            raise RuntimeError(f"call {i}: HTTP {response.status_code}")
        if i % every == 0:
            samples.append((i, rss_mb()))
            print(f"{i:>7} calls: RSS {samples[-1][1]:.1f} MB", flush=True)
    writer = app.extensions.get("audit_writer")
    if writer is not None:
        writer.flush(60)
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "calls": calls,
        "size": size,
        "seconds": round(time.monotonic() - started, 1),
        "rss_mb": [[n, round(mb, 1)] for n, mb in samples],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=30, help="resources per chart")
    parser.add_argument("--every", type=int, default=2_000, help="read RSS every N calls")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    results = run(args.calls, args.size, args.every)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
