"""A FHIR server that drips, resets, redirects, sends 9 MiB or malformed JSON, or answers
500 / 429: every call is answered within the call's deadline (plus a generous margin, a
functional bound, not a speed goal) with a status the README documents (200 and a card
saying what could not be read), never a 5xx; and across many calls no thread and no file
descriptor is left behind."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import load_example, wait_for_audit
from tests.faults.fake_fhir import Behaviour, FakeFhir, fake_fhir

SIGN = "/cds-services/anakinra-order-sign"
ORDER = "MedicationRequest/draft-anakinra-1"
MARGIN = 10.0
"""Seconds allowed past the configured deadline: generous, so only a hang fails."""

# behaviour: (calls, deadline seconds, FHIR issues the unread data may have)
FAULTS: dict[Behaviour, tuple[int, float, set[str]]] = {
    "drip": (30, 0.4, {"timeout"}),
    "drip-headers": (30, 0.4, {"timeout"}),
    "reset": (100, 2.0, {"exception"}),
    "redirect": (100, 2.0, {"not-supported"}),
    "huge": (25, 4.0, {"too-costly"}),
    "malformed": (100, 2.0, {"structure"}),
    "http-500": (100, 2.0, {"exception"}),
    "http-429": (40, 0.5, {"exception", "timeout"}),
}


def _threads() -> set[str]:
    """This process's threads, except the fake server's own."""
    return {
        f"{t.name}#{t.ident}" for t in threading.enumerate() if not t.name.startswith("fake-fhir")
    }


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _body(base: str, index: int) -> dict[str, Any]:
    """order-sign with nothing of the patient's record sent: everything is read from `base`."""
    body = load_example("order-sign-prefetch.json")
    body["hookInstance"] = f"fhir-fault-{index}"
    body["fhirServer"] = base
    body["fhirAuthorization"] = {
        "access_token": "fault-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/*.read",
        "subject": "anakinra-cds",
    }
    body["prefetch"] = {}
    return body


@pytest.fixture
def unpinned() -> Iterator[FakeFhir]:
    """Where the redirecting server points: not the call's FHIR server; never contacted."""
    with fake_fhir("http-500") as server:
        yield server


@pytest.mark.parametrize("behaviour", list(FAULTS))
def test_a_faulty_fhir_server_never_holds_the_call_or_leaks(
    behaviour: Behaviour,
    make_app: Callable[..., Flask],
    unpinned: FakeFhir,
    tmp_path: Path,
) -> None:
    calls, deadline, issues = FAULTS[behaviour]
    with fake_fhir(behaviour, redirect_to=unpinned.base + "/Patient/pt-ra-1001") as server:
        app = make_app(
            CDS_REQUEST_DEADLINE=deadline,
            CDS_FHIR_READ_TIMEOUT=min(1.0, deadline),
            CDS_FHIR_CONNECT_TIMEOUT=min(1.0, deadline),
            CDS_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.sqlite'}",
        )
        client = app.test_client()

        def call(index: int) -> None:
            started = time.monotonic()
            response = client.post(SIGN, json=_body(server.base, index))
            took = time.monotonic() - started
            assert took < deadline + MARGIN, f"{behaviour}: answered after {took:.1f} s"
            assert response.status_code == 200, response.get_data(as_text=True)[:300]
            answer = response.get_json()
            [card] = answer["cards"]
            assert card["summary"].startswith("Could not complete the Kineret coverage check")
            [evaluation] = answer["extension"]["com.anakinra-cds.evaluation"]
            assert evaluation["order"] == ORDER
            assert evaluation["outcome"] == "not-evaluated"
            found = {m["prefetchKey"]: m["issue"] for m in evaluation["missingData"]}
            assert set(found.values()) & issues, found

        call(0)  # warm up: the audit writer, the connection pool, the database watchdog
        wait_for_audit(app)
        assert server.quiesce(MARGIN)
        threads, fds = _threads(), _fds()
        for index in range(1, calls + 1):
            call(index)
        wait_for_audit(app)
        assert server.quiesce(MARGIN), "the service kept a connection to the FHIR server open"
        assert _threads() <= threads, "a fetch thread outlived its call"
        assert _fds() <= fds, "a socket or file was left open"
        assert server.requests >= calls
    assert unpinned.requests == 0, "a redirect was followed"
