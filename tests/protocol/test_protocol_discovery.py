"""GET /cds-services and the service definitions behind it."""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from cds_service import pipeline
from cds_service.hooks import (
    CONTEXT_TOKENS,
    USER_TOKENS,
    fill_text,
    load_catalog,
    observation_needs,
    policy_names,
    policy_texts,
    prefetch_gaps,
    template_tokens,
)
from cds_service.policy.packs import PACKS_DIR, Registry, load_packs
from fhir_mappings.valuesets import valueset_kind, valueset_names
from tests.conftest import HOOKS_DIR, ROOT, load_example
from tests.policy.pack_builder import TEST_PACK_ID, TEST_POLICY, copy_packaged_packs, write_pack

SCHEMAS = HOOKS_DIR / "schemas"


def _schema(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))


SIGN = "prior-auth-order-sign"
SELECT = "prior-auth-order-select"
DISPATCH = "prior-auth-order-dispatch"
OLD_IDS = {"anakinra-order-sign": SIGN, "anakinra-order-select": SELECT}


def _published(app: Flask) -> dict[str, dict[str, Any]]:
    response = app.test_client().get("/cds-services")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert list(_schema("discovery").iter_errors(body)) == []
    return {service["id"]: service for service in body["services"]}


def test_discovery_lists_one_service_per_hook_with_drug_neutral_ids(app: Flask) -> None:
    by_id = _published(app)
    assert set(by_id) == {SIGN, SELECT, DISPATCH}
    assert by_id[SIGN]["hook"] == "order-sign"
    assert by_id[SELECT]["hook"] == "order-select"
    assert by_id[DISPATCH]["hook"] == "order-dispatch"
    # The old ids are still answered (below) but are not published: an EHR that reads
    # discovery sees one service per hook.
    assert not set(OLD_IDS) & set(by_id)


def _packs_named(service: dict[str, Any]) -> set[str]:
    text = " ".join(service[key] for key in ("title", "description", "usageRequirements"))
    assert "{" not in text, "a placeholder was left unfilled"
    return {pack_id for pack_id in _ALL_PACK_IDS if pack_id in text}


_ALL_PACK_IDS = ("NH.PHAR.244", "IL1.RIL.01", TEST_PACK_ID)


def _assert_names_exactly(app: Flask, registry: Registry) -> None:
    for service in _published(app).values():
        assert _packs_named(service) == set(registry.packs)
        for pack in registry.packs.values():
            assert f"{pack.id} {pack.title}" in service["description"]
            assert pack.title in service["title"]
            assert pack.title in service["usageRequirements"]


def test_discovery_names_the_policies_of_the_packaged_packs(app: Flask) -> None:
    """With or without IL1.RIL.01 packaged: discovery names exactly the packs loaded."""
    _assert_names_exactly(app, load_packs(PACKS_DIR))


def test_discovery_names_every_pack_of_the_packs_folder(
    tmp_path: Path, make_app: Callable[..., Flask]
) -> None:
    root = copy_packaged_packs(tmp_path / "packs")
    write_pack(root)
    app = make_app(CDS_POLICY_PACKS_DIR=str(root))
    registry = load_packs(root)
    assert TEST_PACK_ID in registry.packs
    _assert_names_exactly(app, registry)
    assert set(_published(app)) == {SIGN, SELECT, DISPATCH}  # still one service per hook


def test_discovery_without_a_pack_does_not_name_it(
    tmp_path: Path, make_app: Callable[..., Flask]
) -> None:
    root = tmp_path / "packs"
    root.mkdir()
    shutil.copytree(PACKS_DIR / "NH.PHAR.244", root / "NH.PHAR.244")
    app = make_app(CDS_POLICY_PACKS_DIR=str(root))
    for service in _published(app).values():
        assert _packs_named(service) == {"NH.PHAR.244"}
        assert "Anakinra (Kineret)" in service["title"]


def test_discovery_matches_the_files_without_private_keys(app: Flask) -> None:
    published = _published(app)
    values = policy_texts(policy_names(load_packs(PACKS_DIR)))
    for path in sorted((HOOKS_DIR / "services").glob("*.json")):
        definition = json.loads(path.read_text())
        entry = published[definition["id"]]
        assert "requiredPrefetch" not in entry
        assert "aliases" not in entry
        assert entry["prefetch"] == definition["prefetch"]
        assert entry["description"] == fill_text(definition["description"], values)
        assert entry["title"] == fill_text(definition["title"], values)


