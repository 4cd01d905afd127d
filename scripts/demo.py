"""Local demo: the anakinra CDS service reading the synthetic patients of the FHIR sandbox.

    .venv/bin/python scripts/demo.py [--patient NAME] [--keep-running]

Installs the FHIR sandbox when needed (`npm ci` in sandbox/), starts it, loads the synthetic
patients, starts the CDS service under gunicorn with authentication OFF (a local demo only),
calls `anakinra-order-sign` for each patient's draft anakinra order without prefetch (the
service reads the sandbox itself, with the bearer token the "EHR" hands it), prints one
compact block per patient and stops both servers (also on Ctrl-C or an error).

`--keep-running` leaves both servers up, prints their URLs and a sample `curl`, and stops
them on Ctrl-C (or SIGTERM). Everything printed is synthetic data; the service's own logs go to a
temporary file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from sandbox.fhir_sandbox import (  # noqa: E402
    PATIENTS_DIR,
    SandboxError,
    SandboxServer,
    install,
    load_patients,
    start,
)

SIGN_SERVICE: Final = "anakinra-order-sign"
DEMO_TOKEN: Final = "local-demo-token"  # noqa: S105 - the local sandbox's fixed token
HTTP_TIMEOUT_S: Final = 60.0
SERVICE_START_TIMEOUT_S: Final = 30.0
FHIR_SCOPES: Final = " ".join(
    f"user/{kind}.read"
    for kind in (
        "Patient",
        "Condition",
        "Observation",
        "MedicationRequest",
        "MedicationStatement",
        "MedicationDispense",
        "Medication",
        "AllergyIntolerance",
        "PractitionerRole",
        "CareTeam",
        "ServiceRequest",
        "Encounter",
        "Coverage",
    )
)


class DemoError(RuntimeError):
    """Something the demo needs could not be set up."""


# ----- scenarios and hook requests (pure) ----------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One row of `sandbox/patients/scenarios.json`."""

    name: str
    bundle: str
    order: str
    patient_id: str
    encounter_id: str
    role_id: str
    practitioner_id: str
    description: str
    expected_outcome: str
    expected_not_met: tuple[str, ...]
    expected_unknown: tuple[str, ...]

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Scenario:
        return cls(
            name=row["name"],
            bundle=row["bundle"],
            order=row["order"],
            patient_id=row["patientId"],
            encounter_id=row["encounterId"],
            role_id=row["userPractitionerRoleId"],
            practitioner_id=row["userPractitionerId"],
            description=row["description"],
            expected_outcome=row["expectedOutcome"],
            expected_not_met=tuple(row["expectedNotMet"]),
            expected_unknown=tuple(row["expectedUnknown"]),
        )


def load_scenarios(directory: Path = PATIENTS_DIR) -> list[Scenario]:
    """Every scenario, in the file's order."""
    rows = json.loads((directory / "scenarios.json").read_text(encoding="utf-8"))
    return [Scenario.from_json(row) for row in rows]


def load_order(scenario: Scenario, directory: Path = PATIENTS_DIR) -> dict[str, Any]:
    """The scenario's draft anakinra MedicationRequest."""
    order: dict[str, Any] = json.loads((directory / scenario.order).read_text(encoding="utf-8"))
    return order


def hook_request(
    scenario: Scenario,
    orders: Sequence[Mapping[str, Any]],
    *,
    hook: str = "order-sign",
    hook_instance: str,
    fhir_server: str | None = None,
    access_token: str | None = None,
    prefetch: Mapping[str, Any] | None = None,
    selections: Sequence[str] = (),
) -> dict[str, Any]:
    """A CDS Hooks 2.0.1 order-sign / order-select request for `scenario`'s prescriber,
    patient and encounter, with `orders` as the draft orders."""
    context: dict[str, Any] = {
        "userId": f"PractitionerRole/{scenario.role_id}",
        "patientId": scenario.patient_id,
        "encounterId": scenario.encounter_id,
    }
    if hook == "order-select":
        context["selections"] = list(selections)
    context["draftOrders"] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": dict(order)} for order in orders],
    }
    body: dict[str, Any] = {"hook": hook, "hookInstance": hook_instance}
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
        if access_token is not None:
            body["fhirAuthorization"] = {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": FHIR_SCOPES,
                "subject": "anakinra-cds",
            }
    body["context"] = context
    if prefetch is not None:
        body["prefetch"] = dict(prefetch)
    return body


