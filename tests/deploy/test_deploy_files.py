"""The deployment files agree with each other and with the README: the compose file's
replicas share one PostgreSQL and one public URL, the proxy sends to both, the lock file pins
every dependency and every install uses it, the build context holds only what the image is
built from, and the README's mount path is the Dockerfile's."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import tomllib
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    return data


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _port_of(url: str) -> int:
    match = re.search(r":(\d+)(/|$)", url.split("@")[-1])
    assert match, url
    return int(match.group(1))


def test_two_replicas_share_one_postgresql_and_one_public_url() -> None:
    services = compose()["services"]
    replicas = [services["cds-1"], services["cds-2"]]
    postgres = services["postgres"]["command"]
    assert "listen_addresses=127.0.0.1" in postgres  # the host's network: loopback only
    assert "port=55432" in postgres
    for replica in replicas:
        env = replica["environment"]
        assert env["CDS_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert _port_of(env["CDS_DATABASE_URL"]) == 55432
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert replica["command"][:2] == ["cds-service", "serve"]
        assert _option(replica["command"], "--host") == "127.0.0.1"
    assert replicas[0]["environment"] == replicas[1]["environment"]
    ports = [int(_option(r["command"], "--port")) for r in replicas]
    assert len(set(ports)) == 2
    for replica, port in zip(replicas, ports, strict=True):
        assert f"127.0.0.1:{port}/health/ready" in " ".join(replica["healthcheck"]["test"])
    assert {s.get("network_mode") for s in services.values()} == {"host"}


def test_the_proxy_listens_on_the_public_url_and_sends_to_both_replicas() -> None:
    services = compose()["services"]
    public = services["cds-1"]["environment"]["CDS_PUBLIC_BASE_URL"]
    default_public = re.fullmatch(r"\$\{CDS_PUBLIC_BASE_URL:-(.+)\}", public)
    assert default_public, public
    mount = next(v for v in services["proxy"]["volumes"] if "nginx" in v)
    conf = (ROOT / mount.split(":")[0].removeprefix("./")).read_text("utf-8")
    assert f"listen 127.0.0.1:{_port_of(default_public.group(1))};" in conf
    upstream = set(re.findall(r"server 127\.0\.0\.1:(\d+)", conf))
    replica_ports = {_option(services[n]["command"], "--port") for n in ("cds-1", "cds-2")}
    assert upstream == replica_ports


def test_the_sandbox_serves_where_the_example_requests_read() -> None:
    services = compose()["services"]
    sandbox = services["fhir-sandbox"]
    dockerfile = (ROOT / sandbox["build"]["dockerfile"]).read_text("utf-8")
    port = re.search(r'"serve", "--port", "(\d+)"', dockerfile)
    assert port
    example = (ROOT / "hooks" / "examples" / "order-sign-fhir-server.json").read_text("utf-8")
    assert f"http://127.0.0.1:{port.group(1)}/fhir" in example
    allowed = services["cds-1"]["environment"]["CDS_FHIR_SERVERS"]
    assert allowed == f"http://127.0.0.1:{port.group(1)}/fhir"


def test_image_names_default_to_the_official_images_and_offline_env_names_them_all() -> None:
    services = compose()["services"]
    defaults = {
        "POSTGRES_IMAGE": (services["postgres"]["image"], "postgres:16-bookworm"),
        "PROXY_IMAGE": (services["proxy"]["image"], "nginx:1.27-bookworm"),
    }
    for name, (image, default) in defaults.items():
        assert image == f"${{{name}:-{default}}}"
    for built in ("cds-1", "cds-2", "fhir-sandbox"):
        build = services[built]["build"]
        assert build["args"]["BASE_IMAGE"] == "${BASE_IMAGE:-python:3.11-slim-bookworm}"
        assert build["network"] == "host"  # pip and npm reach their indexes at build time
    offline = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy" / "offline.env").read_text("utf-8").splitlines()
        if line and not line.startswith("#")
    )
    assert set(offline) == {"BASE_IMAGE", "POSTGRES_IMAGE", "PROXY_IMAGE"}
    script = (ROOT / "scripts" / "docker-offline-images.sh").read_text("utf-8")
    for dockerfile in ("deploy/postgres.Dockerfile", "deploy/nginx.Dockerfile"):
        assert (ROOT / dockerfile).is_file()
    assert '"postgres:$postgres" "nginx:$proxy"' in script


def _compose_command() -> list[str] | None:
    """`docker compose` (the plugin), else the standalone `docker-compose`; None: neither."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_docker_compose_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip(
            "neither `docker compose` nor `docker-compose`: checked by the tests above only"
        )
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _requirement_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    wanted = project["dependencies"] + [
        r for extra in ("test", "postgres") for r in project["optional-dependencies"][extra]
    ]
    return {_normal(re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0]) for r in wanted}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_constraints_pin_every_dependency_and_name_no_index() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "constraints.txt").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    pinned = {}
    for line in lines:
        name, sep, version = line.partition("==")
        assert sep, f"not an exact pin: {line}"
        assert re.fullmatch(r"[A-Za-z0-9.+!-]+", version), f"not an exact pin: {line}"
        pinned[_normal(name)] = version
    missing = _requirement_names() - pinned.keys()
    assert not missing, f"run `make constraints`: not pinned in constraints.txt: {missing}"


