"""Shared by the deployment tests: the package as it is installed from a wheel (not the
checkout), a trusted-issuers folder with a fresh signing key, signed calls."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.auth.conftest import Signer, jwks, make_signer
from tests.conftest import ROOT

ISS = "https://ehr.example.org"
PUBLIC = "https://cds.example.org"
SIGN = "/cds-services/prior-auth-order-sign"
PACKAGE_SOURCES = (
    "pyproject.toml",
    "setup.py",
    "README.md",
    "cds_service",
    "fhir_mappings",
    "hooks",
)
"""What the Dockerfile copies to build the package: a wheel is built from these alone."""


def copy_package_sources(target: Path) -> Path:
    """The files the package is built from, copied (so a build leaves the checkout alone)."""
    target.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in PACKAGE_SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    return target


def build_wheel(sources: Path, out: Path) -> Path:
    """`pip wheel` of the package (no dependencies); its build tools come from the index."""
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(out),
            str(sources),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = out.glob("anakinra_cds-*.whl")
    return wheel


def install_wheel(wheel: Path, target: Path) -> Path:
    """The wheel unpacked into `target` as pip installs it (no dependencies: the test's own
    environment has them), for use on PYTHONPATH."""
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return target


def trusted_issuers_folder(folder: Path, signer: Signer | None = None) -> tuple[Path, Signer]:
    """`folder/trusted-issuers.json` trusting one EHR whose public key is in `keys.json`."""
    signer = signer or make_signer("ES384", f"deploy-{uuid.uuid4().hex[:8]}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "keys.json").write_text(json.dumps(jwks(signer)), encoding="utf-8")
    issuers = {"issuers": [{"iss": ISS, "jwks_file": "keys.json", "fhir_servers": []}]}
    (folder / "trusted-issuers.json").write_text(json.dumps(issuers), encoding="utf-8")
    return folder / "trusted-issuers.json", signer


def token(signer: Signer, path: str = SIGN, jti: str | None = None) -> str:
    """A fresh client JWT for `PUBLIC + path`."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISS,
        "aud": PUBLIC + path,
        "iat": now,
        "exp": now + 300,
        "jti": jti or f"deploy-{uuid.uuid4()}",
    }
    return signer.sign(claims)
