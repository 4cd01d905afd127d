"""The Da Vinci CRD conformance cases (`tests/crd/cases/*.json`) against a live service.

Our service runs for real (`cds-service serve`, gunicorn, authentication off, a throwaway
SQLite audit store) and trusts one FHIR sandbox server (`sandbox/fhir_sandbox.py`, started
empty for this module). Each case runs through each of its data paths:
- prefetch: the request as the case writes it;
- fhir-server: its prefetch resources are stored in the sandbox first, and the request goes
  without prefetch, `fhirServer` naming the sandbox; they are deleted again afterwards.
A second service with authentication on answers the `auth-required` case; a case with
`settings` (e.g. CDS_PREFETCH=minimal) runs against a service started with them. Every service
runs with the payer file `payer.conformance.json` (mode `reject`, as a plan would configure
it). On the fhir-server path the sandbox's request log tells the named checks what the
service read.
The fhir-server runs are skipped only when npm (the sandbox's runtime) is not installed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.fhir_sandbox import SandboxServer, install, npm_available, start
from sandbox.service import (
    LOOPBACK,
    ServiceProcess,
    free_port,
    start_service,
)
from tests.crd.conformance import (
    REPO_ROOT,
    Case,
    CheckContext,
    Reply,
    check,
    load_cases,
    prefetch_resources,
    request_body,
    to_fhir_server_request,
    transaction,
    with_system_actions_applied,
)

TIMEOUT = 60
PAYER_FILE = Path(__file__).with_name("payer.conformance.json")
FHIR_JSON = "application/fhir+json"
CASES = load_cases()
RUNS = [
    pytest.param(case, path, id=f"{case.id}[{path}]") for case in CASES for path in case.data_paths
]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer | None]:
    if not npm_available():
        yield None
        return
    install()
    server = start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crd-conformance")


@pytest.fixture(scope="module")
def service(sandbox: SandboxServer | None, workdir: Path) -> Iterator[ServiceProcess]:
    with start_service(
        fhir_servers=[sandbox.base_url] if sandbox else [],
        database_url=f"sqlite:///{workdir / 'cds.sqlite'}",
        log_path=workdir / "service.log",
        workers=1,
        # A plan's own payer file: the CRD behaviour (hook-13: 400 for another payer's
        # Coverage), not the packaged demo payer's answer-without-coverage-information mode.
        extra_env={"CDS_PAYER_FILE": str(PAYER_FILE)},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def configured_services(
    sandbox: SandboxServer | None, workdir: Path
) -> Iterator[Callable[[Mapping[str, str]], ServiceProcess]]:
    """Services started with a case's own settings (e.g. CDS_PREFETCH=minimal), each started
    on first use and kept for the module."""
    started: dict[tuple[tuple[str, str], ...], ServiceProcess] = {}

    def get(settings: Mapping[str, str]) -> ServiceProcess:
        key = tuple(sorted(settings.items()))
        if key not in started:
            n = len(started)
            started[key] = start_service(
                fhir_servers=[sandbox.base_url] if sandbox else [],
                database_url=f"sqlite:///{workdir / f'settings-{n}.sqlite'}",
                log_path=workdir / f"settings-{n}.log",
                workers=1,
                extra_env={"CDS_PAYER_FILE": str(PAYER_FILE), **settings},
            )
        return started[key]

    try:
        yield get
    finally:
        for running in started.values():
            running.stop()


@pytest.fixture(scope="module")
def auth_service(workdir: Path) -> Iterator[ServiceProcess]:
    """The service with authentication on: it answers discovery with 401 to a caller
    without a token, so readiness is a 401 here."""
    port = free_port()
    running = start_service(
        fhir_servers=[],
        database_url=f"sqlite:///{workdir / 'auth.sqlite'}",
        log_path=workdir / "auth-service.log",
        workers=1,
        extra_env={
            "CDS_AUTH": "enabled",
            "CDS_TRUSTED_ISSUERS": str(REPO_ROOT / "hooks" / "trusted-issuers.example.json"),
            "CDS_PUBLIC_BASE_URL": f"http://{LOOPBACK}:{port}",
        },
        ready=(401,),
        port=port,
    )
    try:
        yield running
    finally:
        running.stop()


def audit_hook_instances(workdir: Path) -> set[str]:
    with sqlite3.connect(workdir / "cds.sqlite") as db:
        return {row[0] for row in db.execute("SELECT hook_instance FROM invocations")}


def send(base_url: str, case: Case, body: Any) -> Reply:
    req = case.request
    url = f"{base_url}/cds-services" + (f"/{req['service']}" if "service" in req else "")
    if req.get("method", "POST") == "GET":
        response = requests.get(url, timeout=TIMEOUT)
    elif "raw" in req:
        response = requests.post(
            url, data=req["raw"], headers={"Content-Type": "application/json"}, timeout=TIMEOUT
        )
    else:
        response = requests.post(url, json=body, timeout=TIMEOUT)
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    return Reply(status=response.status_code, body=parsed, raw=response.content)


def store(sandbox: SandboxServer, resources: list[dict[str, Any]], method: str) -> None:
    with requests.Session() as session:
        if method == "PUT":
            resp = session.post(
                sandbox.base_url,
                data=json.dumps(transaction(resources)),
                headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON},
                timeout=TIMEOUT,
            )
            assert resp.status_code == 200, resp.text[:300]
            statuses = [e["response"]["status"] for e in resp.json().get("entry", [])]
            assert all(s.startswith("2") for s in statuses), statuses
        else:
            for r in resources:
                session.delete(f"{sandbox.base_url}/{r['resourceType']}/{r['id']}", timeout=TIMEOUT)


@pytest.mark.parametrize(("case", "data_path"), RUNS)
def test_crd_conformance_case(
    case: Case,
    data_path: str,
    service: ServiceProcess,
    auth_service: ServiceProcess,
    configured_services: Callable[[Mapping[str, str]], ServiceProcess],
    sandbox: SandboxServer | None,
    workdir: Path,
) -> None:
    body = request_body(case.request)
    base_url = auth_service.base_url if case.request.get("auth") else service.base_url
    if case.settings:
        base_url = configured_services(case.settings).base_url
    stored: list[dict[str, Any]] = []
    reads: tuple[str, ...] = ()
    if data_path == "fhir-server":
        if sandbox is None:
            pytest.skip("npm is not installed: the FHIR sandbox cannot run")
        stored = prefetch_resources(body)
        store(sandbox, stored, "PUT")
        body = to_fhir_server_request(
            body, sandbox.base_url, keep=case.request.get("keep_prefetch", ())
        )
        sandbox.clear_requests()
    try:
        replies = [send(base_url, case, body)]
        while len(replies) < case.calls:
            if case.request.get("apply_system_actions"):
                body = with_system_actions_applied(body, replies[-1].body)
            replies.append(send(base_url, case, body))
        if sandbox is not None and data_path == "fhir-server":
            seen = sandbox.requests_seen()
            reads = tuple(str(r["path"]) for r in seen if r.get("method") == "GET")
    finally:
        if stored and sandbox is not None:
            store(sandbox, stored, "DELETE")
    ctx = CheckContext(
        request=body,
        audit_hook_instances=lambda: audit_hook_instances(workdir),
        fhir_reads=reads,
    )
    problems = [p for assertion in case.expect for p in check(assertion, replies, ctx)]
    assert not problems, f"{case.id} ({case.title}):\n" + "\n".join(problems)
