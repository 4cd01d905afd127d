"""`docker compose up` as a whole, on a real Docker engine: PostgreSQL, the FHIR sandbox, two
replicas of the service and the proxy in front of them. Through the proxy (8088): discovery
and an order-sign read from the FHIR sandbox are answered; both replicas report healthy; the
decisions are in PostgreSQL. Then the replicas are started again with authentication on
(a `cds-service dev-token` issuer in the mounted config folder): a signed call to one replica
is answered and its replay to the other refused.

Images: the official ones when they are present locally, else the local stand-ins named in
deploy/offline.env (`scripts/docker-offline-images.sh` builds them); the service and sandbox
images are built by compose (the engine's layer cache makes a rebuild after a code change
a few minutes on vfs). Skipped, saying why, without a docker client, an engine, compose or
those images: no image registry is reached from the tests. Uses the compose file's fixed
ports (8080, 8081, 8088, 8090, 55432) on 127.0.0.1: they must be free."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.answers import is_answered
from tests.conftest import ROOT, load_example

pytestmark = pytest.mark.docker

PROXY = "http://127.0.0.1:8088"
REPLICAS = {"cds-1": "http://127.0.0.1:8080", "cds-2": "http://127.0.0.1:8081"}
PORTS = (8080, 8081, 8088, 8090, 55432)
POSTGRES_URL = "postgresql://cds:cds@127.0.0.1:55432/cds"
SIGN = "/cds-services/prior-auth-order-sign"
OFFICIAL = {
    "BASE_IMAGE": "python:3.11-slim-bookworm",
    "POSTGRES_IMAGE": "postgres:16-bookworm",
    "PROXY_IMAGE": "nginx:1.27-bookworm",
}
READY_S = 900.0
"""Not a speed check: containers not healthy after this long have failed (creating one on
the vfs storage driver copies its image: minutes under load)."""
DOCKER = shutil.which("docker")


def _run(command: list[str], env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        command, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{' '.join(command[:4])}:\n{result.stderr[-4000:]}"
    return result.stdout


def _compose_command() -> list[str]:
    if DOCKER is None:
        pytest.skip("no docker client on PATH: docker compose is not tested")
    info = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [DOCKER, "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if info.returncode != 0:
        pytest.skip("no Docker engine answers (start dockerd): docker compose is not tested")
    plugin = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [DOCKER, "compose", "version"], capture_output=True, timeout=30, check=False
    )
    if plugin.returncode == 0:
        return [DOCKER, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone is None:
        pytest.skip("neither `docker compose` nor `docker-compose`: compose is not tested")
    return [standalone]


def _present(image: str) -> bool:
    assert DOCKER is not None
    probe = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [DOCKER, "image", "inspect", image], capture_output=True, timeout=60, check=False
    )
    return probe.returncode == 0


def _images() -> dict[str, str]:
    """The official images when all are here, else deploy/offline.env's stand-ins."""
    if all(_present(image) for image in OFFICIAL.values()):
        return dict(OFFICIAL)
    offline = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy" / "offline.env").read_text("utf-8").splitlines()
        if line and not line.startswith("#")
    )
    missing = [image for image in offline.values() if not _present(image)]
    if missing:
        pytest.skip(
            f"images not present ({', '.join(missing)}) and no registry is reached from the "
            "tests: build them with scripts/docker-offline-images.sh"
        )
    return offline


