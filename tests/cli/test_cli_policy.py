"""`cds-service policy lint / show / checks`, run as a plan pharmacist would on a pack."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds_service.cli import main
from cds_service.policy import lint
from cds_service.policy.checks import CHECKS
from cds_service.policy.clauses import source_clauses
from cds_service.policy.definition import PACKS_DIR, read_policy_file

ROOT = Path(__file__).resolve().parents[2]
PACK = PACKS_DIR / "NH.PHAR.244"
DOC = ROOT / "docs" / "policy-packs.md"

# Until the pack manifest and drug identity land in the pack folder (lane core), a copy
# gets these; once the folder has them, they are used as they are.
_MANIFEST = {
    "format": 1,
    "id": "NH.PHAR.244",
    "version": "2025.04-1",
    "title": "Anakinra (Kineret)",
    "effective": "2024-06",
    "last_review": "2025-04",
    "line_of_business": "Medicaid",
    "source": "source.txt",
    "dependencies": {"terminology": "fhir_mappings/valuesets"},
}
_DRUG = {
    "ingredient": {"name": "anakinra", "rxnorm": "72435"},
    "brand": "Kineret",
    "products": [
        {"system": "rxnorm", "code": "727711", "display": "0.67 ML anakinra 149 MG/ML PFS"},
        {"system": "ndc", "code": "66658-0234-07", "display": "Kineret, carton of 7"},
    ],
    "billing": {"hcpcs": [], "ndc": ["66658-0234-07"]},
    "route": "subcutaneous",
    "unit": {
        "name": "syringe",
        "plural": "syringes",
        "ucum": "{syringe}",
        "aliases": ["PFS"],
        "content_mg": 100,
        "content_ml": 0.67,
        "deliverable_mg": 100,
    },
}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    out, _ = capsys.readouterr()
    return code, out


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    """A copy of the NH.PHAR.244 pack that a test may break."""
    copy = tmp_path / "NH.PHAR.244"
    shutil.copytree(PACK, copy)
    for name, content in (("pack.json", _MANIFEST), ("drug.json", _DRUG)):
        if not (copy / name).exists():
            (copy / name).write_text(json.dumps(content), encoding="utf-8")
    return copy


def edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def edit_text(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# --------------------------------------------------------------------------- lint


def test_lint_nh_phar_244_is_clean(pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["policy", "lint", str(pack)], capsys)
    assert code == 0, out
    assert out.strip() == "NH.PHAR.244: 0 error(s), 0 warning(s)"


def test_lint_the_shipped_packs_have_no_errors(capsys: pytest.CaptureFixture[str]) -> None:
    folders = [p for p in sorted(PACKS_DIR.iterdir()) if (p / "pack.json").is_file()]
    if not folders:
        pytest.skip("no pack.json in the shipped packs yet")
    code, out = run(["policy", "lint", *map(str, folders)], capsys)
    assert code == 0, out


def test_lint_unknown_value_set(pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_text(
        pack / "policy.yaml",
        "valuesets: [preferred-ra-product]",
        "valuesets: [preferred-ra-products]",
    )
    code, out = run(["policy", "lint", str(pack)], capsys)
    assert code == 1
    assert (
        "NH.PHAR.244: error: policy.yaml: sections[0].criteria[4].params.valuesets[0]: "
        "unknown value set 'preferred-ra-products'"
    ) in out


def test_lint_unmapped_clause(pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_text(pack / "policy.yaml", "      - id: I.A.6\n", "      - id: I.A.9\n")
    code, out = run(["policy", "lint", str(pack)], capsys)
    assert code == 1
    line = next(
        c.line for c in source_clauses(PACK.joinpath("source.txt").read_text()) if c.id == "I.A.6"
    )
    assert f"error: source.txt: line {line} I.A.6: clause I.A.6 (Documentation of" in out
    # its sub-clauses are not repeated; the criterion that names no clause is a warning
    assert "I.A.6.a" not in out
    assert "warning: policy.yaml: sections[0].criteria[5].id: I.A.9 names no clause" in out


def test_lint_not_decidable_clause_must_exist(
    pack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_text(pack / "policy.yaml", "  - clause: II.A.1.b\n", "  - clause: II.A.1.c\n")
    code, out = run(["policy", "lint", str(pack)], capsys)
    assert code == 1
    assert (
        "error: policy.yaml: not_decidable[2].clause: clause II.A.1.c is not in source.txt" in out
    )


def test_a_clause_declared_not_decidable_needs_no_criterion(pack: Path) -> None:
    policy = yaml.safe_load((pack / "policy.yaml").read_text(encoding="utf-8"))
    policy["sections"][0]["criteria"][5]["id"] = "I.A.9"
    policy["not_decidable"].append({"clause": "I.A.6", "reason": "Scores are in notes."})
    clauses = source_clauses((pack / "source.txt").read_text(encoding="utf-8"))
    findings = lint.clause_findings(clauses, policy, "source.txt")
    assert [f.severity for f in findings] == ["warning"]


def test_lint_drug_code_of_another_ingredient(
    pack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def change(drug: dict[str, Any]) -> None:
        drug["products"][0]["code"] = "351290"  # an adalimumab product

    edit_json(pack / "drug.json", change)
    code, out = run(["policy", "lint", str(pack)], capsys)
    assert code == 1
    assert (
        "error: drug.json: products[0]: rxnorm 351290 is adalimumab in the shared terminology, "
        "not anakinra"
    ) in out


def test_lint_drug_code_unknown_to_the_terminology(pack: Path) -> None:
    def change(drug: dict[str, Any]) -> None:
        drug["billing"]["ndc"].append("00000-0000-00")
        drug["billing"]["hcpcs"] = ["J3590"]  # unclassified biologics: names no drug

    edit_json(pack / "drug.json", change)
    added = len(json.loads((pack / "drug.json").read_text(encoding="utf-8"))["billing"]["ndc"]) - 1
    findings = [f for f in lint.lint_pack(pack) if f.severity == "error"]
    assert [(f.file, f.place) for f in findings] == [("drug.json", f"billing.ndc[{added}]")]
    assert "not in the shared terminology" in findings[0].message


def test_lint_bad_manifest(pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def change(manifest: dict[str, Any]) -> None:
        del manifest["title"]
        manifest["version"] = "2026.01-1"

    edit_json(pack / "pack.json", change)
    code, out = run(["policy", "lint", str(pack)], capsys)
    assert code == 1
    assert "error: pack.json: (top level): 'title' is a required property" in out
    assert "error: policy.yaml: version: '2025.04-1' differs from pack.json's version" in out


def test_lint_missing_manifest_and_bad_policy(pack: Path) -> None:
    (pack / "pack.json").unlink()
    edit_text(pack / "policy.yaml", "        check: minimum-age\n", "        check: minimum-ages\n")
    findings = {(f.file, f.place): f.message for f in lint.lint_pack(pack)}
    assert findings[("pack.json", "(file)")] == "missing"
    assert findings[("policy.yaml", "sections[0].criteria[2].check")].startswith(
        "unknown check 'minimum-ages'"
    )


def test_lint_unreachable_section_indication_and_criterion(pack: Path) -> None:
    policy = yaml.safe_load((pack / "policy.yaml").read_text(encoding="utf-8"))
    covid = next(s for s in policy["sections"] if s["id"] == "I.D")
    covid["indications"] = []
    off_label = next(s for s in policy["sections"] if s["id"] == "I.E")
    off_label["criteria"].append(
        {
            "id": "I.E.1",
            "text": "A baseline score.",
            "check": "score-documented",
            "params": {"kinds": ["cdai"]},
            "documentation": "A score.",
        }
    )
    (pack / "policy.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    messages = [f.message for f in lint.lint_pack(pack) if f.severity == "warning"]
    assert "section I.D names no indication: no order reaches it" in messages
    assert (
        "indication covid-19 has no initial section: initial orders for it go to I.E (off-label)"
        in messages
    )
    assert "I.E.1 in section I.E can only be met, unknown: it never changes the outcome" in messages


def test_lint_runs_the_pack_cases(pack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (pack / "cases").mkdir()
    (pack / "cases" / "good.yaml").write_text("expect: {}\n", encoding="utf-8")
    (pack / "cases" / "bad.yaml").write_text("expect: {}\n", encoding="utf-8")
    monkeypatch.setattr(lint, "CASE_RUNNER", (__name__, "fake_case_runner"))
    findings = [f for f in lint.lint_pack(pack) if f.file.startswith("cases/")]
    assert [f.line() for f in findings] == [
        "error: cases/bad.yaml: expect: I.A.1: expected met, got unknown"
    ]


def fake_case_runner(path: Path, policy: object) -> list[str]:
    return ["I.A.1: expected met, got unknown"] if path.stem == "bad" else []


def test_lint_refuses_a_folder_that_is_not_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "lint", str(tmp_path / "nope")]) == 1


# --------------------------------------------------------------------------- clauses


def test_clauses_of_an_outline() -> None:
    text = """Intro 1. not a clause
