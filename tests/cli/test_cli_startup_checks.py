"""Each misconfiguration stops `cds-service serve` and `cds-service check` the same way: at
once, exit code 2 (serve) / 1 (check), and one JSON line on standard error whose `message`
(its first field) names the setting and the fix (no traceback). Both run as real
subprocesses, as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.service import REPO_ROOT, free_port, service_command, service_env
from tests.faults.fake_postgres import FakePostgres, fake_postgres

EXAMPLE_ISSUERS = REPO_ROOT / "hooks" / "trusted-issuers.example.json"
BOUND_S = 60
"""Not a speed check: a command still running after this long has hung (the failure)."""


def command(name: str) -> list[str]:
    if name == "serve":
        return service_command("127.0.0.1", free_port(), 1)
    return [*service_command("127.0.0.1", 0, 1)[:-7], "check"]


def run(name: str, settings: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = service_env(os.environ, fhir_servers=[], database_url="", extra=settings)
    env = {k: v for k, v in env.items() if v != ""}
    return subprocess.run(  # noqa: S603 - fixed arguments, no shell
        command(name),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        check=False,
    )


@pytest.fixture(scope="module")
def silent_postgres() -> Iterator[FakePostgres]:
    with fake_postgres("silent") as server:
        yield server


@pytest.fixture(scope="module")
def stalling_postgres() -> Iterator[FakePostgres]:
    with fake_postgres("stall") as server:
        yield server


Case = Callable[[Path, FakePostgres, FakePostgres], dict[str, str]]

AUTH_ON = {"CDS_AUTH": "enabled", "CDS_PUBLIC_BASE_URL": "http://127.0.0.1:8080"}


def _bad_issuers(tmp: Path) -> str:
    path = tmp / "issuers.json"
    path.write_text(json.dumps({"issuers": [{"iss": "https://ehr.example.org"}]}), "utf-8")
    return str(path)


def _file_in_the_way(tmp: Path) -> str:
    (tmp / "a-file").write_text("not a folder", "utf-8")
    return f"sqlite:///{tmp / 'a-file' / 'var' / 'cds.sqlite'}"


CASES: dict[str, tuple[Case, str]] = {
    "auth on without trusted issuers": (
        lambda tmp, s, t: {"CDS_AUTH": "enabled"},
        "CDS_TRUSTED_ISSUERS",
    ),
    "trusted issuers file missing": (
        lambda tmp, s, t: {**AUTH_ON, "CDS_TRUSTED_ISSUERS": str(tmp / "absent.json")},
        "CDS_TRUSTED_ISSUERS",
    ),
    "trusted issuers file not valid": (
        lambda tmp, s, t: {**AUTH_ON, "CDS_TRUSTED_ISSUERS": _bad_issuers(tmp)},
        "CDS_TRUSTED_ISSUERS",
    ),
    "auth on without a public base URL": (
        lambda tmp, s, t: {"CDS_AUTH": "enabled", "CDS_TRUSTED_ISSUERS": str(EXAMPLE_ISSUERS)},
        "CDS_PUBLIC_BASE_URL",
    ),
    "trusted issuers given with auth off": (
        lambda tmp, s, t: {"CDS_AUTH": "disabled", "CDS_TRUSTED_ISSUERS": str(EXAMPLE_ISSUERS)},
        "CDS_TRUSTED_ISSUERS",
    ),
    "SQLite folder that cannot be created": (
        lambda tmp, s, t: {"CDS_DATABASE_URL": _file_in_the_way(tmp)},
        "CDS_DATABASE_URL",
    ),
    "PostgreSQL where nothing listens": (
        lambda tmp, s, t: {
            "CDS_DATABASE_URL": f"postgresql+psycopg://cds@127.0.0.1:{free_port()}/cds"
        },
        "CDS_DATABASE_URL",
    ),
    "PostgreSQL that never answers": (
        lambda tmp, s, t: {"CDS_DATABASE_URL": s.url(), "CDS_DATABASE_CONNECT_TIMEOUT": "1"},
        "CDS_DATABASE_URL",
    ),
    "PostgreSQL that stalls after the handshake": (
        lambda tmp, s, t: {"CDS_DATABASE_URL": t.url(), "CDS_DATABASE_TIMEOUT": "1"},
        "CDS_DATABASE_URL",
    ),
    "not a database URL": (
        lambda tmp, s, t: {"CDS_DATABASE_URL": "mysql://cds@db.example.org/cds"},
        "CDS_DATABASE_URL",
    ),
    "a number that is not one": (
        lambda tmp, s, t: {"CDS_BODY_TIMEOUT": "soon"},
        "CDS_BODY_TIMEOUT",
    ),
    "an unknown auth mode": (lambda tmp, s, t: {"CDS_AUTH": "maybe"}, "CDS_AUTH"),
    "clients-show-coverage flag that is not true or false": (
        lambda tmp, s, t: {"CDS_CLIENT_SHOWS_COVERAGE_INFORMATION": "sometimes"},
        "CDS_CLIENT_SHOWS_COVERAGE_INFORMATION",
    ),
    "clients-show-coverage flag with auth on (per client in the issuers file)": (
        lambda tmp, s, t: {
            **AUTH_ON,
            "CDS_TRUSTED_ISSUERS": str(EXAMPLE_ISSUERS),
            "CDS_CLIENT_SHOWS_COVERAGE_INFORMATION": "false",
        },
        "CDS_CLIENT_SHOWS_COVERAGE_INFORMATION",
    ),
}


EXIT_CODES = {"serve": 2, "check": 1}
PREFIXES = {"serve": "cds-service: cannot start: ", "check": "cds-service check: FAILED: "}


@pytest.mark.parametrize("name", ["serve", "check"])
@pytest.mark.parametrize("case", list(CASES))
def test_misconfiguration_is_one_line_naming_the_setting(
    case: str,
    name: str,
    tmp_path: Path,
    silent_postgres: FakePostgres,
    stalling_postgres: FakePostgres,
) -> None:
    make, setting = CASES[case]
    settings = {"CDS_AUTH": "disabled", **make(tmp_path, silent_postgres, stalling_postgres)}
    settings.setdefault("CDS_DATABASE_URL", f"sqlite:///{tmp_path / 'audit.sqlite'}")
    result = run(name, settings, tmp_path)
    assert result.returncode == EXIT_CODES[name]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    refusal = json.loads(lines[0])
    # The person at the terminal reads the message first: the setting and the fix.
    assert next(iter(refusal)) == "message"
    assert refusal["message"].startswith(PREFIXES[name])
    assert setting in refusal["message"]
    assert "\n" not in refusal["message"]
    assert (refusal["level"], refusal["event"]) == ("error", "refused")
    assert refusal["exit_code"] == result.returncode
    assert "Traceback" not in result.stderr
    assert result.stdout.strip() == ""


def test_a_missing_sqlite_folder_is_created(tmp_path: Path) -> None:
    database = tmp_path / "new" / "folder" / "cds.sqlite"
    result = run(
        "check", {"CDS_AUTH": "disabled", "CDS_DATABASE_URL": f"sqlite:///{database}"}, tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert database.is_file()
    assert f"audit database: ok (SQLite file {database})" in result.stdout


def test_check_shows_which_clients_do_not_show_coverage_information(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'cds.sqlite'}"
    auth_off = run(
        "check",
        {
            "CDS_AUTH": "disabled",
            "CDS_DATABASE_URL": database,
            "CDS_CLIENT_SHOWS_COVERAGE_INFORMATION": "false",
        },
        tmp_path,
    )
    auth_on = run(
        "check",
        {**AUTH_ON, "CDS_TRUSTED_ISSUERS": str(EXAMPLE_ISSUERS), "CDS_DATABASE_URL": database},
        tmp_path,
    )
    assert auth_off.returncode == 0, auth_off.stderr
    assert "clients: does not show coverage information" in auth_off.stdout
    assert auth_on.returncode == 0, auth_on.stderr
    not_shown = [line for line in auth_on.stdout.splitlines() if "does not show" in line]
    assert [line.split(": ")[0].strip() for line in not_shown] == ["https://sandbox.cds-hooks.org"]