def _busy(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Stack:
    command: list[str]
    env: dict[str, str]
    config: Path

    def compose(self, *args: str, timeout: float = 600, **extra: str) -> str:
        return _run([*self.command, *args], {**self.env, **extra}, timeout)

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).strip()

    def health(self, service: str) -> str:
        assert DOCKER is not None
        state = _run(
            [DOCKER, "inspect", "--format", "{{json .State}}", self.container(service)],
            self.env,
            60,
        )
        parsed = json.loads(state)
        status: str = parsed.get("Health", {}).get("Status") or parsed["Status"]
        return status

    def wait_healthy(self, *services: str) -> None:
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            states = {service: self.health(service) for service in services}
            if set(states.values()) == {"healthy"}:
                return
            assert "exited" not in states.values(), f"{states}\n{self.logs()}"
            time.sleep(3)
        pytest.fail(f"not healthy within {READY_S:.0f} s: {states}\n{self.logs()}")

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "30", timeout=120)[-6000:]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    command = _compose_command()
    images = _images()
    busy = [port for port in PORTS if _busy(port)]
    assert not busy, f"ports the compose file uses are taken: {busy}"
    config = tmp_path_factory.mktemp("compose-config")
    config.chmod(0o755)  # the image's user (not root) reads the mounted files
    project = f"cdstest{uuid.uuid4().hex[:8]}"
    env = {
        # The caller's own CDS_* settings would fill the compose file's ${CDS_...} in.
        **{k: v for k, v in os.environ.items() if not k.startswith("CDS_")},
        **images,
        "CDS_CONFIG_DIR": str(config),
        "DOCKER_BUILDKIT": os.environ.get("DOCKER_BUILDKIT", "0"),
        "COMPOSE_DOCKER_CLI_BUILD": os.environ.get("COMPOSE_DOCKER_CLI_BUILD", "0"),
    }
    running = Stack([*command, "-p", project, "-f", str(ROOT / "docker-compose.yml")], env, config)
    try:
        running.compose("build", timeout=3600)
        running.compose("up", "-d", timeout=1800)
        yield running
    finally:
        running.compose("down", "-v", "--remove-orphans", timeout=600)


def _sign(base_url: str, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        base_url + SIGN,
        json=load_example("order-sign-fhir-server.json"),
        headers=headers or {},
        timeout=120,
    )


def _audit_rows() -> int:
    import psycopg

    with psycopg.connect(POSTGRES_URL, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM invocations").fetchone()
    assert row is not None
    count: int = row[0]
    return count


def _dev_token(config: Path, path: str) -> str:
    """`cds-service dev-token` for the proxy's URL; its issuer file lands in `config`."""
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [
            sys.executable,
            "-m",
            "cds_service.cli",
            "dev-token",
            "--dir",
            str(config),
            "--base-url",
            PROXY,
            "--path",
            path,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (config / "trusted-issuers.json").chmod(0o644)  # the image's user reads it (public key)
    return result.stdout.strip()


def test_compose_up_serves_through_the_proxy_with_postgresql_then_with_auth_on(
    stack: Stack,
) -> None:
    stack.wait_healthy("postgres", "cds-1", "cds-2")
    discovery = requests.get(PROXY + "/cds-services", timeout=30)
    assert discovery.status_code == 200
    assert "prior-auth-order-sign" in {s["id"] for s in discovery.json()["services"]}
    before = _audit_rows()
    # The example request names the FHIR sandbox: the replica reads the chart from it.
    answer = _sign(PROXY)
    assert answer.status_code == 200, answer.text
    assert is_answered(answer.json())
    deadline = time.monotonic() + 60
    while _audit_rows() == before and time.monotonic() < deadline:
        time.sleep(0.5)  # the audit writer records after the answer
    assert _audit_rows() > before

    # Authentication on: the same stack, the replicas started again with an issuer file.
    token = _dev_token(stack.config, SIGN)
    stack.compose(
        "up",
        "-d",
        "cds-1",
        "cds-2",
        timeout=1800,
        CDS_AUTH="enabled",
        CDS_TRUSTED_ISSUERS="/config/trusted-issuers.json",
    )
    stack.wait_healthy("cds-1", "cds-2")
    assert _sign(PROXY).status_code == 401  # unsigned
    signed = _sign(REPLICAS["cds-1"], {"Authorization": f"Bearer {token}"})
    assert signed.status_code == 200, signed.text
    assert is_answered(signed.json())
    replay = _sign(REPLICAS["cds-2"], {"Authorization": f"Bearer {token}"})
    assert replay.status_code == 401
    fresh = _dev_token(stack.config, SIGN)
    assert _sign(PROXY, {"Authorization": f"Bearer {fresh}"}).status_code == 200
