"""A sick audit database never holds the prescriber's answer, and nothing audited is lost
without a count: a PostgreSQL that accepts connections and never answers, one that
answers the handshake and then stalls, and a SQLite file another process keeps locked."""

from __future__ import annotations

import functools
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from cds_service import create_app
from cds_service.audit_writer import AuditWriter, audit_status
from cds_service.store import AuditStore, InvocationRecord
from sandbox.service import start_service
from tests.answers import is_answered
from tests.conftest import HOOKS_DIR, PINNED_NOW, base_config, load_example, wait_for_audit
from tests.faults.fake_postgres import Mode, fake_postgres, proxied_test_postgres

SIGN = "/cds-services/anakinra-order-sign"
PATIENT_CANARY = "Patient/canary-7731"
GENEROUS = 60.0
"""A functional bound on things that must end (not a speed goal): far above every
configured timeout here, far below 'hangs'."""


def _record(hook_instance: str) -> InvocationRecord:
    return InvocationRecord(
        hook_instance=hook_instance,
        service_id="anakinra-order-sign",
        hook="order-sign",
        received_at=PINNED_NOW,
        patient_ref=PATIENT_CANARY,
    )


def _answered(call: Callable[[], Any]) -> Any:
    """The result of `call`, which must return within `GENEROUS` seconds."""
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(GENEROUS)
    assert result, "the call did not return: it waited for the database"
    return result[0]


def _signed_calls(app: Flask, count: int, prefix: str) -> list[Any]:
    client = app.test_client()
    answers = []
    for index in range(count):
        body = load_example("order-sign-prefetch.json")
        body["hookInstance"] = f"{prefix}-{index}"
        answers.append(_answered(functools.partial(client.post, SIGN, json=body)))
    return answers


@pytest.fixture
def locked_sqlite(tmp_path: Path) -> Iterator[tuple[str, sqlite3.Connection]]:
    """A SQLite audit file (schema made) and a connection of another 'process' that holds
    its write lock until the test commits it."""
    path = tmp_path / "audit.sqlite"
    url = f"sqlite:///{path}"
    maker = AuditStore(url)
    maker.create_schema()
    maker.dispose()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # no other writer; readers may read
    yield url, holder
    holder.close()


def _invocations(url: str) -> list[str]:
    with sqlite3.connect(urlsplit(url).path.lstrip("/").join(["/", ""])) as conn:
        return [row[0] for row in conn.execute("select hook_instance from invocations")]


def test_a_locked_database_delays_records_and_the_queue_catches_up(
    locked_sqlite: tuple[str, sqlite3.Connection], caplog: pytest.LogCaptureFixture
) -> None:
    url, holder = locked_sqlite
    app = create_app(base_config(CDS_DATABASE_URL=url, CDS_DATABASE_TIMEOUT=0.2))
    answers = _signed_calls(app, 5, "locked")
    assert [a.status_code for a in answers] == [200] * 5
    assert all(is_answered(a.get_json()) for a in answers)
    writer = app.extensions["audit_writer"]
    assert not writer.flush(timeout=0.5)  # the database is still locked: nothing written
    status = audit_status(app.extensions)
    assert status is not None
    assert status["written"] == 0
    assert status["delayed"] >= 1
    assert status["database"] == "failing"
    assert status["lost"] == 0
    assert _invocations(url) == []

    holder.execute("COMMIT")  # the database is back
    wait_for_audit(app)
    assert sorted(_invocations(url)) == [f"locked-{i}" for i in range(5)]
    status = audit_status(app.extensions)
    assert status is not None
    assert (status["written"], status["queued"], status["lost"]) == (5, 0, 0)
    assert status["database"] == "ok"
    events = [getattr(r, "event", None) for r in caplog.records]
    assert "audit-failing" in events
    assert "audit-recovered" in events


def test_a_full_queue_drops_records_with_a_count_and_a_log_line_without_patient_data(
    locked_sqlite: tuple[str, sqlite3.Connection], caplog: pytest.LogCaptureFixture
) -> None:
    url, holder = locked_sqlite
    app = create_app(
        base_config(CDS_DATABASE_URL=url, CDS_DATABASE_TIMEOUT=0.2, CDS_AUDIT_QUEUE_SIZE=2)
    )
    answers = _signed_calls(app, 5, "full")
    assert [a.status_code for a in answers] == [200] * 5
    status = audit_status(app.extensions)
    assert status is not None
    assert (status["dropped"], status["queued"]) == (3, 2)
    lost = [r for r in caplog.records if getattr(r, "event", None) == "audit-record-lost"]
    assert sorted(r.__dict__["hookInstance"] for r in lost) == ["full-2", "full-3", "full-4"]
    assert {r.__dict__["reason"] for r in lost} == {"queue-full"}
    logged = " ".join(str(r.__dict__) for r in caplog.records)
    assert "pt-ra-1001" not in logged
    assert "Patient/" not in logged

    holder.execute("COMMIT")
    wait_for_audit(app)
    assert sorted(_invocations(url)) == ["full-0", "full-1"]


