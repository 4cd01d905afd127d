"""The package as a wheel installs it (what the container image runs): the hook files, the
schemas and the policy packs come with it, so `cds-service check` passes with authentication
on and off from the environment alone, outside the source checkout; `CDS_HOOKS_DIR` still
wins when it is set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.build import (
    PUBLIC,
    build_wheel,
    copy_package_sources,
    install_wheel,
    trusted_issuers_folder,
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the wheel of the package was installed (built from a copy of its sources)."""
    folder = tmp_path_factory.mktemp("install")
    wheel = build_wheel(copy_package_sources(folder / "src"), folder / "dist")
    return install_wheel(wheel, folder / "site")


def run_installed(
    site: Path, cwd: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """`python -c 'cds_service.cli.main()' ARGS` with only the installed package importable
    (not the checkout), from `cwd`, with the `CDS_*` settings of `env` alone."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CDS_") and k != "PYTHONPATH"}
    code = (
        "import sys, cds_service, cds_service.cli as cli; "
        "print('package:', cds_service.__file__); sys.exit(cli.main(sys.argv[1:]))"
    )
    return subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env={**base, "PYTHONPATH": str(site), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_wheel_carries_hook_files_schemas_and_packs(installed: Path) -> None:
    package = installed / "cds_service"
    assert (package / "hooks_data" / "schemas" / "trusted-issuers.schema.json").is_file()
    assert sorted(p.name for p in (package / "hooks_data" / "services").glob("*.json")) == sorted(
        p.name for p in (Path(__file__).resolve().parents[2] / "hooks" / "services").glob("*.json")
    )
    assert list((package / "packs").glob("*/pack.json")), "no policy pack in the wheel"


def test_check_passes_with_auth_on_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    issuers, _ = trusted_issuers_folder(tmp_path / "config")
    result = run_installed(
        installed,
        tmp_path,
        {"CDS_AUTH": "enabled", "CDS_TRUSTED_ISSUERS": str(issuers), "CDS_PUBLIC_BASE_URL": PUBLIC},
        "check",
    )
    assert result.returncode == 0, result.stderr
    assert f"package: {installed / 'cds_service'}" in result.stdout
    assert "trusted issuers: 1" in result.stdout
    assert f"hooks in {installed / 'cds_service' / 'hooks_data'}" in result.stdout
    assert "service prior-auth-order-sign" in result.stdout
    assert "policy pack NH.PHAR.244" in result.stdout


def test_check_passes_with_auth_off_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    result = run_installed(installed, tmp_path, {"CDS_AUTH": "disabled"}, "check")
    assert result.returncode == 0, result.stderr
    assert "settings: ok (auth disabled" in result.stdout


def test_cds_hooks_dir_is_used_for_services_and_the_issuers_schema(
    installed: Path, tmp_path: Path
) -> None:
    hooks = tmp_path / "my-hooks"
    shutil.copytree(installed / "cds_service" / "hooks_data", hooks)
    (hooks / "services" / "prior-auth-order-dispatch.json").unlink()
    # A stricter schema in the operator's folder: issuers must name a tenant.
    schema_path = hooks / "schemas" / "trusted-issuers.schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    schema["$defs"]["issuer"]["required"].append("tenant")
    schema_path.write_text(json.dumps(schema), encoding="utf-8")
    issuers, _ = trusted_issuers_folder(tmp_path / "config")
    env = {
        "CDS_AUTH": "enabled",
        "CDS_TRUSTED_ISSUERS": str(issuers),
        "CDS_PUBLIC_BASE_URL": PUBLIC,
        "CDS_HOOKS_DIR": str(hooks),
    }

    refused = run_installed(installed, tmp_path, env, "check")
    assert refused.returncode == 1
    assert "tenant" in refused.stderr

    entry = json.loads(issuers.read_text(encoding="utf-8"))
    entry["issuers"][0]["tenant"] = "clinic-1"
    issuers.write_text(json.dumps(entry), encoding="utf-8")
    accepted = run_installed(installed, tmp_path, env, "check")
    assert accepted.returncode == 0, accepted.stderr
    assert f"hooks in {hooks}" in accepted.stdout
    assert "service prior-auth-order-sign" in accepted.stdout
    assert "prior-auth-order-dispatch" not in accepted.stdout
