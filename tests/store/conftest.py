from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cds_service.store import AuditStore


class FixedClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock
) -> Iterator[AuditStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'nested' / 'audit.db'}"
    else:
        url = os.environ.get("CDS_TEST_POSTGRES_URL", "")
        if not url:
            pytest.skip("CDS_TEST_POSTGRES_URL is not set")
    audit = AuditStore(url, clock=clock)
    audit.drop_schema()
    audit.create_schema()
    yield audit
    audit.drop_schema()
    audit.dispose()
