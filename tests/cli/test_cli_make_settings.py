"""`make run` and `make check` start `cds-service` with the same settings: authentication off
by default, on when CDS_TRUSTED_ISSUERS is set (with the public base URL of the address
served), and never half on. The commands run for real through make; the venv's
`cds-service` is a stand-in that prints what it was given."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.service import REPO_ROOT

STAND_IN = '#!/bin/sh\necho "cds-service $* AUTH=$CDS_AUTH URL=${CDS_PUBLIC_BASE_URL:-none}"\n'


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A venv folder make takes as installed, whose cds-service prints its settings."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    folder = tmp_path / "venv"
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").write_text("", "utf-8")
    script = folder / "bin" / "cds-service"
    script.write_text(STAND_IN, "utf-8")
    script.chmod(0o755)
    (folder / ".installed").touch()
    later = (REPO_ROOT / "pyproject.toml").stat().st_mtime + 60
    os.utime(folder / ".installed", (later, later))
    return folder


def make(target: str, venv: Path, **settings: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    env.update(settings)
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        ["make", "--no-print-directory", f"VENV={venv}", "PORT=8181", target],  # noqa: S607
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_run_is_local_with_authentication_off_by_default(venv: Path) -> None:
    out = make("run", venv)
    assert "make run: CDS_AUTH=disabled" in out
    assert "cds-service serve --host 127.0.0.1 --port 8181 AUTH=disabled URL=none" in out


def test_trusted_issuers_turn_authentication_on(venv: Path) -> None:
    out = make("run", venv, CDS_TRUSTED_ISSUERS="var/dev-issuer/trusted-issuers.json")
    assert "AUTH=enabled URL=http://127.0.0.1:8181" in out
    given = make(
        "run",
        venv,
        CDS_TRUSTED_ISSUERS="issuers.json",
        CDS_PUBLIC_BASE_URL="https://cds.example.org",
    )
    assert "AUTH=enabled URL=https://cds.example.org" in given


def test_check_sees_the_settings_run_uses(venv: Path) -> None:
    for settings in ({}, {"CDS_TRUSTED_ISSUERS": "issuers.json"}, {"CDS_AUTH": "enabled"}):
        run = make("run", venv, **settings).splitlines()[-1]
        check = make("check", venv, **settings).splitlines()[-1]
        assert run.replace("serve --host 127.0.0.1 --port 8181", "check") == check
