"""Requests whose prefetch values are all null or FHIR resources are checked without the
schema's per-value rule (a loop checks it instead): the answer to any request, valid or
not, is the same as the whole schema's."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service import api
from cds_service.errors import ApiError
from cds_service.hooks import load_catalog
from tests.conftest import load_example

CATALOG = load_catalog(Path(__file__).resolve().parents[2] / "hooks")

VALUES = st.one_of(
    st.none(),
    st.sampled_from(["Patient", "Bundle", "patient", "Pa tient", "Patient\n", "", "Ä", "P"]).map(
        lambda kind: {"resourceType": kind}
    ),
    st.integers().map(lambda n: {"resourceType": n}),
    st.just({}),
    st.just([]),
    st.text(max_size=3),
    st.just({"resourceType": "Bundle", "entry": "not a list"}),
)


def _answer(body: Any, *, whole_schema: bool) -> list[dict[str, str]]:
    if whole_schema:
        return api.validation_details(CATALOG.validators["request"], body)
    try:
        api.validate_request(CATALOG, body)
    except ApiError as error:
        return list(error.details or [])
    return []


def _request(prefetch: Any) -> dict[str, Any]:
    body = load_example("order-sign-prefetch.json")
    body["prefetch"] = prefetch
    return body


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["patient", "conditions", "x"]), VALUES, max_size=3))
def test_any_prefetch_is_judged_as_the_whole_schema_judges_it(prefetch: dict[str, Any]) -> None:
    body = _request(prefetch)
    assert _answer(body, whole_schema=False) == _answer(copy.deepcopy(body), whole_schema=True)


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.pop("hook"),
        lambda b: b["context"].pop("patientId"),
        lambda b: b.update(fhirAuthorization={"access_token": "t", "token_type": "Bearer"}),
        lambda b: b.update(prefetch="none"),
    ],
)
def test_other_mistakes_are_reported_as_before(change: Any) -> None:
    body = _request({"patient": {"resourceType": "Patient", "id": "p"}})
    change(body)
    expected = _answer(copy.deepcopy(body), whole_schema=True)
    assert expected
    assert _answer(body, whole_schema=False) == expected


def test_no_prefetch_at_all_is_accepted_both_ways() -> None:
    body = _request(None)
    assert (
        _answer(body, whole_schema=False) == _answer(copy.deepcopy(body), whole_schema=True) == []
    )
