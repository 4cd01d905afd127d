"""Whole response bodies per card kind, compared with reviewed golden files.

Set UPDATE_GOLDEN=1 to rewrite the files (then review the diff)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cds_service.cards import Evaluation, render_response
from cds_service.cards.serialize import evaluation_to_json
from tests.cards.builders import NOW, SETTINGS, coverage_call, uuid_counter
from tests.cards.cases import CASES

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"


def _pair(name: str) -> dict[str, Any]:
    hook, evaluations = CASES[name]()
    request = {
        "hook": hook,
        "orders": [
            {
                "draft": dict(item.facts.order.resource),
                "coverage": list(item.facts.coverage_refs),
                "decision": evaluation_to_json(item.decision),
            }
            if isinstance(item, Evaluation)
            else {"notEvaluated": item.order_ref, "reason": item.reason}
            for item in evaluations
        ],
    }
    response = render_response(
        hook,
        evaluations,
        settings=SETTINGS,
        uuid_factory=uuid_counter(),
        now=NOW,
        coverage=coverage_call(),
    )
    return {"request": request, "response": response}


@pytest.mark.parametrize("name", sorted(CASES))
def test_response_matches_golden(name: str) -> None:
    pair = json.loads(json.dumps(_pair(name)))
    path = GOLDEN / f"cards_{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(pair, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert pair == expected
