"""Every figure of docs/performance.md in one command:

    python -m benchmarks.performance            # or: make bench-perf

1. in process, service against floor interleaved, 50 / 500 / 5,000 / 20,000 resources, GC
   on and off (`benchmarks/inprocess.py`), and the plot `docs/performance-latency.png`;
2. under gunicorn, concurrency 1 / 4 / 16 with 500 resources beside the floor served the
   same way, and the FHIR-query path with a delayed FHIR server (`benchmarks/served.py`);
3. memory over `--memory-calls` in-process calls (`benchmarks/memory.py`; 100,000 by
   default, several minutes to hours depending on the machine; 0 skips it).

Writes `benchmarks/results/performance.json` and the block between the figures markers of
docs/performance.md (the prose around it is kept). Nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import inprocess, memory, served
from cds_service.cpus import usable_cpus

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
PLOT = ROOT / "docs" / "performance-latency.png"
RESULTS = ROOT / "benchmarks" / "results" / "performance.json"
START = "<!-- figures:start -->"
END = "<!-- figures:end -->"


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def plot(results: dict[str, Any]) -> bool:
    """Latency against chart size, ours (and at first sight) and the floor; False without
    matplotlib (the `bench` extra)."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["inprocess"]["gc_on"]
    sizes = sorted(int(n) for n in rows)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, label in (
        ("ours_ms", "service (chart sent again)"),
        ("new_bundles_ms", "service (same chart, new Bundles)"),
        ("new_patient_ms", "service (new patient)"),
        ("first_sight_ms", "service (chart never seen)"),
        ("floor_ms", "floor (parse + one card)"),
    ):
        if all(key in rows[str(n)] for n in sizes):
            ax.plot(sizes, [rows[str(n)][key] for n in sizes], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("resources in prefetch")
    ax.set_ylabel("median latency, ms (in process)")
    ax.set_title("order-sign latency against chart size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)
    return True


def _row(n: str, row: dict[str, Any]) -> str:
    return (
        f"| {int(n):,} | {row['calls']} | {row['ours_ms']:.1f} | {row['floor_ms']:.1f} | "
        f"**{row['ratio']:.2f}x** | {row['new_bundles_ms']:.1f} | {row['new_bundles_ratio']:.2f}x "
        f"| {row['new_patient_ms']:.1f} | {row['new_patient_ratio']:.2f}x "
        f"| {row['first_sight_ms']:.1f} | {row['first_sight_ratio']:.2f}x |"
    )


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        START,
        f"Taken {m['when']}, Python {m['python']}, {m['cpus']} CPUs, load average at start "
        f"{', '.join(str(x) for x in m['load_average_at_start'])} "
        f"(command `python -m benchmarks.performance`).",
        "",
    ]
    ip = results["inprocess"]
    for mode, title in (("gc_on", "GC on (as served)"), ("gc_off", "GC off around each call")):
        lines += [
            f"### In process, {title}",
            "",
            "Median CPU time of the calling thread per call (`benchmarks/inprocess.py`).",
            "",
            "| resources | calls | ours, CPU ms | floor, CPU ms | ratio | new Bundles, CPU ms "
            "| ratio | new patient, CPU ms | ratio | first sight, CPU ms | ratio |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *(_row(n, ip[mode][n]) for n in sorted(ip[mode], key=int)),
            "",
            "Cost per extra resource (µs): "
            + "; ".join(
                f"{span}: ours {ip[f'{mode}_slope_us']['ours'][span]}, new Bundles "
                f"{ip[f'{mode}_slope_us']['new_bundles'][span]}, new patient "
                f"{ip[f'{mode}_slope_us']['new_patient'][span]}, first sight "
                f"{ip[f'{mode}_slope_us']['first_sight'][span]}, floor "
                f"{ip[f'{mode}_slope_us']['floor'][span]}"
                for span in ip[f"{mode}_slope_us"]["ours"]
            ),
            "",
        ]
    sv = results.get("served")
    if sv:
        lines += [
            f"### Under gunicorn, 500 resources, {sv['workers']} gevent workers each",
            "",
            "| clients | ours p50 | p99 | calls/s | floor p50 | p99 | calls/s | p50 ratio |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for clients, row in sv["concurrency"].items():
            a, b = row["ours"], row["floor"]
            lines.append(
                f"| {clients} | {a['p50_ms']} ms | {a['p99_ms']} | {a['calls_per_s']} | "
                f"{b['p50_ms']} ms | {b['p99_ms']} | {b['calls_per_s']} | "
                f"**{row['p50_ratio']}x** |"
            )
        fp = sv["fhir_path"]
        lines += [
            "",
            f"### FHIR-query path ({fp['size']} resources, {fp['delay_ms']:.0f} ms per query, "
            f"the Observation query twice that)",
            "",
            f"No-prefetch p50 **{fp['no_prefetch_p50_ms']} ms**; slowest single query "
            f"(`{fp['slowest_key']}`) {fp['slowest_ms']} ms; all queries one after the other "
            f"{fp['sum_ms']} ms; evaluation (full prefetch, same server) p50 "
            f"{fp['evaluation_p50_ms']} ms. Ratio to the slowest query "
            f"**{fp['ratio_to_slowest']}x**, to slowest query + evaluation "
            f"**{fp['ratio_to_slowest_plus_evaluation']}x**.",
            "",
        ]
    mem = results.get("memory")
    if mem:
        first, last = mem["rss_mb"][1], mem["rss_mb"][-1]
        lines += [
            f"### Memory over {mem['calls']:,} calls ({mem['size']} resources, a new chart "
            "every call)",
            "",
            f"RSS {first[1]} MB after {first[0]:,} calls, {last[1]} MB after {last[0]:,} "
            f"({mem['seconds']} s). Every reading: "
            + ", ".join(f"{n:,}: {mb}" for n, mb in mem["rss_mb"]),
            "",
        ]
    lines.append(END)
    return "\n".join(lines)


def write_doc(results: dict[str, Any]) -> None:
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(head + render(results) + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite the doc and plot from the last JSON"
    )
    parser.add_argument("--sizes", default="50,500,5000,20000")
    parser.add_argument("--memory-calls", type=int, default=100_000)
    parser.add_argument("--no-served", action="store_true", help="skip the gunicorn part")
    args = parser.parse_args(argv)
    if args.render_only:
        saved: dict[str, Any] = json.loads(RESULTS.read_text(encoding="utf-8"))
        plot(saved)
        write_doc(saved)
        return 0
    results: dict[str, Any] = {"machine": machine()}
    sizes = tuple(int(s) for s in args.sizes.split(","))
    results["inprocess"] = json.loads(json.dumps(inprocess.run(sizes, 5, "sqlite://")))
    if not args.no_served:
        workers = usable_cpus()
        results["served"] = {
            "workers": workers,
            "concurrency": served.concurrency([1, 4, 16], 8.0, 500, workers),
            "fhir_path": served.fhir_path(500, 100.0, 20, workers),
        }
    if args.memory_calls:
        results["memory"] = memory.run(args.memory_calls, 30, max(1, args.memory_calls // 20))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    plotted = plot(results)
    write_doc(results)
    print(f"wrote {DOC.relative_to(ROOT)}, {RESULTS.relative_to(ROOT)}", end="")
    print(f" and {PLOT.relative_to(ROOT)}" if plotted else " (no plot: install the bench extra)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
