"""The ten-pack folder of the many-packs benchmark (benchmarks/many_packs.py) loads in the
validating registry: the packaged packs plus copies of the first pack re-pointed at other
ingredients of the shared terminology."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import many_packs
from cds_service.policy.packs import default_registry


def test_ten_packs_load_each_for_its_own_drug(tmp_path: Path) -> None:
    terminology_before = sorted(p.name for p in many_packs.VALUESETS.glob("*.json"))
    ids = many_packs.ten_pack_ids(tmp_path)
    assert sorted(p.name for p in many_packs.VALUESETS.glob("*.json")) == terminology_before
    packaged = set(default_registry().packs)
    assert len(ids) == many_packs.PACKS
    assert packaged <= set(ids)
    copies = sorted(set(ids) - packaged)
    drugs = []
    for pack_id in copies:
        drug = json.loads((tmp_path / "packs" / pack_id / "drug.json").read_text("utf-8"))
        products = json.loads(
            (many_packs.VALUESETS / "products" / f"{drug['ingredient']['name']}.json").read_text(
                "utf-8"
            )
        )
        assert {p["code"] for p in drug["products"] if p["system"] == "rxnorm"} == {
            p["code"] for p in products["rxnorm"]
        }
        drugs.append(drug["ingredient"]["name"])
    assert len(set(drugs)) == len(copies)
    assert not set(drugs) & default_registry().ingredients
