"""Whatever the body, the service answers with JSON and never with a 5xx."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service import create_app
from tests.conftest import base_config, load_example

APP = create_app(base_config())
SIGN = "/cds-services/prior-auth-order-sign"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


def _post(body: Any) -> Any:
    return APP.test_client().post(SIGN, data=json.dumps(body), content_type="application/json")


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_random_json_is_never_a_server_error(body: Any) -> None:
    response = _post(body)
    assert response.status_code < 500
    assert response.mimetype == "application/json"


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["context", "prefetch"]),
    st.sampled_from(["patientId", "userId", "draftOrders", "encounterId", "patient", "conditions"]),
    json_values,
)
def test_a_valid_request_with_one_field_replaced_is_never_a_server_error(
    section: str, key: str, value: Any
) -> None:
    body = load_example("order-sign-prefetch.json")
    body[section][key] = value
    response = _post(body)
    assert response.status_code < 500
    assert response.status_code in (200, 400, 412)