def test_service_files_name_no_drug() -> None:
    """The texts come from the packs: a service file written for one drug would describe
    the other packs' orders wrongly. (Aliases keep older ids and may name anything.)"""
    names = {
        word.lower() for pack in load_packs(PACKS_DIR).packs.values() for word in pack.drug.names
    }
    for path in sorted((HOOKS_DIR / "services").glob("*.json")):
        definition = json.loads(path.read_text())
        definition.pop("aliases", None)
        text = json.dumps(definition).lower()
        assert not {name for name in names if name in text}, path.name


# --- older ids ------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), sorted(OLD_IDS.items()))
def test_old_ids_are_answered_as_the_new_ones(
    make_app: Callable[..., Flask], old: str, new: str
) -> None:
    """EHRs configured with the ids of the first release keep working: same answer,
    byte for byte, as the published id (each app with its own pinned ids)."""
    body = load_example("order-sign-prefetch.json" if new == SIGN else "order-select.json")
    answers = []
    for service_id in (new, old):
        response = make_app().test_client().post(f"/cds-services/{service_id}", json=body)
        assert response.status_code == 200
        answers.append(response.get_data())
    assert answers[0] == answers[1]
    if new == SIGN:
        # Criteria met: the coverage-information system action, no card repeating it.
        assert json.loads(answers[0])["systemActions"], "the example order gets an answer"


def test_an_old_id_keeps_its_hook_and_its_feedback(client: FlaskClient) -> None:
    wrong = client.post("/cds-services/anakinra-order-sign", json=load_example("order-select.json"))
    assert wrong.status_code == 400
    assert wrong.get_json()["error"] == "wrong-hook"
    assert "anakinra-order-sign" in wrong.get_json()["message"]
    feedback = client.post("/cds-services/anakinra-order-sign/feedback", json={"feedback": []})
    assert feedback.status_code != 404
    assert client.post("/cds-services/anakinra-order-other", json={}).status_code == 404


