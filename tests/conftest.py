"""Shared fixtures: an app with pinned clock and ids, and its test client."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings as hypothesis_settings

from cds_service import create_app

# CI replays the same examples every run (a red build is then reproducible); a developer's
# run keeps exploring new ones.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")

ROOT = Path(__file__).resolve().parent.parent
HOOKS_DIR = ROOT / "hooks"
PINNED_NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)


def counting_uuids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(counter):012d}"


def base_config(**overrides: Any) -> dict[str, Any]:
    """Settings for a test app: auth off, hooks from the repository, clock and ids pinned."""
    config: dict[str, Any] = {
        "TESTING": True,
        "CDS_AUTH": "disabled",
        "CDS_HOOKS_DIR": str(HOOKS_DIR),
        "CDS_DATABASE_URL": "sqlite://",
        "CLOCK": lambda: PINNED_NOW,
        "UUID_FACTORY": counting_uuids(),
    }
    config.update(overrides)
    return config


def wait_for_audit(app: Flask, timeout: float = 30.0) -> None:
    """Wait until the app's audit writer has stored every record queued so far (the service
    answers before its audit record is written): call it before reading the store."""
    writer = app.extensions["audit_writer"]
    assert writer.flush(timeout), f"audit records not written: {writer.status()}"


@pytest.fixture
def make_app() -> Callable[..., Flask]:
    """Build an app with `base_config` plus keyword overrides (`CDS_*` names etc.)."""

    def build(**overrides: Any) -> Flask:
        return create_app(base_config(**overrides))

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        yield test_client


def load_example(name: str) -> dict[str, Any]:
    """A request body from `hooks/examples/` (a fresh copy each time)."""
    data: dict[str, Any] = json.loads((HOOKS_DIR / "examples" / name).read_text("utf-8"))
    return data
