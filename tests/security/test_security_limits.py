"""Limits on what one request may cost: body size, nesting depth, number of draft orders.

(Pages followed, FHIR queries and the per-call deadline are exercised against a FHIR server
in tests/protocol/test_protocol_prefetch.py and tests/security/test_security_failures.py.)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from cds_service.api import json_nesting_exceeds
from tests.conftest import load_example

SIGN = "/cds-services/anakinra-order-sign"
FEEDBACK = "/cds-services/anakinra-order-sign/feedback"


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth - 1):
        value = [value]
    return value


def test_nesting_past_the_limit_is_400_on_service_and_feedback(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(CDS_MAX_JSON_DEPTH=20).test_client()
    body = load_example("order-sign-prefetch.json")
    body["extension"] = _nested(25)
    for path, payload in ((SIGN, body), (FEEDBACK, {"feedback": _nested(25)})):
        response = client.post(path, json=payload)
        assert response.status_code == 400, path
        assert response.get_json()["error"] == "too-deep"
    # Within the limit the request goes on to the schema and the pipeline.
    body["extension"] = {"x": _nested(5)}
    assert client.post(SIGN, json=body).status_code == 200


def test_pathological_nesting_is_400_not_a_crash(make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()
    data = "[" * 200_000 + "]" * 200_000
    for path in (SIGN, FEEDBACK):
        response = client.post(path, data=data, content_type="application/json")
        assert response.status_code == 400
        assert response.get_json()["error"] == "too-deep"


def test_body_too_large_is_413_on_feedback_too(make_app: Callable[..., Flask]) -> None:
    client = make_app(CDS_MAX_BODY_BYTES=1000).test_client()
    feedback = {
        "feedback": [
            {"card": f"c-{i}", "outcome": "overridden", "outcomeTimestamp": "2026-11-29T15:00:00Z"}
            for i in range(40)
        ]
    }
    assert len(json.dumps(feedback)) > 1000
    response = client.post(FEEDBACK, json=feedback)
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload-too-large"


def _with_orders(count: int) -> dict[str, Any]:
    body = load_example("order-sign-prefetch.json")
    entry = body["context"]["draftOrders"]["entry"][0]
    entries = []
    for index in range(count):
        copied = copy.deepcopy(entry)
        copied["resource"]["id"] = f"draft-{index}"
        entries.append(copied)
    body["context"]["draftOrders"]["entry"] = entries
    return body


def test_too_many_draft_orders_is_400(make_app: Callable[..., Flask]) -> None:
    client = make_app(CDS_MAX_DRAFT_ORDERS=3).test_client()
    response = client.post(SIGN, json=_with_orders(4))
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "too-many-draft-orders"
    assert body["details"] == [{"pointer": "/context/draftOrders/entry", "message": "at most 3"}]
    answer = client.post(SIGN, json=_with_orders(3))
    assert answer.status_code == 200
    assert (
        len(
            {
                c["extension"]["davinci-crd.associated-resource"][0]["reference"]
                for c in answer.get_json()["cards"]
            }
        )
        == 3
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("CDS_MAX_JSON_DEPTH", "0"), ("CDS_MAX_DRAFT_ORDERS", "0"), ("CDS_AUTH_CLOCK_SKEW", "-1")],
)
def test_limit_settings_are_checked(make_app: Callable[..., Flask], name: str, value: str) -> None:
    from cds_service.config import SettingsError

    with pytest.raises(SettingsError, match=name):
        make_app(**{name: value})


# --- the nesting check reads the JSON text, not the parsed value ---------------------


def _depth(value: Any) -> int:
    """Reference: how deep arrays / objects nest in a parsed value (`{}` is 1)."""
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


# Strings full of what the text scan must not mistake for structure.
_TRICKY = st.text(alphabet='[]{}"\\/ab\n\u00e9\u20ac\U0001f600', max_size=8)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TRICKY, inner, max_size=4),
    max_leaves=40,
)


@given(
    value=_JSON,
    limit=st.integers(1, 12),
    ascii_only=st.booleans(),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32-be"]),
)
def test_nesting_check_agrees_with_the_parsed_value(
    value: Any, limit: int, ascii_only: bool, encoding: str
) -> None:
    data = json.dumps(value, ensure_ascii=ascii_only).encode(encoding)
    assert json.loads(data) == value
    assert json_nesting_exceeds(data, limit) == (_depth(value) > limit)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ('"[[[["', 0),
        ('["\\\\", ["\\"[[["]]', 2),
        ('{"a\\\\\\"[": {"b": [{}]}}', 4),
        ('[[], [[]], {"k": "]]]]"}]', 3),
        ('["\\u005b\\u005b", [[]]]', 3),
    ],
)
def test_nesting_check_on_strings_that_look_like_structure(text: str, depth: int) -> None:
    assert _depth(json.loads(text)) == depth
    assert not json_nesting_exceeds(text.encode(), depth)
    assert json_nesting_exceeds(text.encode(), depth - 1) == (depth > 0)
