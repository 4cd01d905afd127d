"""The embedded SQLite audit store runs in write-ahead-log mode with synchronous=NORMAL, on
every connection, and still stores and reads records; an in-memory store is left alone."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from cds_service.store import AuditStore

NORMAL = 1  # PRAGMA synchronous values: 0 OFF, 1 NORMAL, 2 FULL


def _pragmas(store: AuditStore) -> tuple[str, int]:
    with store.engine.connect() as conn:
        journal = conn.execute(text("PRAGMA journal_mode")).scalar_one()
        synchronous = conn.execute(text("PRAGMA synchronous")).scalar_one()
    return str(journal), int(synchronous)


def test_a_file_store_writes_ahead_with_normal_sync(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    store = AuditStore(f"sqlite:///{path}")
    store.create_schema()
    assert _pragmas(store) == ("wal", NORMAL)
    assert (tmp_path / "audit.db-wal").exists()
    store.engine.dispose()
    again = AuditStore(f"sqlite:///{path}")  # a new process's connections
    assert _pragmas(again) == ("wal", NORMAL)
    again.engine.dispose()


def test_an_in_memory_store_is_left_alone() -> None:
    store = AuditStore("sqlite://")
    assert _pragmas(store)[0] == "memory"
    store.engine.dispose()
