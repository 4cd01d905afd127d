"""The container image, built and run by a real Docker engine: non-root, health check,
authentication on from the environment alone (a mounted trusted-issuers file with a test
signing key), a signed call answered with cards and its replay refused; authentication off
too. Skipped, saying why, where no Docker engine answers or no base image is at hand (no
image registry is reached from the tests: `scripts/docker-base-image.sh` makes a base image
with debootstrap, or set CDS_TEST_DOCKER_BASE_IMAGE to one that is present)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from sandbox.service import free_port
from tests.answers import covered, is_answered
from tests.auth.conftest import Signer
from tests.conftest import ROOT, load_example
from tests.deploy.build import PUBLIC, SIGN, token, trusted_issuers_folder

pytestmark = pytest.mark.docker

IMAGE = "anakinra-cds:test"
BASE_CANDIDATES = ("anakinra-cds-base:bookworm", "python:3.11-slim-bookworm")
"""Base images used when present, in this order (CDS_TEST_DOCKER_BASE_IMAGE first)."""
START_TIMEOUT = 180.0


DOCKER = shutil.which("docker")


def _docker_env() -> dict[str, str]:
    env = dict(os.environ)
    if DOCKER is not None:
        buildx = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [DOCKER, "buildx", "version"], capture_output=True, check=False
        )
        if buildx.returncode != 0:
            env["DOCKER_BUILDKIT"] = "0"  # no buildx plugin: the engine's own builder
    return env


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert DOCKER is not None
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [DOCKER, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_docker_env(),
        check=False,
    )
    if check:
        assert result.returncode == 0, f"docker {args[0]} failed:\n{result.stderr[-3000:]}"
    return result


def _base_image() -> str:
    if DOCKER is None:
        pytest.skip("no docker client on PATH: the container image is not tested")
    info = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
    if info.returncode != 0:
        detail = (info.stderr.strip().splitlines() or [""])[-1][:200]
        pytest.skip(
            "no Docker engine answers (start dockerd): the container image is not tested "
            f"({detail})"
        )
    wanted = os.environ.get("CDS_TEST_DOCKER_BASE_IMAGE")
    for candidate in (wanted,) if wanted else BASE_CANDIDATES:
        if docker("image", "inspect", candidate, check=False).returncode == 0:
            return candidate
    pytest.skip(
        f"no base image present ({wanted or ', '.join(BASE_CANDIDATES)}) and no registry is "
        "reached from the tests: make one with scripts/docker-base-image.sh"
    )


@pytest.fixture(scope="module")
def image() -> str:
    base = _base_image()
    docker(
        "build",
        "--network",
        "host",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "-t",
        IMAGE,
        str(ROOT),
        timeout=1800,
    )
    return IMAGE


@dataclass
class Container:
    name: str
    base_url: str


def _start(image: str, port: int, env: dict[str, str], mount: Path | None) -> Container:
    name = f"cds-test-{uuid.uuid4().hex[:10]}"
    args = ["run", "-d", "--rm", "--name", name, "--network", "host"]
    if mount is not None:
        args += ["-v", f"{mount}:/config:ro"]
    env = {"HEALTHCHECK_URL": f"http://127.0.0.1:{port}/health/live", **env}
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    # --host 127.0.0.1: the host's network, so loopback only; one worker to spare the CPU.
    # Creating a container copies the image's files on some storage drivers (vfs): minutes.
    docker(
        *args,
        image,
        "cds-service",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        timeout=600,
    )
    return Container(name, f"http://127.0.0.1:{port}")


def _wait_live(container: Container) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if requests.get(container.base_url + "/health/live", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        state = docker("inspect", "--format", "{{.State.Running}}", container.name, check=False)
        if state.stdout.strip() != "true":
            logs = docker("logs", container.name, check=False)
            pytest.fail(f"container stopped:\n{logs.stderr[-3000:]}{logs.stdout[-1000:]}")
        time.sleep(0.5)
    logs = docker("logs", container.name, check=False)
    pytest.fail(f"container did not answer within {START_TIMEOUT:.0f} s:\n{logs.stderr[-3000:]}")


@dataclass
class Running:
    auth_on: Container
    auth_off: Container
    signer: Signer


@pytest.fixture(scope="module")
def running(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    config = tmp_path_factory.mktemp("image-config")
    _, signer = trusted_issuers_folder(config)
    config.chmod(0o755)  # the image's user (not root) reads the mounted files
    for path in config.iterdir():
        path.chmod(0o644)
    containers: list[Container] = []
    try:
        containers.append(
            _start(
                image,
                free_port(),
                {
                    "CDS_AUTH": "enabled",
                    "CDS_TRUSTED_ISSUERS": "/config/trusted-issuers.json",
                    "CDS_PUBLIC_BASE_URL": PUBLIC,
                },
                config,
            )
        )
        containers.append(_start(image, free_port(), {"CDS_AUTH": "disabled"}, None))
        for container in containers:
            _wait_live(container)
        yield Running(containers[0], containers[1], signer)
    finally:
        for container in containers:
            docker("rm", "-f", container.name, check=False)


def _sign_call(container: Container, bearer: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return requests.post(
        container.base_url + SIGN,
        json=load_example("order-sign-prefetch.json"),
        headers=headers,
        timeout=60,
    )


def test_a_signed_call_is_answered_and_its_replay_refused(running: Running) -> None:
    bearer = token(running.signer)
    answer = _sign_call(running.auth_on, bearer)
    assert answer.status_code == 200, answer.text
    # The example order meets the criteria: the coverage information attached to it says so.
    assert covered(answer.json(), "MedicationRequest/draft-anakinra-1") == "covered"
    assert _sign_call(running.auth_on, bearer).status_code == 401
    assert _sign_call(running.auth_on, None).status_code == 401


def test_with_auth_off_an_unsigned_call_is_answered(running: Running) -> None:
    answer = _sign_call(running.auth_off, None)
    assert answer.status_code == 200, answer.text
    assert is_answered(answer.json())


def test_the_service_runs_as_a_non_root_user(running: Running) -> None:
    uid = docker("exec", running.auth_on.name, "id", "-u").stdout.strip()
    assert uid != "0"
    owner = docker("exec", running.auth_on.name, "stat", "-c", "%u", "/app/var").stdout.strip()
    assert owner == uid  # the SQLite audit store can be written


def test_the_images_health_check_passes_only_while_the_service_answers(running: Running) -> None:
    spec = docker("image", "inspect", "--format", "{{json .Config.Healthcheck}}", IMAGE)
    check = json.loads(spec.stdout)
    assert check["Test"][0] == "CMD"
    # The engine's own probe waits for its first interval; run the same command now.
    container = running.auth_on
    live = docker("exec", container.name, *check["Test"][1:], check=False)
    assert live.returncode == 0, live.stderr
    closed = f"http://127.0.0.1:{free_port()}/health/live"
    dead = docker(
        "exec", "-e", f"HEALTHCHECK_URL={closed}", container.name, *check["Test"][1:], check=False
    )
    assert dead.returncode != 0
