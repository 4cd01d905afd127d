"""Random and malformed requests at every endpoint of hooks/openapi.yaml.

Whatever arrives, the answer is never a 5xx, always JSON, has a status the document lists for
that operation, and matches the schema the document gives for it. Runs are derandomized so CI
sees the same few hundred examples every time.
"""

from __future__ import annotations

import base64
import copy
import json
import string
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from cds_service import create_app
from tests.auth.conftest import jwks, make_signer
from tests.conftest import HOOKS_DIR, base_config, load_example

OPENAPI = HOOKS_DIR / "openapi.yaml"
APP = create_app(base_config(CDS_MAX_BODY_BYTES=64 * 1024, CDS_MAX_JSON_DEPTH=12))
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@cache
def document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    return doc


def _inline_files(node: Any) -> Any:
    """The document with every `./schemas/...` reference replaced by the file's schema."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return json.loads((OPENAPI.parent / ref).read_text(encoding="utf-8"))
        return {key: _inline_files(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline_files(item) for item in node]
    return node


def _resolve(obj: dict[str, Any]) -> dict[str, Any]:
    ref = obj.get("$ref")
    if not isinstance(ref, str):
        return obj
    node: Any = document()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    assert isinstance(node, dict)
    return node


@cache
def operations() -> list[tuple[str, str]]:
    return [
        (path, method)
        for path, item in document()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "delete", "patch")
    ]


def needs_credentials(path: str, method: str) -> bool:
    """False for the operations the document opens to anyone (`security: []`: health)."""
    return bool(document()["paths"][path][method].get("security") != [])


def response_validator(path: str, method: str, status: int) -> Draft202012Validator:
    responses = document()["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered undocumented {status}"
    response = _resolve(responses[str(status)])
    schema = response["content"]["application/json"]["schema"]
    components = _inline_files(document()["components"])
    return Draft202012Validator({"components": components, **_inline_files(schema)})


def url_for(path: str, service_id: str) -> str:
    return path.replace("{service_id}", service_id)


def check(path: str, method: str, response: Any) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:200]
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data())
    errors = list(response_validator(path, method, response.status_code).iter_errors(body))
    assert errors == [], [e.message for e in errors[:3]]


# --- the document itself ------------------------------------------------------------


def test_document_lists_exactly_the_app_routes() -> None:
    documented = {(p.replace("{service_id}", "<service_id>"), m.upper()) for p, m in operations()}
    served = {
        (rule.rule, method)
        for rule in APP.url_map.iter_rules()
        if rule.rule.startswith(("/cds-services", "/health"))
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert documented == served
    assert document()["openapi"].startswith("3.1")


def test_every_file_reference_resolves_to_a_hook_schema() -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str) and not node["$ref"].startswith("#"):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document())
    assert sorted({Path(r).name for r in refs}) == [
        "discovery.schema.json",
        "feedback.schema.json",
        "request.schema.json",
        "response.schema.json",
    ]
    for ref in refs:
        Draft202012Validator.check_schema(json.loads((OPENAPI.parent / ref).read_text()))


def test_examples_and_their_answers_match_the_document() -> None:
    client = APP.test_client()
    request_schema = _inline_files(
        document()["paths"]["/cds-services/{service_id}"]["post"]["requestBody"]
    )["content"]["application/json"]["schema"]
    body = load_example("order-sign-prefetch.json")
    assert list(Draft202012Validator(request_schema).iter_errors(body)) == []
    check(
        "/cds-services/{service_id}",
        "post",
        client.post("/cds-services/anakinra-order-sign", json=body),
    )
    check("/cds-services", "get", client.get("/cds-services"))


# --- fuzz ---------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=25,
)
service_ids = st.sampled_from(["anakinra-order-sign", "anakinra-order-select"]) | st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=20
)
FIELDS = [
    ("hook",),
    ("hookInstance",),
    ("fhirServer",),
    ("fhirAuthorization",),
    ("context",),
    ("context", "patientId"),
    ("context", "userId"),
    ("context", "draftOrders"),
    ("context", "draftOrders", "entry"),
    ("context", "selections"),
    ("prefetch",),
    ("prefetch", "patient"),
    ("prefetch", "medicationRequests"),
    ("prefetch", "conditions"),
    ("feedback",),
]


def _mutate(body: dict[str, Any], where: tuple[str, ...], value: Any, delete: bool) -> Any:
    node: Any = body
    for part in where[:-1]:
        if not isinstance(node, dict) or part not in node:
            return body
        node = node[part]
    if isinstance(node, dict):
        if delete:
            node.pop(where[-1], None)
        else:
            node[where[-1]] = value
    return body


VALID = {
    "order-sign": load_example("order-sign-prefetch.json"),
    "order-select": load_example("order-select.json"),
    "feedback": {
        "feedback": [
            {
                "card": "00000000-0000-4000-8000-000000000001",
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-29T15:00:00Z",
            }
        ]
    },
}


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "random-json", "bytes", "deep", "text"]))
    if kind == "mutated":
        base = copy.deepcopy(VALID[draw(st.sampled_from(sorted(VALID)))])
        for _ in range(draw(st.integers(1, 3))):
            base = _mutate(
                base, draw(st.sampled_from(FIELDS)), draw(json_values), draw(st.booleans())
            )
        return json.dumps(base).encode()
    if kind == "random-json":
        return json.dumps(draw(json_values)).encode()
    if kind == "deep":
        depth = draw(st.integers(5, 3000))
        return ("[" * depth + "]" * depth).encode()
    if kind == "text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    return draw(st.binary(max_size=300))


@FUZZ
@given(
    operation=st.sampled_from(operations()),
    service_id=service_ids,
    body=bodies(),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/fhir+json",
            "text/plain",
            "",
            "application/json; charset=latin-1",
        ]
    ),
)
def test_random_requests_never_fail_the_server(
    operation: tuple[str, str], service_id: str, body: bytes, content_type: str
) -> None:
    path, method = operation
    client = APP.test_client()
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.open(
        url_for(path, service_id), method=method.upper(), data=body, headers=headers
    )
    check(path, method, response)


@FUZZ
@given(operation=st.sampled_from(operations()), method=st.sampled_from(["PUT", "DELETE", "PATCH"]))
def test_other_methods_are_a_json_405(operation: tuple[str, str], method: str) -> None:
    path, documented = operation
    response = APP.test_client().open(url_for(path, "anakinra-order-sign"), method=method)
    assert response.status_code == 405
    check(path, documented, response)


@pytest.fixture(scope="module")
def auth_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    folder = tmp_path_factory.mktemp("fuzz-auth")
    signer = make_signer("ES384", "fuzz-key")
    (folder / "keys.json").write_text(json.dumps(jwks(signer)))
    issuers = {
        "issuers": [
            {
                "iss": "https://ehr.example.org",
                "jwks_file": "keys.json",
                "fhir_servers": ["https://ehr.example.org/fhir"],
            }
        ]
    }
    (folder / "issuers.json").write_text(json.dumps(issuers))
    return create_app(
        base_config(
            CDS_AUTH="enabled",
            CDS_TRUSTED_ISSUERS=str(folder / "issuers.json"),
            CDS_PUBLIC_BASE_URL="http://localhost",
        )
    )


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, default=str).encode()).decode().rstrip("=")


segments = st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=40)
authorization_headers = st.builds(
    lambda scheme, token: f"{scheme} {token}".strip(),
    st.sampled_from(["Bearer", "bearer", "Basic", ""]),
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", segments, segments, segments)
    | st.builds(
        lambda header, claims, signature: f"{_b64(header)}.{_b64(claims)}.{signature}",
        st.fixed_dictionaries(
            {"alg": st.sampled_from(["none", "HS256", "ES384", "RS384", "ES256"]) | json_values},
            optional={"kid": json_values | st.just("fuzz-key"), "jku": json_values},
        ),
        st.dictionaries(
            st.sampled_from(["iss", "aud", "exp", "iat", "jti", "tenant"]),
            json_values | st.just("https://ehr.example.org"),
        ),
        segments,
    )
    # A header value cannot carry CR, LF or NUL on the wire (the test client refuses to send
    # them), so random text leaves them out.
    | st.text(st.characters(blacklist_characters="\r\n\x00"), max_size=60),
)


@FUZZ
@given(
    operation=st.sampled_from([op for op in operations() if needs_credentials(*op)]),
    authorization=authorization_headers,
)
def test_random_credentials_are_always_the_bare_401(
    auth_app: Flask, operation: tuple[str, str], authorization: str
) -> None:
    path, method = operation
    with responses.RequestsMock() as outbound:
        response = auth_app.test_client().open(
            url_for(path, "anakinra-order-sign"),
            method=method.upper(),
            json=VALID["order-sign" if "feedback" not in path else "feedback"],
            headers={"Authorization": authorization},
        )
        assert len(outbound.calls) == 0
    assert response.status_code == 401
    check(path, method, response)