def test_every_install_uses_the_constraints() -> None:
    dry = subprocess.run(
        ["make", "-n", "install", "bench", "VENV=/nonexistent/venv"],  # noqa: S607 - make on PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert dry.returncode == 0, dry.stderr
    installs = [line for line in dry.stdout.splitlines() if "pip install" in line and "-e" in line]
    assert len(installs) == 2, dry.stdout
    assert all("-c constraints.txt" in line for line in installs), installs
    assert any("--progress-bar on" in line for line in installs)
    assert "Installing the service" in dry.stdout  # said before the first, long install
    for dockerfile in ("Dockerfile", "sandbox/Dockerfile"):
        text = (ROOT / dockerfile).read_text("utf-8")
        pip_lines = re.findall(r"pip install [^\n\\]*", text)
        assert pip_lines
        assert all("constraints.txt" in line for line in pip_lines), (dockerfile, pip_lines)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule for `path` (the last matching pattern decides)."""
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.removeprefix("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        candidates = prefixes + (
            ["/".join(parts[i:]) for i in range(len(parts))] if pattern.startswith("**/") else []
        )
        core = pattern.removeprefix("**/")
        if any(fnmatch.fnmatchcase(c, core) for c in candidates):
            ignored = not negate
    return ignored


def test_the_build_context_holds_only_what_the_images_are_built_from() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = []
    for dockerfile in ("Dockerfile", "sandbox/Dockerfile"):
        for line in (ROOT / dockerfile).read_text("utf-8").splitlines():
            if line.startswith("COPY "):
                needed += [s for s in line.split()[1:-1] if s != "."]
    needed += ["cds_service/packs", "cds_service/__init__.py", "hooks/services", "setup.py"]
    for path in needed:
        assert not _ignored(path, patterns), f"{path} is copied but left out of the context"
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "docs/operations.md",
        "sandbox/node_modules/x/index.js",
        "var/cds.sqlite",
        "cds_service/__pycache__/a.pyc",
    ):
        assert _ignored(path, patterns), f"{path} would be sent to the engine"


def _mounts(text: str) -> tuple[set[str], set[str]]:
    volumes = set(re.findall(r'-v "?\$PWD/[\w-]+:(/[\w-]+):ro', text))
    issuers = set(re.findall(r"CDS_TRUSTED_ISSUERS=(/[\w-]+)/", text))
    return volumes, issuers


def test_the_readme_mounts_the_config_where_the_dockerfile_says() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
    readme_volumes, readme_issuers = _mounts(readme)
    image_volumes, image_issuers = _mounts(dockerfile)
    assert image_volumes == image_issuers == {"/config"}
    assert readme_volumes == image_volumes
    assert readme_issuers == image_issuers
    compose_mounts = {v.rsplit(":", 2)[1] for v in compose()["services"]["cds-1"]["volumes"]}
    assert compose_mounts == image_volumes
