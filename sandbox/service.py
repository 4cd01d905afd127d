"""Our CDS service (`cds-service serve`, gunicorn) as a subprocess, for the demo and the
end-to-end tests.

    with start_service(fhir_servers=[sandbox.base_url], database_url=..., log_path=...) as svc:
        requests.get(f"{svc.base_url}/cds-services")

The service starts on a free loopback port with authentication OFF (`CDS_AUTH=disabled`):
local use only. Inherited `CDS_*` settings are dropped, so it runs with the given ones alone.
Its output goes to `log_path`, never to the caller's terminal. It runs in its own session;
stopping it sends SIGTERM to the gunicorn master (which stops its workers) and SIGKILL to the
whole process group if the master has not exited after a grace period.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import requests

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
LOOPBACK: Final = "127.0.0.1"
START_TIMEOUT_S: Final = 60.0
"""Start-up reads every policy pack: 20-27 s measured on a machine shared by several test runs."""
STOP_GRACE_S: Final = 15.0


class ServiceError(RuntimeError):
    """The service could not be started (it exited, or did not answer in time)."""


def free_port(host: str = LOOPBACK) -> int:
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


def service_env(
    base: Mapping[str, str],
    *,
    fhir_servers: Sequence[str],
    database_url: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The service's environment: `base` without its `CDS_*` settings, authentication OFF,
    the given FHIR servers and store, the repository on PYTHONPATH, then `extra`."""
    env = {k: v for k, v in base.items() if not k.startswith("CDS_")}
    env.update(
        {
            "CDS_AUTH": "disabled",
            "CDS_FHIR_SERVERS": ",".join(fhir_servers),
            "CDS_DATABASE_URL": database_url,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        }
    )
    env.update(extra or {})
    return env


def stop_gunicorn(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
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

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/cds-services"

    def log_tail(self, lines: int = 15) -> str:
        """The last `lines` lines of the service's log ("" when it cannot be read)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        stop_gunicorn(self.process)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_discovery(
    service: ServiceProcess, timeout_s: float, ready: tuple[int, ...] = (200, 401)
) -> None:
    """Return once the discovery endpoint answers one of `ready` (200; a 401 too when
    authentication is on); raise ServiceError when the process exits first or `timeout_s`
    passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if service.process.poll() is not None:
            code = service.process.returncode
            raise ServiceError(f"cds-service exited with {code}:\n{service.log_tail()}")
        try:
            if requests.get(service.discovery_url, timeout=2).status_code in ready:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise ServiceError(f"cds-service did not answer within {timeout_s:.0f} s")
        time.sleep(0.1)


def start_service(
    *,
    fhir_servers: Sequence[str],
    database_url: str,
    log_path: Path,
    workers: int = 2,
    timeout_s: float = START_TIMEOUT_S,
    extra_env: Mapping[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
    ready: tuple[int, ...] = (200, 401),
    port: int | None = None,
) -> ServiceProcess:
    """Start `cds-service serve` on a free loopback port and wait (at most `timeout_s`) until
    its discovery endpoint answers (200, or 401 with authentication on). `base_env`
    defaults to this process's environment; see `service_env` for what is changed in it.
    The caller stops the service (`stop()`, or use the result in a `with` block); on any
    failure here (Ctrl-C included) it is stopped before the error propagates. `port`: a
    free loopback port the caller chose (e.g. to name it in a setting), else one is picked."""
    port = free_port() if port is None else port
    env = service_env(
        os.environ if base_env is None else base_env,
        fhir_servers=fhir_servers,
        database_url=database_url,
        extra=extra_env,
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
            service_command(LOOPBACK, port, workers),
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = ServiceProcess(process, f"http://{LOOPBACK}:{port}", log_path)
    try:
        wait_for_discovery(service, timeout_s, ready)
    except BaseException:  # also Ctrl-C while waiting: never leave gunicorn behind
        service.stop()
        raise
    return service
