"""A bounded load test: `cds-service serve` with 2 gunicorn workers on loopback, 16 client
threads, 2,000 requests. No request may fail, and worker memory may not keep growing."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.service import ServiceProcess, start_service
from tests.answers import is_answered
from tests.conftest import HOOKS_DIR, load_example

REQUESTS = 2000
CLIENTS = 16
WORKERS = 2
GROWTH_LIMIT_KB = 48 * 1024  # per worker, between the two halves


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces: the parent pid is the 2nd field after ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServiceProcess]:
    with start_service(
        fhir_servers=[],
        database_url=f"sqlite:///{tmp_path / 'load.sqlite'}",
        log_path=tmp_path / "service.log",
        workers=WORKERS,
        extra_env={"CDS_HOOKS_DIR": str(HOOKS_DIR), "CDS_LOG_LEVEL": "WARNING"},
    ) as service:
        yield service


@pytest.mark.load
def test_two_thousand_requests_without_an_error(server: ServiceProcess, tmp_path: Path) -> None:
    base, process = server.base_url, server.process
    sign = load_example("order-sign-prefetch.json")
    select = load_example("order-select.json")
    local = threading.local()

    def one(index: int) -> tuple[str, int, Any]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        kind = ("sign", "sign", "select", "discovery")[index % 4]
        if kind == "discovery":
            response = session.get(f"{base}/cds-services", timeout=30)
        else:
            body = dict(sign if kind == "sign" else select)
            body["hookInstance"] = f"load-{index}"
            response = session.post(
                f"{base}/cds-services/anakinra-order-{kind}", json=body, timeout=30
            )
        return kind, response.status_code, response.json()

    def run(indexes: range) -> list[tuple[str, int, Any]]:
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            return list(pool.map(one, indexes))

    # The first worker may answer discovery before gunicorn has forked the second.
    workers = _children(process.pid)
    for _ in range(100):
        if len(workers) == WORKERS:
            break
        time.sleep(0.1)
        workers = _children(process.pid)
    assert len(workers) == WORKERS
    first = run(range(REQUESTS // 2))
    rss_first = {pid: _rss_kb(pid) for pid in workers}
    second = run(range(REQUESTS // 2, REQUESTS))
    rss_second = {pid: _rss_kb(pid) for pid in workers}

    results = first + second
    assert Counter(status for _, status, _ in results) == Counter({200: REQUESTS})
    for kind, _, body in results:
        if kind == "sign":
            assert is_answered(body), "every order-sign call answers its Kineret order"
    assert _children(process.pid) == workers, "a worker was restarted"
    for pid in workers:
        assert rss_second[pid] - rss_first[pid] < GROWTH_LIMIT_KB, (rss_first, rss_second)
    # Every service call was audited: none lost to two workers writing one SQLite file.
    # The answers did not wait for the audit writes: stopping the service writes what its
    # workers still had queued.
    server.stop()
    with sqlite3.connect(tmp_path / "load.sqlite") as conn:
        audited = conn.execute("select count(*) from invocations").fetchone()[0]
    assert audited == sum(1 for kind, _, _ in results if kind != "discovery")