def _suggestion_labels(card: Mapping[str, Any]) -> list[str]:
    return [str(s.get("label", "")) for s in card.get("suggestions", []) if isinstance(s, Mapping)]


def describe_response(scenario: Scenario, response: Mapping[str, Any]) -> list[str]:
    """The compact block printed for one patient: scenario, outcome, cards, suggestions."""
    evaluations = response.get("extension", {}).get("com.anakinra-cds.evaluation", [])
    outcomes = ", ".join(str(e.get("outcome")) for e in evaluations) or "no evaluation"
    sections = ", ".join(f"{e.get('pathway')} {e.get('section')}" for e in evaluations if e)
    lines = [
        f"== {scenario.name} (Patient/{scenario.patient_id})",
        f"   scenario: {scenario.description}",
        f"   outcome:  {outcomes}  [{sections}]  (expected {scenario.expected_outcome})",
    ]
    for evaluation in evaluations:
        flagged = [
            f"{c.get('id')} {c.get('status')}"
            for c in evaluation.get("criteria", [])
            if c.get("status") in ("not-met", "unknown")
        ]
        if flagged:
            lines.append(f"   criteria: {', '.join(flagged)}")
    cards = response.get("cards", [])
    if not cards:
        lines.append("   (no cards)")
    for card in cards:
        lines.append(f"   [{card.get('indicator', '?')}] {card.get('summary', '')}")
        labels = [label for label in _suggestion_labels(card) if label]
        if labels:
            lines.append(f"       suggestions: {' | '.join(labels)}")
    actions = response.get("systemActions", [])
    if actions:
        lines.append(f"   system actions: {len(actions)} (coverage information)")
    return lines


# ----- our service as a process ----------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def service_command(host: str, port: int, workers: int) -> list[str]:
    """`cds-service serve ...`: the installed script beside this Python, else the module."""
    script = Path(sys.executable).parent / "cds-service"
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "cds_service.cli"]
    return [*launcher, "serve", "--host", host, "--port", str(port), "--workers", str(workers)]


def stop_gunicorn(process: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM the gunicorn master, which stops its workers and exits; one that does not
    within `grace_s` is killed with its whole process group (its own session, started here)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@dataclass
class ServiceProcess:
    """Our CDS service running under gunicorn."""

    process: subprocess.Popen[bytes]
    base_url: str
    """http://host:port (the discovery document is at /cds-services)."""
    log_path: Path

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        stop_gunicorn(self.process)


def start_service(
    *,
    fhir_servers: Sequence[str],
    database_url: str,
    log_path: Path,
    workers: int = 2,
    timeout_s: float = SERVICE_START_TIMEOUT_S,
    extra_env: Mapping[str, str] | None = None,
) -> ServiceProcess:
    """Start `cds-service serve` on a free loopback port with authentication OFF and wait
    (at most `timeout_s`) until its discovery endpoint answers."""
    host, port = "127.0.0.1", free_port()
    # Inherited CDS_* settings are dropped: the service runs with these alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    env.update(
        {
            "CDS_AUTH": "disabled",
            "CDS_FHIR_SERVERS": ",".join(fhir_servers),
            "CDS_DATABASE_URL": database_url,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        }
    )
    env.update(extra_env or {})
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
            service_command(host, port, workers),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = ServiceProcess(process, f"http://{host}:{port}", log_path)
    try:
        _wait_for_discovery(service, timeout_s)
    except BaseException:  # also Ctrl-C while waiting: never leave gunicorn behind
        service.stop()
        raise
    return service