def test_the_audit_keeps_the_id_the_ehr_called(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feedback sent to the old id's URL then finds its cards, and the audit shows which
    EHRs still call an old id."""
    seen: list[str] = []

    def record(call: pipeline.CallContext, resources: Any, engine: Any = None) -> dict[str, Any]:
        seen.append(call.service_id)
        return {"cards": []}

    monkeypatch.setattr(pipeline, "run", record)
    for service_id in ("anakinra-order-sign", SIGN):
        client.post(f"/cds-services/{service_id}", json=load_example("order-sign-prefetch.json"))
    assert seen == ["anakinra-order-sign", SIGN]


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
    """The policy-neutral record reads every observation value set of the shared
    terminology for every pack (body weight for mg/kg doses, the labs behind checks whose
    parameters name no value set), so every LOINC code they list must be asked for, or the
    prefetch would miss data the policies read."""
    folder = ROOT / "fhir_mappings" / "valuesets"
    files = [folder / f"{name}.json" for name in OBSERVATION_VALUESETS]
    assert "alcohol-drinks-per-day" in OBSERVATION_VALUESETS
    wanted: set[str] = set()
    for file in files:
        wanted |= _loinc_codes(json.loads(file.read_text()))
    for path in sorted((HOOKS_DIR / "services").glob("*.json")):
        assert wanted - _observation_codes(json.loads(path.read_text())) == set(), path.name


# --- prefetch coverage per pack ---------------------------------------------------------

_SAA_CRITERION = """      - id: I.A.2
        text: Serum amyloid A above normal.
        check: any-of
        params:
          checks:
            - check: lab-threshold
              params: {kinds: [saa], direction: above, thresholds: {saa: {value: 10, unit: mg/L}}}
        documentation: Serum amyloid A result.
"""
_AFTER = "        documentation: Date of birth.\n"


def _pack_reading_saa(root: Path) -> Registry:
    """The packaged packs plus a test pack whose policy names `saa` only inside an any-of."""
    copy_packaged_packs(root)
    write_pack(root, policy=TEST_POLICY.replace(_AFTER, _AFTER + _SAA_CRITERION, 1))
    return load_packs(root)


def _without_code(hooks: Path, code: str) -> None:
    for path in (hooks / "services").glob("*.json"):
        data = json.loads(path.read_text())
        query = data["prefetch"]["observations"]
        data["prefetch"]["observations"] = query.replace(f",http://loinc.org|{code}", "")
        assert data["prefetch"]["observations"] != query
        path.write_text(json.dumps(data))


@pytest.mark.parametrize("service_id", ["prior-auth-order-sign", "prior-auth-order-select"])
def test_prefetch_asks_for_what_every_packaged_pack_reads(service_id: str) -> None:
    """Every LOINC code of an observation value set a loaded pack's policy names (nested
    any-of / all-of included) is asked for; a value set with no code is reached by the
    category query."""
    registry = load_packs(PACKS_DIR)
    needs = observation_needs(registry)
    assert {need.pack for need in needs} >= {"NH.PHAR.244"}
    assert ("NH.PHAR.244", "cdai") in {(need.pack, need.valueset) for need in needs}
    service = load_catalog(HOOKS_DIR).services[service_id]
    assert prefetch_gaps(service, needs) == []


def test_a_pack_whose_codes_the_prefetch_misses_is_named_at_start(
    tmp_path: Path, make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    """An operator's hooks folder written before a pack was added: the service starts (the
    data it misses makes those criteria unknown, never met) and says what to add."""
    root = tmp_path / "packs"
    root.mkdir()
    registry = _pack_reading_saa(root)
    needs = observation_needs(registry)
    assert (TEST_PACK_ID, "saa", frozenset({"48498-0"})) in {
        (n.pack, n.valueset, n.codes) for n in needs
    }
    shipped = load_catalog(HOOKS_DIR).services[SIGN]
    assert prefetch_gaps(shipped, needs) == []

    hooks = tmp_path / "hooks"
    shutil.copytree(HOOKS_DIR, hooks)
    _without_code(hooks, "48498-0")
    gaps = prefetch_gaps(load_catalog(hooks).services[SIGN], needs)
    # Every pack that reads the value set is named (the packaged packs may read it too).
    readers = sorted({n.pack for n in needs if n.valueset == "saa"})
    assert TEST_PACK_ID in readers
    assert gaps == [
        f"{SIGN}: pack {pack} reads value set saa, but no Observation prefetch asks "
        "for LOINC 48498-0"
        for pack in readers
    ]
    with caplog.at_level(logging.WARNING, logger="cds_service.hooks"):
        app = make_app(CDS_HOOKS_DIR=str(hooks), CDS_POLICY_PACKS_DIR=str(root))
    warned = [r for r in caplog.records if getattr(r, "event", None) == "prefetch-gap"]
    assert sorted(r.getMessage() for r in warned) == sorted(
        [
            *gaps,
            *(gap.replace(SIGN, SELECT) for gap in gaps),
            *(gap.replace(SIGN, DISPATCH) for gap in gaps),
        ]
    )
    assert app.test_client().get("/cds-services").status_code == 200


def test_a_value_set_matched_by_name_needs_the_category_query(tmp_path: Path) -> None:
    needs = observation_needs(load_packs(PACKS_DIR))
    assert any(not need.codes for need in needs), "a text-only value set is named"
    hooks = tmp_path / "hooks"
    shutil.copytree(HOOKS_DIR, hooks)
    path = hooks / "services" / f"{SIGN}.json"
    data = json.loads(path.read_text())
    del data["prefetch"]["assessments"]
    path.write_text(json.dumps(data))
    gaps = prefetch_gaps(load_catalog(hooks).services[SIGN], needs)
    assert gaps
    assert all("asks by category" in gap for gap in gaps)


@pytest.mark.parametrize("path", sorted((HOOKS_DIR / "services").glob("*.json")), ids=str)
def test_conditions_are_asked_for_whatever_their_status(path: Path) -> None:
    """Resolved Conditions are history the policies read: recurrent episodes (a resolved
    pericarditis is a past episode), the symptom-free interval between them, prior
    diagnoses. A `clinical-status=active` filter would make every past episode invisible
    and the episode count wrong, so the query has no status filter; the mapping reads the
    status of each Condition itself (active-only facts stay active-only)."""
    template = json.loads(path.read_text())["prefetch"]["conditions"]
    resource_type, _, query = template.partition("?")
    assert resource_type == "Condition"
    assert set(parse_qs(query)) == {"patient"}


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