I. Initial Approval Criteria
A. Something (must meet all):
1. First;
2. One of (a or b):
 - a. this;
   wrapped line
 - b. that:
   - i. one;
   - ii. two;
II. Continued Therapy
A. All:
1. Current;
 - h. eighth;
 - i. ninth letter;
IV. Appendices
Appendix C: Contraindications
V. Dosage
1. Not a clause.
"""
    ids = [c.id for c in source_clauses(text)]
    assert ids == [
        "I.A",
        "I.A.1",
        "I.A.2",
        "I.A.2.a",
        "I.A.2.b",
        "I.A.2.b.i",
        "I.A.2.b.ii",
        "II.A",
        "II.A.1",
        "II.A.1.h",
        "II.A.1.i",
        "IV.C",
    ]


# --------------------------------------------------------------------------- show


def test_show_prints_every_criterion(pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = read_policy_file(pack / "policy.yaml")
    for fmt in ("text", "markdown"):
        code, out = run(["policy", "show", str(pack), "--format", fmt], capsys)
        assert code == 0
        for criterion in policy.all_criteria():
            assert re.search(rf"(^|\W){re.escape(criterion.id)}\W", out), (fmt, criterion.id)
        for section in policy.sections:
            assert section.title in out
        assert "approval 6 months" in out
        assert "approval 12 months" in out
        assert "II.A.1.b" in out  # a clause not decided from FHIR data, with its reason
    code, out = run(["policy", "show", str(pack)], capsys)
    assert "II.A.2 [rheumatoid-arthritis]  score-improved" in out
    assert "II.A.2 [nomid]  positive-response" in out


def test_show_names_the_problem_of_a_broken_policy(
    pack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_text(pack / "policy.yaml", "check: minimum-age", "check: minimum-ages")
    assert main(["policy", "show", str(pack)]) == 1
    assert "unknown check 'minimum-ages'" in capsys.readouterr().err


# --------------------------------------------------------------------------- checks


def test_checks_lists_every_kind_with_parameters_and_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = run(["policy", "checks"], capsys)
    assert code == 0
    for name, definition in CHECKS.items():
        assert f"\n{name}  (statuses: " in f"\n{out}"
        for param in definition.params:
            assert f"    {param}: " in out


def _doc_sections() -> dict[str, str]:
    """docs/policy-packs.md's catalogue: the text under each `#### `check`` heading."""
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"^#### `([a-z0-9-]+)`\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_every_check_is_documented_in_the_pack_guide() -> None:
    """The guide's catalogue is made with `cds-service policy checks --format markdown`:
    a check kind or parameter added without regenerating it fails here."""
    sections = _doc_sections()
    missing = sorted(set(CHECKS) - set(sections))
    regenerate = "run: cds-service policy checks --write-into docs/policy-packs.md"
    assert not missing, f"not in docs/policy-packs.md: {missing}; {regenerate}"
    for name, definition in CHECKS.items():
        for param in definition.params:
            assert f"`{param}`" in sections[name], f"{name}: {param} not documented; {regenerate}"
        for status in definition.statuses:
            assert str(status) in sections[name], f"{name}: {status} not documented; {regenerate}"


def test_checks_regenerates_the_guide_catalogue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    guide = tmp_path / "guide.md"
    guide.write_text(
        "# Guide\n<!-- checks:begin (generated) -->\nold text\n<!-- checks:end -->\nAfter.\n",
        encoding="utf-8",
    )
    assert main(["policy", "checks", "--write-into", str(guide)]) == 0
    text = guide.read_text(encoding="utf-8")
    assert "old text" not in text
    assert text.startswith("# Guide\n<!-- checks:begin (generated) -->\n#### `")
    assert text.endswith("\n<!-- checks:end -->\nAfter.\n")
    assert all(f"#### `{name}`" in text for name in CHECKS)
    guide.write_text("no markers\n", encoding="utf-8")
    assert main(["policy", "checks", "--write-into", str(guide)]) == 1
    assert "no <!-- checks:begin" in capsys.readouterr().err
