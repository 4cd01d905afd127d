"""docs/real-world-data.md is exactly what `tests/realworld/make_doc.py` writes today: the
pharmacist's expectations as the data records them and the service's current answers."""

from __future__ import annotations

import difflib

from tests.realworld.make_doc import DOC_PATH, render


def test_the_real_world_data_page_is_current() -> None:
    assert DOC_PATH.exists(), f"{DOC_PATH} is missing: run python -m tests.realworld.make_doc"
    current = DOC_PATH.read_text("utf-8")
    wanted = render()
    diff = "\n".join(
        list(
            difflib.unified_diff(
                current.splitlines(), wanted.splitlines(), "on disk", "generated", lineterm=""
            )
        )[:40]
    )
    assert current == wanted, (
        f"{DOC_PATH.name} is stale: run .venv/bin/python -m tests.realworld.make_doc\n{diff}"
    )


def test_the_page_names_every_case_and_the_readme_points_to_it() -> None:
    from tests.realworld.cases import ALL_CASES
    from tests.realworld.charts import REPO_ROOT

    text = DOC_PATH.read_text("utf-8")
    for case in ALL_CASES:
        assert f"### {case.name}\n" in text, case.name
    assert "docs/real-world-data.md" in (REPO_ROOT / "README.md").read_text("utf-8")
