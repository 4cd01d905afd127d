"""Outside the policy packs and the tests, no Python file names a drug of a pack: every drug
word lives in the pack's data (drug.json, policy.yaml, cards.yaml). The names are read
from every pack's drug.json (ingredient and brand), matched as whole words, any case."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Final

from cds_service.policy.packs import PACKS_DIR

ROOT: Final = Path(__file__).resolve().parents[2]
SKIPPED_DIRS: Final = (ROOT / "cds_service" / "packs", ROOT / "tests")

PRODUCT_NAMES: Final = ("anakinra-cds",)
"""The product's own name (the first policy it served), not a drug policy: it stays in the
evaluation extension key `com.anakinra-cds.evaluation` and the override-reason code system
URL that deployed EHRs already read, and is blanked before matching."""


def drug_words() -> list[str]:
    words: set[str] = set()
    for drug_file in sorted(PACKS_DIR.glob("*/drug.json")):
        drug = json.loads(drug_file.read_text("utf-8"))
        words.update({drug["ingredient"]["name"], drug["brand"]})
    return sorted(words)


def _python_files() -> list[Path]:
    return sorted(
        path
        for path in ROOT.rglob("*.py")
        if not any(path.is_relative_to(skipped) for skipped in SKIPPED_DIRS)
        and not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
    )


def _hits(path: Path, pattern: re.Pattern[str]) -> list[str]:
    hits = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        for name in PRODUCT_NAMES:
            line = re.sub(re.escape(name), " ", line, flags=re.IGNORECASE)
        if pattern.search(line):
            hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return hits


def _pattern() -> re.Pattern[str]:
    words = drug_words()
    assert words, "no pack's drug.json was found"
    return re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)


def test_no_python_file_outside_packs_and_tests_names_a_drug() -> None:
    pattern = _pattern()
    hits = [hit for path in _python_files() for hit in _hits(path, pattern)]
    assert not hits, "drug names outside the policy packs:\n" + "\n".join(hits)


def test_the_grep_finds_a_drug_word() -> None:
    pattern = _pattern()
    word = drug_words()[0]
    assert pattern.search(f"x = '{word.upper()} 100 mg'")
    assert not pattern.search(f"x = '{word}x'")