def _wait_for_discovery(service: ServiceProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if service.process.poll() is not None:
            code = service.process.returncode
            raise DemoError(f"cds-service exited with {code}:\n{service.log_tail()}")
        try:
            if requests.get(f"{service.base_url}/cds-services", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise DemoError(f"cds-service did not answer within {timeout_s:.0f} s")
        time.sleep(0.1)


# ----- the demo -----------------------------------------------------------------------------


@contextmanager
def running_servers(
    scenarios: Sequence[Scenario], workdir: Path
) -> Iterator[tuple[SandboxServer, ServiceProcess]]:
    """The sandbox (with the scenarios' bundles loaded) and our service; both stopped on exit."""
    with ExitStack() as stack:
        print("installing / starting the FHIR sandbox ...", flush=True)
        install()
        sandbox = stack.enter_context(start(require_token=DEMO_TOKEN))
        count = load_patients(
            sandbox.base_url, [PATIENTS_DIR / s.bundle for s in scenarios], token=DEMO_TOKEN
        )
        print(f"FHIR sandbox at {sandbox.base_url}: {count} resources loaded", flush=True)
        print(
            "starting the CDS service: LOCAL DEMO, authentication is OFF (CDS_AUTH=disabled)",
            flush=True,
        )
        service = start_service(
            fhir_servers=[sandbox.base_url],
            database_url=f"sqlite:///{workdir / 'cds-demo.sqlite'}",
            log_path=workdir / "cds-service.log",
        )
        stack.callback(service.stop)
        print(f"CDS service at {service.base_url}/cds-services", flush=True)
        yield sandbox, service


def call_order_sign(
    service: ServiceProcess, sandbox: SandboxServer, scenario: Scenario
) -> dict[str, Any]:
    body = hook_request(
        scenario,
        [load_order(scenario)],
        hook_instance=str(uuid.uuid4()),
        fhir_server=sandbox.base_url,
        access_token=DEMO_TOKEN,
    )
    resp = requests.post(
        f"{service.base_url}/cds-services/{SIGN_SERVICE}", json=body, timeout=HTTP_TIMEOUT_S
    )
    if resp.status_code != 200:
        raise DemoError(f"{scenario.name}: the service answered HTTP {resp.status_code}")
    answer: dict[str, Any] = resp.json()
    return answer


def sample_curl(service: ServiceProcess, sandbox: SandboxServer, scenario: Scenario) -> str:
    body = hook_request(
        scenario,
        [load_order(scenario)],
        hook_instance="00000000-0000-4000-8000-000000000001",
        fhir_server=sandbox.base_url,
        access_token=DEMO_TOKEN,
    )
    return (
        f"curl -s -X POST {service.base_url}/cds-services/{SIGN_SERVICE} "
        f"-H 'Content-Type: application/json' -d '{json.dumps(body, separators=(',', ':'))}'"
    )


def wait_for_interrupt(sandbox: SandboxServer, service: ServiceProcess, out: TextIO) -> None:
    """Sleep until Ctrl-C or until one of the servers exits by itself."""
    while sandbox.process.poll() is None and service.process.poll() is None:
        time.sleep(0.5)
    print("a server stopped by itself; stopping the other", file=out, flush=True)


def parse_args(argv: Sequence[str] | None, names: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/demo.py",
        description="Local demo of the anakinra CDS service against the FHIR sandbox.",
    )
    parser.add_argument("--patient", choices=names, metavar="NAME", help="one scenario only")
    parser.add_argument(
        "--keep-running", action="store_true", help="leave both servers up until Ctrl-C"
    )
    return parser.parse_args(argv)


def _stop_on_signal(signum: int, frame: object) -> None:
    """SIGTERM / SIGHUP end the demo like Ctrl-C: both servers are stopped on the way out."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    scenarios = load_scenarios()
    args = parse_args(argv, [s.name for s in scenarios])
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    chosen = [s for s in scenarios if args.patient in (None, s.name)]
    try:
        with (
            tempfile.TemporaryDirectory(prefix="anakinra-demo-") as tmp,
            running_servers(chosen, Path(tmp)) as (sandbox, service),
        ):
            print(flush=True)
            for scenario in chosen:
                block = describe_response(scenario, call_order_sign(service, sandbox, scenario))
                print("\n".join(block) + "\n", flush=True)
            if args.keep_running:
                print(f"FHIR sandbox:  {sandbox.base_url} (Bearer {DEMO_TOKEN} required)")
                print(f"CDS service:   {service.base_url}/cds-services (authentication OFF)")
                print(f"service log:   {service.log_path}")
                print("sample call:\n" + sample_curl(service, sandbox, chosen[0]))
                print("Ctrl-C stops both servers.", flush=True)
                wait_for_interrupt(sandbox, service, sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped", file=sys.stderr)
        return 130
    except (DemoError, SandboxError, requests.RequestException) as err:
        print(f"demo failed: {err}", file=sys.stderr)
        return 1
    print("servers stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