def test_records_left_at_shutdown_are_counted_and_logged(
    locked_sqlite: tuple[str, sqlite3.Connection], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = locked_sqlite
    store = AuditStore(url, timeout=0.1)
    writer = AuditWriter(store.record_invocations, retry_max=0.1)
    for index in range(3):
        assert writer.submit(_record(f"late-{index}"))
    status = writer.close(timeout=0.5)
    assert (status.unwritten, status.written, status.lost) == (3, 0, 3)
    lost = [r for r in caplog.records if getattr(r, "event", None) == "audit-record-lost"]
    assert [r.__dict__["reason"] for r in lost] == ["shutdown"] * 3
    assert PATIENT_CANARY not in " ".join(str(r.__dict__) for r in caplog.records)
    assert not writer.submit(_record("after-close"))  # counted as dropped, never queued
    assert writer.status().dropped == 1


def test_a_record_the_database_refuses_is_counted_and_the_others_are_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    store = AuditStore(url)
    store.create_schema()
    writer = AuditWriter(store.record_invocations)
    for name in ("good-1", "bad-\ud800", "good-2"):  # a lone surrogate cannot be stored
        writer.submit(_record(name))
    assert writer.flush(GENEROUS)
    status = writer.status()
    assert (status.written, status.rejected) == (2, 1)
    assert sorted(_invocations(url)) == ["good-1", "good-2"]
    (lost,) = [r for r in caplog.records if getattr(r, "event", None) == "audit-record-lost"]
    assert lost.__dict__["reason"] == "rejected"
    assert lost.__dict__["hookInstance"] == "-"  # not a safe token: not logged
    writer.close()


@pytest.mark.parametrize("mode", ["silent", "stall"])
def test_a_hung_postgres_ends_every_store_operation(mode: Mode) -> None:
    """Without a real database: connecting, the dialect's first queries and the write all
    end with a database error (not a hang), within the configured timeouts."""
    with fake_postgres(mode) as pg:
        store = AuditStore(pg.url(), connect_timeout=1.0, timeout=1.0)

        def write() -> str:
            try:
                store.record_invocations([_record("hung-1")])
            except SQLAlchemyError as exc:
                return type(exc).__name__
            return "written"

        assert _answered(write) == "OperationalError"
        store.dispose()
        assert pg.connections >= 1


@pytest.mark.parametrize("mode", ["silent", "stall"])
def test_a_hung_postgres_delays_records_until_a_real_one_returns(
    mode: Mode, caplog: pytest.LogCaptureFixture
) -> None:
    """The service keeps answering while its PostgreSQL hangs; the records wait, counted
    as delayed, and are written when the database answers again."""
    with proxied_test_postgres() as (pg, url):
        app = create_app(
            base_config(
                CDS_DATABASE_URL=url,
                CDS_DATABASE_CONNECT_TIMEOUT=1.0,
                CDS_DATABASE_TIMEOUT=1.0,
            )
        )
        store: AuditStore = app.extensions["audit_store"]
        pg.mode = mode
        store.engine.dispose()  # open connections would still reach the real server
        answers = _signed_calls(app, 3, f"hung-{mode}")
        assert [a.status_code for a in answers] == [200] * 3
        writer = app.extensions["audit_writer"]
        assert not writer.flush(timeout=0.5)
        status = audit_status(app.extensions)
        assert status is not None
        assert status["written"] == 0
        assert status["lost"] == 0
        assert status["queued"] == 3

        pg.mode = "forward"  # the database is back
        wait_for_audit(app, timeout=GENEROUS)
        status = audit_status(app.extensions)
        assert status is not None
        assert (status["written"], status["lost"], status["database"]) == (3, 0, "ok")
        assert status["delayed"] >= 1
        written = {d.hook_instance for d in store.recent_decisions(10)}
        assert written == {f"hung-{mode}-{i}" for i in range(3)}
        assert "audit-failing" in [getattr(r, "event", None) for r in caplog.records]
        writer.close()
        store.drop_schema()
        store.dispose()


def test_a_stopping_worker_writes_its_queued_records(tmp_path: Path) -> None:
    """gunicorn stops its workers with SIGTERM; a worker writes what it still has queued
    before it exits (here the database is locked until the stop has begun)."""
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    with start_service(
        fhir_servers=[],
        database_url=url,
        log_path=tmp_path / "service.log",
        workers=1,
        extra_env={"CDS_HOOKS_DIR": str(HOOKS_DIR), "CDS_DATABASE_TIMEOUT": "0.2"},
    ) as service:
        holder = sqlite3.connect(tmp_path / "audit.sqlite", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        with requests.Session() as session:
            for index in range(4):
                body = load_example("order-sign-prefetch.json")
                body["hookInstance"] = f"stopping-{index}"
                answer = session.post(f"{service.base_url}{SIGN}", json=body, timeout=GENEROUS)
                assert answer.status_code == 200
        assert _invocations(url) == []
        service.process.send_signal(signal.SIGTERM)
        holder.execute("COMMIT")
        holder.close()
        assert service.process.wait(timeout=GENEROUS) == 0
    assert sorted(_invocations(url)) == [f"stopping-{i}" for i in range(4)]
    assert '"event":"audit-closed"' in (tmp_path / "service.log").read_text()


def test_records_that_come_together_are_written_together() -> None:
    written: list[list[str]] = []
    full = threading.Event()

    def write(records: Sequence[InvocationRecord]) -> None:
        written.append([r.hook_instance for r in records])
        if sum(len(batch) for batch in written) >= 3:
            full.set()

    # A linger far longer than the test: only a full batch (or a flush) starts the write.
    writer = AuditWriter(write, batch_size=3, linger=600.0)
    for index in range(3):
        assert writer.submit(_record(f"together-{index}"))
    assert full.wait(GENEROUS)
    assert written == [["together-0", "together-1", "together-2"]]
    assert writer.submit(_record("alone"))
    assert writer.flush(GENEROUS)  # a flush does not wait for the linger
    assert written[-1] == ["alone"]
    writer.close(timeout=GENEROUS)
