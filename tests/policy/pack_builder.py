"""A second, tiny policy pack for another ingredient (methotrexate), written by tests into a
temporary packs folder next to a copy of the packaged packs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from cds_service.policy.packs import PACKS_DIR

TEST_PACK_ID = "XX.MTX.1"
TEST_INGREDIENT = "methotrexate"

TEST_POLICY = f"""
id: {TEST_PACK_ID}
title: Methotrexate (test policy)
drug: {TEST_INGREDIENT}
line_of_business: Medicaid
effective: "01.25"
last_review: "01.25"
version: "test-7"
references: {{CP.PMN.53: Off-label use policy}}
pathway:
  current_statuses: [active]
  ignored_statuses: [entered-in-error]
  continued_within_days: 30
indications:
  - {{name: rheumatoid-arthritis, title: Rheumatoid arthritis, valuesets: [rheumatoid-arthritis]}}
common_criteria:
  - id: IV.C
    text: Hypersensitivity to the drug.
    check: hypersensitivity
    params: {{valuesets: [{TEST_INGREDIENT}]}}
    documentation: Allergy history.
sections:
  - id: I.A
    title: Rheumatoid arthritis
    pathway: initial
    indications: [rheumatoid-arthritis]
    approval_months: 3
    criteria:
      - id: I.A.1
        text: Age >= 18 years.
        check: minimum-age
        params: {{years: 18}}
        documentation: Date of birth.
  - id: I.B
    title: Other
    pathway: initial
    indications: [other]
    off_label: true
    policy_references: [CP.PMN.53]
    criteria:
      - id: I.B
        text: Off-label.
        check: refer-to-policy
        params: {{policies: [CP.PMN.53], reason: Off-label review.}}
        documentation: Evidence.
  - id: II.A
    title: Continued
    pathway: continued
    indications: [rheumatoid-arthritis]
    approval_months: 12
    criteria:
      - id: II.A.1
        text: Currently receiving.
        check: currently-receiving
        documentation: Records.
  - id: II.B
    title: Other, continued
    pathway: continued
    indications: [other]
    off_label: true
    criteria:
      - id: II.B
        text: Off-label.
        check: refer-to-policy
        params: {{policies: [CP.PMN.53], reason: Off-label review.}}
        documentation: Evidence.
"""


def manifest_of(**changes: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": 1,
        "id": TEST_PACK_ID,
        "version": "test-7",
        "title": "Methotrexate (test policy)",
        "effective": "2025-01",
        "last_review": "2025-01",
        "line_of_business": "Medicaid",
        "source": "source.txt",
        "dependencies": {"terminology": "fhir_mappings/valuesets"},
    }
    manifest.update(changes)
    return manifest


def drug_of(**changes: Any) -> dict[str, Any]:
    drug: dict[str, Any] = {
        "ingredient": {"name": TEST_INGREDIENT, "rxnorm": "6851"},
        "brand": "Trexall",
        "products": [
            {"system": "rxnorm", "code": "105585", "display": "methotrexate 2.5 MG Oral Tablet"}
        ],
        "billing": {"hcpcs": [], "ndc": ["00054455015"]},
        "route": "oral",
        "unit": {
            "name": "tablet",
            "plural": "tablets",
            "ucum": "{tablet}",
            "aliases": ["tab"],
            "content_mg": 2.5,
            "content_ml": 1,
            "deliverable_mg": 2.5,
        },
    }
    drug.update(changes)
    return drug


def write_pack(
    root: Path,
    *,
    folder: str = TEST_PACK_ID,
    manifest: dict[str, Any] | None = None,
    drug: dict[str, Any] | None = None,
    policy: str = TEST_POLICY,
) -> Path:
    directory = root / folder
    directory.mkdir(parents=True)
    (directory / "pack.json").write_text(json.dumps(manifest or manifest_of()), "utf-8")
    (directory / "drug.json").write_text(json.dumps(drug or drug_of()), "utf-8")
    (directory / "policy.yaml").write_text(policy, "utf-8")
    (directory / "source.txt").write_text("A test policy.\n", "utf-8")
    (directory / "cards.yaml").write_text(cards_of(policy=policy), "utf-8")
    return directory


def cards_of(product: str = "Methotrexate test product", policy: str = TEST_POLICY) -> str:
    """The packaged NH.PHAR.244 card texts under another product name, without its
    step-therapy criterion list (criteria the test policy does not have), with a plain label
    for every criterion of `policy` (each criterion needs one)."""
    data = yaml.safe_load((PACKS_DIR / "NH.PHAR.244" / "cards.yaml").read_text("utf-8"))
    data["product"] = product
    data["not_met"].pop("step_therapy_criteria", None)
    try:
        ids = _criterion_ids(yaml.safe_load(policy))
    except yaml.YAMLError:  # a test of a broken policy.yaml: its own error comes first
        ids = []
    data["criteria"] = {
        criterion_id: {"label": f"the documentation criterion {n} asks for"}
        for n, criterion_id in enumerate(ids, 1)
    }
    return str(yaml.safe_dump(data, sort_keys=False))


def _criterion_ids(node: Any) -> list[str]:
    """The ids of every criterion (an entry with `id` and `check`) of a raw policy."""
    found: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("id"), str) and "check" in node:
            found.append(node["id"])
        for key, value in node.items():
            if key != "params":
                found += _criterion_ids(value)
    elif isinstance(node, list):
        for item in node:
            found += _criterion_ids(item)
    return list(dict.fromkeys(found))


def copy_packaged_packs(root: Path) -> Path:
    """A copy of every packaged pack under `root` (returned)."""
    for pack in PACKS_DIR.iterdir():
        if (pack / "pack.json").is_file():
            shutil.copytree(pack, root / pack.name)
    return root
