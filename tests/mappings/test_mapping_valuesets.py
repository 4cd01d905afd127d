"""Value set files: names, shape checks, code normalisation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_mappings import valuesets
from fhir_mappings.valuesets import ValueSetError, load, normalise_ndc

BRIEF_NAMES = {
    "anakinra",
    "methotrexate",
    "conventional-dmard",
    "preferred-ra-product",
    "tnf-blocker",
    "interleukin-agent",
    "jak-inhibitor",
    "anti-cd20",
    "costimulation-modulator",
    "integrin-antagonist",
    "biologic-dmard-or-jak-inhibitor",
    "rheumatoid-arthritis",
    "nomid-cinca",
    "caps-unspecified",
    "caps-fcas-mws",
    "dira",
    "autoinflammatory-other",
    "covid-19",
    "mtx-contraindication",
    "e-coli-derived-proteins",
    "rheumatology",
    "cdai",
    "rapid3",
    "acr-2010-score",
    "acr-joints-large",
    "acr-joints-small",
    "rheumatoid-factor",
    "acpa",
    "crp",
    "esr",
    "symptom-duration-weeks",
    "body-weight",
    "alcohol-units-per-week",
    "alcohol-drinks-per-day",
    "uncovered-arthritis",
    "treatment-response",
    "il1rn-genetic",
    # IL1.RIL.01 (rilonacept)
    "pericarditis",
    "recurrent-pericarditis",
    "urticarial-rash",
    "cold-triggered-episodes",
    "sensorineural-hearing-loss",
    "musculoskeletal-pain",
    "aseptic-meningitis",
    "bone-overgrowth",
    "serious-infection",
    "latent-tb",
    "colchicine",
    "nsaid",
    "aspirin",
    "latent-tb-treatment",
    "allergy-immunology",
    "immunology",
    "dermatology",
    "medical-genetics",
    "cardiology",
    "rilonacept",
    # IL1.RIL.01 laboratory tests (lane checks)
    "saa",
    "tb-skin-test",
    "tb-igra",
    # docs/examples/IL1.CAN.01 (canakinumab, an example pack)
    "canakinumab",
    "stills-disease",
}


def test_every_contract_name_has_a_file_and_no_more():
    assert valuesets.valueset_names() == BRIEF_NAMES


def test_titles_and_drug_display():
    assert valuesets.valueset_title("tnf-blocker") == "TNF blockers"
    assert "Humira" in valuesets.drug_display("adalimumab")
    assert valuesets.drug_display("unknown-drug") == "unknown-drug"


def test_union_set_holds_the_six_classes_and_not_anakinra():
    union = {h.valueset for h in valuesets.match_code(valuesets.RXNORM, "72435")}
    assert union == {"anakinra"}
    for code in ("214555", "763450", "2047232", "121191", "614391", "1538097"):
        hits = {h.valueset for h in valuesets.match_code(valuesets.RXNORM, code)}
        assert "biologic-dmard-or-jak-inhibitor" in hits


def test_every_concept_cites_a_source():
    for path in valuesets.VALUESET_DIR.glob("*.json"):
        data = json.loads(path.read_text())
        for concept in data["concepts"]:
            assert concept["source"].strip()
            assert "NOT VERIFIED" not in concept["source"] or concept["confidence"] != "high"


@pytest.mark.parametrize(
    ("code", "normal"),
    [
        ("66658-234-07", "66658023407"),
        ("66658-0234-07", "66658023407"),
        ("66658023407", "66658023407"),
        ("6665-8234-07", "06665823407"),
        ("6665823407", None),
        ("abc", None),
    ],
)
def test_ndc_forms(code, normal):
    assert normalise_ndc(code) == normal


def write(directory: Path, name: str, body: dict[str, Any]) -> None:
    (directory / f"{name}.json").write_text(json.dumps(body))


def good(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": "T",
        "kind": "diagnosis",
        "names": [],
        "concepts": [
            {
                "system": "http://snomed.info/sct",
                "code": "1",
                "display": "d",
                "source": "s",
                "confidence": "high",
            }
        ],
    }


def test_loader_accepts_a_good_file(tmp_path):
    write(tmp_path, "x", good("x"))
    assert set(load(tmp_path).sets) == {"x"}


@pytest.mark.parametrize(
    "breakage",
    ["duplicate", "no-source", "wrong-name", "bad-kind", "drug-missing"],
)
def test_loader_rejects_bad_files(tmp_path, breakage):
    body = good("x")
    if breakage == "duplicate":
        body["concepts"].append(dict(body["concepts"][0]))
    elif breakage == "no-source":
        del body["concepts"][0]["source"]
    elif breakage == "wrong-name":
        body["name"] = "y"
    elif breakage == "bad-kind":
        body["kind"] = "thing"
    elif breakage == "drug-missing":
        body["kind"] = "medication"
        body["drugs"] = {"a": "A"}
    write(tmp_path, "x", body)
    with pytest.raises(ValueSetError):
        load(tmp_path)
