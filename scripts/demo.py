"""Local demo: the CDS service reading the synthetic patients of the FHIR sandbox.

    .venv/bin/python scripts/demo.py [--patient NAME ...] [--keep-running]

Installs the FHIR sandbox when needed (`npm ci` in sandbox/), starts it, loads the synthetic
patients of every policy pack (`sandbox/patients/` and its subfolders), starts the CDS service
under gunicorn with authentication OFF (a local demo only), calls the order-sign service of
its discovery document for each patient's draft order without prefetch (the service reads
the sandbox itself, with the bearer token the "EHR" hands it), prints one compact block per
patient, naming the policy pack that decided, and stops both servers (also on Ctrl-C or an
error).

`--keep-running` leaves both servers up, prints their URLs and a sample `curl`, and stops
them on Ctrl-C (or SIGTERM). Everything printed is synthetic data; the service's own logs go to a
temporary file. The EHR side of the calls is `sandbox/ehr.py`, the service runner
`sandbox/service.py` (both shared with the end-to-end tests).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final, TextIO

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from sandbox.ehr import evaluations, hook_request, post_hook, suggestion_labels  # noqa: E402
from sandbox.fhir_sandbox import (  # noqa: E402
    SandboxError,
    SandboxServer,
    install,
    load_patients,
    start,
)
from sandbox.scenarios import Scenario, load_all_scenarios, load_order  # noqa: E402
from sandbox.service import ServiceError, ServiceProcess, start_service  # noqa: E402

SIGN_HOOK: Final = "order-sign"
DEMO_TOKEN: Final = "local-demo-token"  # noqa: S105 - the local sandbox's fixed token


class DemoError(RuntimeError):
    """The service did not answer a demo call."""


def _pack_of(evaluation: Mapping[str, Any]) -> str:
    policy = evaluation.get("policy") or {}
    return f"{policy.get('id', '?')} version {policy.get('version', '?')}"


def describe_response(scenario: Scenario, response: Mapping[str, Any]) -> list[str]:
    """The compact block printed for one patient: scenario, the pack that decided, outcome,
    cards, suggestions."""
    found = evaluations(response)
    outcomes = ", ".join(str(e.get("outcome")) for e in found) or "no evaluation"
    sections = ", ".join(f"{e.get('pathway')} {e.get('section')}" for e in found if e)
    packs = ", ".join(dict.fromkeys(_pack_of(e) for e in found)) or "none"
    lines = [
        f"== {scenario.name} (Patient/{scenario.patient_id})",
        f"   scenario: {scenario.description}",
        f"   pack:     {packs}",
        f"   outcome:  {outcomes}  [{sections}]  (expected {scenario.expected_outcome})",
    ]
    for evaluation in found:
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
        labels = [label for label in suggestion_labels(card) if label]
        if labels:
            lines.append(f"       suggestions: {' | '.join(labels)}")
    actions = response.get("systemActions", [])
    if actions:
        lines.append(f"   system actions: {len(actions)} (coverage information)")
    return lines


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
            sandbox.base_url, [s.bundle_path for s in scenarios], token=DEMO_TOKEN
        )
        print(f"FHIR sandbox at {sandbox.base_url}: {count} resources loaded", flush=True)
        print(
            "starting the CDS service: LOCAL DEMO, authentication is OFF (CDS_AUTH=disabled)",
            flush=True,
        )
        service = stack.enter_context(
            start_service(
                fhir_servers=[sandbox.base_url],
                database_url=f"sqlite:///{workdir / 'cds-demo.sqlite'}",
                log_path=workdir / "cds-service.log",
            )
        )
        print(f"CDS service at {service.discovery_url}", flush=True)
        yield sandbox, service


def sign_service_id(service: ServiceProcess) -> str:
    """The id of the service's order-sign hook service, from its discovery document."""
    resp = requests.get(service.discovery_url, timeout=30)
    if resp.status_code != 200:
        raise DemoError(f"discovery answered HTTP {resp.status_code}")
    for entry in resp.json().get("services", []):
        if entry.get("hook") == SIGN_HOOK:
            return str(entry["id"])
    raise DemoError(f"discovery lists no {SIGN_HOOK} service")


def call_order_sign(
    service: ServiceProcess, sandbox: SandboxServer, scenario: Scenario, service_id: str
) -> dict[str, Any]:
    body = hook_request(
        scenario,
        [load_order(scenario)],
        fhir_server=sandbox.base_url,
        access_token=DEMO_TOKEN,
    )
    resp = post_hook(service.base_url, service_id, body)
    if resp.status_code != 200:
        raise DemoError(f"{scenario.name}: the service answered HTTP {resp.status_code}")
    answer: dict[str, Any] = resp.json()
    return answer


def sample_curl(
    service: ServiceProcess, sandbox: SandboxServer, scenario: Scenario, service_id: str
) -> str:
    body = hook_request(
        scenario,
        [load_order(scenario)],
        hook_instance="00000000-0000-4000-8000-000000000001",
        fhir_server=sandbox.base_url,
        access_token=DEMO_TOKEN,
    )
    return (
        f"curl -s -X POST {service.discovery_url}/{service_id} "
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
        description="Local demo of the CDS service against the FHIR sandbox.",
    )
    parser.add_argument(
        "--patient",
        action="append",
        choices=names,
        metavar="NAME",
        help="only this scenario (may be repeated)",
    )
    parser.add_argument(
        "--keep-running", action="store_true", help="leave both servers up until Ctrl-C"
    )
    return parser.parse_args(argv)


def _stop_on_signal(signum: int, frame: object) -> None:
    """SIGTERM / SIGHUP end the demo like Ctrl-C: both servers are stopped on the way out."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    scenarios = load_all_scenarios()
    args = parse_args(argv, [s.name for s in scenarios])
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    chosen = [s for s in scenarios if args.patient is None or s.name in args.patient]
    try:
        with (
            tempfile.TemporaryDirectory(prefix="cds-demo-") as tmp,
            running_servers(chosen, Path(tmp)) as (sandbox, service),
        ):
            service_id = sign_service_id(service)
            print(flush=True)
            for scenario in chosen:
                answer = call_order_sign(service, sandbox, scenario, service_id)
                block = describe_response(scenario, answer)
                print("\n".join(block) + "\n", flush=True)
            if args.keep_running:
                print(f"FHIR sandbox:  {sandbox.base_url} (Bearer {DEMO_TOKEN} required)")
                print(f"CDS service:   {service.discovery_url} (authentication OFF)")
                print(f"service log:   {service.log_path}")
                print("sample call:\n" + sample_curl(service, sandbox, chosen[0], service_id))
                print("Ctrl-C stops both servers.", flush=True)
                wait_for_interrupt(sandbox, service, sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped", file=sys.stderr)
        return 130
    except (DemoError, SandboxError, ServiceError, requests.RequestException) as err:
        print(f"demo failed: {err}", file=sys.stderr)
        return 1
    print("servers stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
