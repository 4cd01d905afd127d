"""The documentation template of each policy pack: one generator, pack data in, a FHIR R4
Questionnaire out (checked with fhir.resources, whose R4B models are the nearest to R4)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.valueset import ValueSet
from flask.testing import FlaskClient

from cds_service.dtr import valuesets as vs
from cds_service.dtr.questionnaire import CHART_FINDING, NOT_DOCUMENTABLE, all_link_ids, generate
from cds_service.dtr.urls import questionnaire_url
from cds_service.policy.packs import Pack, default_registry

BASE = "https://cds.example.org"
PACKS = sorted(default_registry().packs.values(), key=lambda p: p.id)


def _walk(items: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for item in items:
        yield item
        yield from _walk(item.get("item", []))


@pytest.fixture(params=PACKS, ids=lambda p: p.id)
def pack(request: pytest.FixtureRequest) -> Pack:
    found: Pack = request.param
    return found


def test_both_packs_are_served() -> None:
    assert {p.id for p in PACKS} >= {"NH.PHAR.244", "IL1.RIL.01"}


def test_questionnaire_is_valid_r4_and_versioned_with_the_pack(pack: Pack) -> None:
    q = generate(pack, BASE).questionnaire
    Questionnaire.model_validate(q)
    assert q["id"] == pack.id
    assert q["url"] == questionnaire_url(BASE, pack.id)
    assert q["version"] == pack.version
    links = all_link_ids(q["item"])
    assert len(links) == len(set(links)), "linkIds must be unique"


def test_every_enable_when_points_to_an_earlier_choice_with_that_answer(pack: Pack) -> None:
    q = generate(pack, BASE).questionnaire
    items = list(_walk(q["item"]))
    order = [str(i["linkId"]) for i in items]
    by_link = {str(i["linkId"]): i for i in items}
    conditions = 0
    for item in items:
        for cond in item.get("enableWhen", []):
            conditions += 1
            question = by_link.get(cond["question"])
            assert question is not None, f"{item['linkId']}: no item {cond['question']}"
            assert order.index(cond["question"]) < order.index(str(item["linkId"]))
            offered = [o["valueCoding"] for o in question["answerOption"]]
            wanted = cond["answerCoding"]
            assert any(
                (o["system"], o["code"]) == (wanted["system"], wanted["code"]) for o in offered
            ), f"{item['linkId']}: {wanted} is not an answer of {cond['question']}"
    assert conditions > 0


def test_first_question_chooses_among_the_packs_indications(pack: Pack) -> None:
    q = generate(pack, BASE).questionnaire
    first = q["item"][0]
    assert first["linkId"] == "indication"
    codes = {o["valueCoding"]["code"] for o in first["answerOption"]}
    assert codes == {i.name for i in pack.policy.indications} | {"other"}


def test_every_criterion_that_can_be_unknown_has_a_group_with_its_words(pack: Pack) -> None:
    q = generate(pack, BASE).questionnaire
    by_link = {str(i["linkId"]): i for i in _walk(q["item"])}
    policy = pack.policy
    criteria = [c for s in policy.sections for c in s.criteria] + list(policy.common_criteria)
    for criterion in criteria:
        checks = [v.check for v in criterion.by_indication.values()] or [criterion.check]
        if all(c in NOT_DOCUMENTABLE for c in checks):
            assert f"{criterion.id}/{CHART_FINDING}" not in by_link  # nothing to document
            continue
        group = by_link[criterion.id]
        assert group["type"] == "group"
        assert f"{criterion.id}/{CHART_FINDING}" in by_link
        about = by_link[f"{criterion.id}/about"]
        assert about["text"] == criterion.documentation  # the pack's own words
        label = pack.card_texts.label(criterion.id, "")
        assert label
        assert label[1:] in group["text"]


def test_answer_lists_come_from_the_shared_value_sets(pack: Pack) -> None:
    generated = generate(pack, BASE)
    urls = {vs.valueset_url(BASE, names) for names in generated.valuesets}
    named = {
        i["answerValueSet"] for i in _walk(generated.questionnaire["item"]) if "answerValueSet" in i
    }
    assert named == urls
    for names in generated.valuesets:
        resource = vs.valueset_resource(BASE, names, pack.version, "2025-01-01")
        ValueSet.model_validate(resource)
        assert resource["expansion"]["contains"], f"{names}: no answer to offer"


def test_items_carry_standard_codes_where_they_exist() -> None:
    q = generate(next(p for p in PACKS if p.id == "IL1.RIL.01"), BASE).questionnaire
    weights = [i for i in _walk(q["item"]) if str(i["linkId"]).endswith("/body-weight/value")]
    assert weights
    assert all(i["code"][0]["code"] == "29463-7" for i in weights)
    births = [i for i in _walk(q["item"]) if str(i["linkId"]).endswith("/birth-date/value")]
    assert births
    assert all(i["code"][0]["code"] == "21112-8" for i in births)


def test_a_drug_trial_offers_the_first_line_drug_by_its_rxnorm_ingredient() -> None:
    pack = next(p for p in PACKS if p.id == "NH.PHAR.244")
    generated = generate(pack, BASE)
    by_link = {str(i["linkId"]): i for i in _walk(generated.questionnaire["item"])}
    drug = by_link["I.A.4/first-line/trial/drug"]
    first_line = str(pack.policy.sections[0].criteria[3].params["first_line"])
    assert drug["answerValueSet"] == vs.valueset_url(BASE, [first_line])
    systems = {c["system"] for c in vs.concepts([first_line])}
    assert systems == {"http://www.nlm.nih.gov/research/umls/rxnorm"}


def test_get_questionnaire_and_unknown_id(client: FlaskClient) -> None:
    found = client.get("/fhir/Questionnaire/NH.PHAR.244")
    assert found.status_code == 200
    assert found.content_type.startswith("application/fhir+json")
    assert found.json is not None
    assert found.json["resourceType"] == "Questionnaire"
    assert found.json["url"].endswith("/fhir/Questionnaire/NH.PHAR.244")

    missing = client.get("/fhir/Questionnaire/NO.SUCH.PACK")
    assert missing.status_code == 404
    outcome = missing.json
    assert outcome is not None
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-found"
    assert "NO.SUCH.PACK" in outcome["issue"][0]["diagnostics"]


def test_get_a_valueset_the_questionnaire_names(client: FlaskClient) -> None:
    q = client.get("/fhir/Questionnaire/IL1.RIL.01").json
    assert q is not None
    url = next(i["answerValueSet"] for i in _walk(q["item"]) if "answerValueSet" in i)
    path = url.split("://", 1)[1].split("/", 1)[1]
    resp = client.get("/" + path)
    assert resp.status_code == 200
    assert resp.json is not None
    assert resp.json["url"] == url
    assert client.get("/fhir/ValueSet/no-such-set").status_code == 404
