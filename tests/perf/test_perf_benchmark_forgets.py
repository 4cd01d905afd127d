"""The benchmark's new-patient and first-sight figures mean what docs/performance.md says:
`forget_memos` empties every memo the service keeps of chart content (any memo added later
and left out of it would make the first-sight figure look cheaper than a new worker's first
call), and `forget_bodies` empties those kept per resource body and per patient while those
kept per code, name and shape stay."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sized
from typing import Any

import pytest
from flask.testing import FlaskClient

from benchmarks.inprocess import SERVICE_PATH, forget_bodies, forget_memos, service_app
from benchmarks.workload import order_sign_request
from cds_service import body_parts
from fhir_mappings import (
    conditions,
    fast_validation,
    fields,
    medications,
    observations,
    r4,
    record,
)
from fhir_mappings.content_memo import ContentMemo, WeightedMemo

_MEMO_TYPES = (ContentMemo, WeightedMemo, r4._SeenValid, fast_validation._Shapes)


def _memos() -> Iterator[tuple[str, Any]]:
    """Every memo object at module level in the service's packages, and every lru_cache of
    the mapping package (all of which hold chart content)."""
    for name, module in sorted(sys.modules.items()):
        if not name.startswith(("cds_service", "fhir_mappings")) or module is None:
            continue
        for attr, value in vars(module).items():
            cached = name.startswith("fhir_mappings") and hasattr(value, "cache_info")
            if isinstance(value, _MEMO_TYPES) or cached:
                yield f"{name}.{attr}", value


def _size(memo: Any) -> int:
    return memo.cache_info().currsize if hasattr(memo, "cache_info") else len(memo)


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    return service_app("sqlite://").test_client()


def _call(client: FlaskClient) -> None:
    body = json.dumps(order_sign_request(60)).encode()
    answer = client.post(SERVICE_PATH, data=body, content_type="application/json")
    assert answer.status_code == 200


def test_first_sight_forgets_every_memo_of_chart_content(client: FlaskClient) -> None:
    _call(client)
    filled = [name for name, memo in _memos() if _size(memo)]
    assert "fhir_mappings.r4._CHARTS" in filled  # the call did fill the memos
    assert "fhir_mappings.record._RECORDS" in filled
    forget_memos()
    assert [name for name, memo in _memos() if _size(memo)] == []
    assert not any(c is not None and c._accepted for c in fast_validation._CHECKERS.values())


def test_a_new_patient_forgets_the_bodies_and_keeps_codes_names_and_shapes(
    client: FlaskClient,
) -> None:
    _call(client)
    forget_bodies()
    per_body: list[Sized] = [
        body_parts._SENT_BEFORE,
        record._RECORDS,
        r4._VALID,
        r4._AS_SENT,
        r4._CHARTS,
        observations._READINGS,
        medications._RECORDS,
        conditions._FINDINGS,
    ]
    assert [len(m) for m in per_body] == [0] * len(per_body)
    assert fields._reference_text.cache_info().currsize == 0
    assert len(observations._KINDS) > 0
    assert len(medications._IDENTIFIED) > 0
    assert len(fast_validation._SHAPES) > 0
