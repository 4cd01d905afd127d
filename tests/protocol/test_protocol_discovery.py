"""GET /cds-services and the service definitions behind it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from cds_service.hooks import CONTEXT_TOKENS, USER_TOKENS, template_tokens
from fhir_mappings.valuesets import valueset_kind, valueset_names
from tests.conftest import HOOKS_DIR, ROOT

SCHEMAS = HOOKS_DIR / "schemas"


def _schema(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))


def test_discovery_lists_both_services(client: FlaskClient) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert list(_schema("discovery").iter_errors(body)) == []
    by_id = {service["id"]: service for service in body["services"]}
    assert set(by_id) == {"anakinra-order-sign", "anakinra-order-select"}
    assert by_id["anakinra-order-sign"]["hook"] == "order-sign"
    assert by_id["anakinra-order-select"]["hook"] == "order-select"


def test_discovery_matches_the_files_without_private_keys(client: FlaskClient) -> None:
    published = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    for path in sorted((HOOKS_DIR / "services").glob("*.json")):
        definition = json.loads(path.read_text())
        entry = published[definition["id"]]
        assert "requiredPrefetch" not in entry
        assert entry["prefetch"] == definition["prefetch"]
        assert entry["description"] == definition["description"]


@pytest.mark.parametrize("path", sorted((HOOKS_DIR / "services").glob("*.json")), ids=str)
def test_prefetch_templates_use_only_cds_hooks_tokens(path: Path) -> None:
    definition = json.loads(path.read_text())
    allowed = {f"context.{name}" for name in CONTEXT_TOKENS[definition["hook"]]} | USER_TOKENS
    for template in definition["prefetch"].values():
        assert set(template_tokens(template)) <= allowed
    assert {"patient", "medicationRequests"} <= set(definition["requiredPrefetch"])
    assert set(definition["requiredPrefetch"]) <= set(definition["prefetch"])


def _observation_codes(definition: dict[str, Any]) -> set[str]:
    query = urlsplit(definition["prefetch"]["observations"]).query
    values = parse_qs(query)["code"][0].split(",")
    return {value.removeprefix("http://loinc.org|") for value in values}


@pytest.mark.parametrize("path", sorted((HOOKS_DIR / "services").glob("*.json")), ids=str)
def test_observation_query_asks_for_the_policy_codes(path: Path) -> None:
    codes = _observation_codes(json.loads(path.read_text()))
    # CDAI, RAPID3, body weight, RF, anti-CCP, CRP, ESR, alcohol, genetic variant.
    for code in ("88982-4", "90094-4", "29463-7", "11572-5", "32218-0", "1988-5", "4537-7"):
        assert code in codes
    assert "69548-6" in codes
    assert all(re.fullmatch(r"\d{1,6}-\d", code) for code in codes)


OBSERVATION_VALUESETS = tuple(
    sorted(name for name in valueset_names() if valueset_kind(name) == "observation")
)


def _loinc_codes(node: Any, system: str | None = None) -> set[str]:
    """LOINC codes anywhere in a value-set file (`{"system", "code"}` pairs or FHIR
    ValueSet `compose.include[].concept[]`)."""
    found: set[str] = set()
    if isinstance(node, dict):
        here = node.get("system", system)
        if here == "http://loinc.org" and isinstance(node.get("code"), str):
            found.add(node["code"])
        for value in node.values():
            found |= _loinc_codes(value, here)
    elif isinstance(node, list):
        for item in node:
            found |= _loinc_codes(item, system)
    return found


def test_observation_query_covers_the_observation_value_sets() -> None:
    """When the mapping layer's value sets exist, every LOINC code they list must be
    asked for, or the prefetch would miss data the policy reads."""
    folder = ROOT / "fhir_mappings" / "valuesets"
    files = [folder / f"{name}.json" for name in OBSERVATION_VALUESETS]
    assert "alcohol-drinks-per-day" in OBSERVATION_VALUESETS
    wanted: set[str] = set()
    for file in files:
        wanted |= _loinc_codes(json.loads(file.read_text()))
    definition = json.loads((HOOKS_DIR / "services" / "anakinra-order-sign.json").read_text())
    assert wanted - _observation_codes(definition) == set()


def test_text_only_observation_value_sets_are_reached_by_category() -> None:
    """Observation value sets with no code can only be found by text, so the service must
    also ask for assessment-type Observations, not only for coded ones."""
    folder = ROOT / "fhir_mappings" / "valuesets"
    text_only = [
        name
        for name in OBSERVATION_VALUESETS
        if (folder / f"{name}.json").is_file()
        and not _loinc_codes(json.loads((folder / f"{name}.json").read_text()))
    ]
    if not text_only:
        pytest.skip("every observation value set has codes")
    for path in sorted((HOOKS_DIR / "services").glob("*.json")):
        template = json.loads(path.read_text())["prefetch"]["assessments"]
        categories = parse_qs(urlsplit(template).query)["category"][0].split(",")
        assert {"survey", "exam", "social-history"} <= set(categories)
