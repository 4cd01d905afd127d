"""Policy packs: loading, validation errors that name file / place / problem, routing keys,
and a bad pack stopping the service at start."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from cds_service import create_app
from cds_service.cli import main
from cds_service.policy.engine import load_policy
from cds_service.policy.packs import PolicyFileError, load_packs, packs_dir
from sandbox.service import LOOPBACK, REPO_ROOT, free_port, service_command
from tests.conftest import base_config
from tests.policy.pack_builder import (
    TEST_INGREDIENT,
    TEST_PACK_ID,
    copy_packaged_packs,
    drug_of,
    manifest_of,
    write_pack,
)


def test_packaged_packs_load_and_route_by_ingredient_and_product_codes() -> None:
    registry = load_packs()
    pack = registry.packs["NH.PHAR.244"]
    assert pack.version == pack.manifest["version"] == pack.policy.version
    assert registry.for_ingredient(pack.policy.drug) is pack
    assert registry.for_identities(["tocilizumab", pack.drug.ingredient]) is pack
    for product in pack.drug.products:
        assert registry.for_code(product.system, product.code) is pack
    ndc = pack.drug.billing_ndc[0]  # 11 digits, 5-4-2
    labeler, middle, package = ndc.split("-")
    assert registry.for_code("ndc", f"{labeler}-{middle.lstrip('0')}-{package}") is pack
    assert registry.for_code("ndc", ndc.replace("-", "")) is pack
    assert registry.for_ingredient(TEST_INGREDIENT) is None
    assert pack.drug.unit.deliverable_mg > 0


def test_load_policy_is_the_packaged_pack_policy() -> None:
    assert load_policy() == load_packs().packs["NH.PHAR.244"].policy


def test_packs_dir_comes_from_the_environment(tmp_path: Path) -> None:
    assert packs_dir({"CDS_POLICY_PACKS_DIR": str(tmp_path)}) == tmp_path
    assert packs_dir({}).name == "packs"


def test_two_packs_load_side_by_side(tmp_path: Path) -> None:
    copy_packaged_packs(tmp_path)
    write_pack(tmp_path)
    registry = load_packs(tmp_path)
    assert set(registry.packs) == {*load_packs().packs, TEST_PACK_ID}
    assert registry.for_ingredient(TEST_INGREDIENT) is registry.packs[TEST_PACK_ID]
    assert registry.fallback.id == "NH.PHAR.244"  # the longest-standing policy


def _error(root: Path) -> str:
    with pytest.raises(PolicyFileError) as caught:
        load_packs(root)
    return str(caught.value)


@pytest.mark.parametrize(
    ("write", "file", "place", "problem"),
    [
        (
            {"manifest": manifest_of(effective="01.25")},
            "pack.json",
            "effective",
            "does not match",
        ),
        ({"manifest": manifest_of(version="other")}, "pack.json", "version", "differs from"),
        (
            {"manifest": manifest_of(id="XX.OTHER.1")},
            "pack.json",
            "id",
            "differs from policy.yaml",
        ),
        (
            {"drug": drug_of(unit={**drug_of()["unit"], "deliverable_mg": 0})},
            "drug.json",
            "unit.deliverable_mg",
            "less than or equal to the minimum",
        ),
        (
            {"drug": drug_of(products=[{"system": "ndc", "code": "12", "display": "x"}])},
            "drug.json",
            "products[0].code",
            "does not match",
        ),
        (
            {"drug": drug_of(ingredient={"name": "adalimumab", "rxnorm": "327361"})},
            "drug.json",
            "ingredient.name",
            "differs from policy.yaml's drug 'methotrexate'",
        ),
        ({"policy": "id: [unclosed"}, "policy.yaml", "", "not valid YAML"),
    ],
)
def test_a_bad_pack_is_refused_naming_file_place_and_problem(
    tmp_path: Path, write: dict[str, object], file: str, place: str, problem: str
) -> None:
    write_pack(tmp_path, **write)  # type: ignore[arg-type]
    message = _error(tmp_path)
    assert f"{TEST_PACK_ID}/{file}" in message
    assert f": {place}" in message
    assert problem in message


def test_a_manifest_that_is_not_json_names_the_line(tmp_path: Path) -> None:
    directory = write_pack(tmp_path)
    (directory / "pack.json").write_text('{"format": 1,\n  "id": }', "utf-8")
    message = _error(tmp_path)
    assert "pack.json: line 2 column" in message


def test_two_packs_for_one_ingredient_are_refused(tmp_path: Path) -> None:
    write_pack(tmp_path)
    second = "XX.MTX.2"
    policy = (Path(tmp_path / TEST_PACK_ID / "policy.yaml").read_text("utf-8")).replace(
        f"id: {TEST_PACK_ID}", f"id: {second}"
    )
    write_pack(tmp_path, folder=second, manifest=manifest_of(id=second), policy=policy)
    message = _error(tmp_path)
    assert f"{second}/drug.json: ingredient.name" in message
    assert f"already decided by pack {TEST_PACK_ID}" in message


def test_a_pack_without_drug_json_is_refused(tmp_path: Path) -> None:
    (write_pack(tmp_path) / "drug.json").unlink()
    assert "drug.json: missing" in _error(tmp_path)


def test_a_folder_without_packs_is_refused(tmp_path: Path) -> None:
    assert "no policy pack found" in _error(tmp_path)


def _bad_packs(tmp_path: Path) -> Path:
    copy_packaged_packs(tmp_path)
    manifest = tmp_path / "NH.PHAR.244" / "pack.json"
    data = json.loads(manifest.read_text("utf-8"))
    data["version"] = "not-the-policy-version"
    manifest.write_text(json.dumps(data), "utf-8")
    return tmp_path


def test_a_bad_pack_stops_app_creation(tmp_path: Path) -> None:
    root = _bad_packs(tmp_path)
    with pytest.raises(PolicyFileError, match=re.escape("NH.PHAR.244/pack.json: version")):
        create_app(base_config(CDS_POLICY_PACKS_DIR=str(root)))


def test_check_and_serve_refuse_a_bad_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _bad_packs(tmp_path)
    monkeypatch.setenv("CDS_AUTH", "disabled")
    monkeypatch.setenv("CDS_DATABASE_URL", "sqlite://")
    monkeypatch.setenv("CDS_POLICY_PACKS_DIR", str(root))
    assert main(["check"]) == 1
    assert "NH.PHAR.244/pack.json: version" in capsys.readouterr().err
    # `serve` goes on in a new process (gevent, cds_service.server) that loads the packs.
    served = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        service_command(LOOPBACK, free_port(), 1),
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert served.returncode == 2
    assert "cannot start: " in served.stderr
    assert "NH.PHAR.244/pack.json: version" in served.stderr


def test_check_lists_the_packs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDS_AUTH", "disabled")
    monkeypatch.delenv("CDS_POLICY_PACKS_DIR", raising=False)
    assert main(["check"]) == 0
    assert "policy pack NH.PHAR.244 version 2025.04-1" in capsys.readouterr().out
