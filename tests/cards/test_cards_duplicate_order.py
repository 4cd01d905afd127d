"""Two Kineret orders signed together: each gets a critical duplicate-therapy card."""

from __future__ import annotations

import copy

from flask.testing import FlaskClient

from tests.conftest import load_example


def test_two_kineret_drafts_are_flagged_as_duplicate_therapy(client: FlaskClient) -> None:
    body = load_example("order-sign-prefetch.json")
    entries = body["context"]["draftOrders"]["entry"]
    second = copy.deepcopy(entries[0])
    second["resource"]["id"] = "draft-anakinra-2"
    entries.append(second)

    answer = client.post("/cds-services/anakinra-order-sign", json=body).get_json()

    duplicates = [c for c in answer["cards"] if c["source"]["topic"]["code"] == "duplicate-therapy"]
    assert len(duplicates) == 2
    for card in duplicates:
        assert card["indicator"] == "critical"
        assert "duplicate therapy" in card["summary"]
    targets = {
        card["extension"]["davinci-crd.associated-resource"][0]["reference"]: {
            action["resourceId"]
            for suggestion in card["suggestions"]
            for action in suggestion["actions"]
        }
        for card in duplicates
    }
    # Each card offers to delete the other draft (and its own order).
    assert "MedicationRequest/draft-anakinra-2" in targets["MedicationRequest/draft-anakinra-1"]
    assert "MedicationRequest/draft-anakinra-1" in targets["MedicationRequest/draft-anakinra-2"]
    outcomes = {
        e["order"]: e["outcome"] for e in answer["extension"]["com.anakinra-cds.evaluation"]
    }
    assert set(outcomes.values()) == {"criteria-not-met"}


def test_a_single_kineret_draft_is_not_a_duplicate(client: FlaskClient) -> None:
    answer = client.post(
        "/cds-services/anakinra-order-sign", json=load_example("order-sign-prefetch.json")
    ).get_json()
    assert all(c["source"]["topic"]["code"] != "duplicate-therapy" for c in answer["cards"])
