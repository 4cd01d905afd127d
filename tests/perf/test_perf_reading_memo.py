"""What a worker remembers of the charts it has read (each Observation's reading kept by its
body's content key, references and drug-class names by their text) never changes an
answer: a chart sent again is answered as the first time, and a chart whose results
changed, even under the same ids, is read anew."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from benchmarks.workload import chart, order_sign_request
from fhir_mappings.record import build_record
from tests.answers import covered

SERVICE = "/cds-services/prior-auth-order-sign"
ORDER = "MedicationRequest/draft-bench"
RESULT_KEYS = ("observations", "assessments")


def _results(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in RESULT_KEYS:
        for entry in body["prefetch"][key]["entry"]:
            yield entry["resource"]


def _ask(client: FlaskClient, body: dict[str, Any]) -> tuple[str | None, list[str]]:
    response = client.post(SERVICE, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    return covered(answer, ORDER), [card["summary"] for card in answer.get("cards", [])]


def test_a_chart_is_answered_the_same_however_often_it_is_sent(client: FlaskClient) -> None:
    body = order_sign_request(80)
    first = _ask(client, body)
    assert first == ("covered", [])
    for _ in range(3):
        assert _ask(client, copy.deepcopy(body)) == first


def test_results_moved_to_another_patient_stop_counting_and_come_back(
    client: FlaskClient,
) -> None:
    body = order_sign_request(80)
    assert _ask(client, body)[0] == "covered"
    elsewhere = copy.deepcopy(body)
    for resource in _results(elsewhere):
        resource["subject"] = {"reference": "Patient/someone-else"}
    outcome, cards = _ask(client, elsewhere)
    assert outcome == "indeterminate"
    assert any("CDAI" in summary for summary in cards)
    # The same results read before are still this patient's when sent as they were.
    assert _ask(client, body)[0] == "covered"


def _weights(resources: list[dict[str, Any]]) -> dict[str, float | None]:
    """Body weights of the record, by the Observation they come from."""
    context = {"patientId": "pt-bench", "draftOrders": {"resourceType": "Bundle", "entry": []}}
    record = build_record(context, resources)
    return {m.ref: m.value for m in record.measurements if m.kind == "body-weight"}


@pytest.mark.parametrize("times", [1, 2])
def test_a_result_edited_under_the_same_id_is_read_with_its_new_value(times: int) -> None:
    resources, _ = chart(80)
    before = _weights(resources)
    assert len(before) >= 2
    for _ in range(times):  # read once or twice before the edit: the same either way
        assert _weights(copy.deepcopy(resources)) == before
    edited = copy.deepcopy(resources)
    weight = next(
        r
        for r in edited
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "29463-7"
    )
    weight["valueQuantity"]["value"] = 80.5
    assert _weights(edited) == {**before, f"Observation/{weight['id']}": 80.5}
