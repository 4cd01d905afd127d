"""Request shapes real clients send (issue 12): `null` for "not given", the Da Vinci CRD
reference client's requests as published, draft orders the service cannot read, and
calls whose record cannot be read. Every order that may be for Kineret gets a card; an
order recognisably for another drug gets none."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import ROOT, load_example

SIGN = "/cds-services/prior-auth-order-sign"
SELECT = "/cds-services/prior-auth-order-select"
EVALUATION = "com.anakinra-cds.evaluation"
ASSOCIATED = "davinci-crd.associated-resource"
ORDER = "MedicationRequest/draft-anakinra-1"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ANAKINRA_SCD = {
    "coding": [
        {
            "system": RXNORM,
            "code": "727711",
            "display": "0.67 ML anakinra 149 MG/ML Prefilled Syringe",
        }
    ]
}
METHOTREXATE = {
    "coding": [{"system": RXNORM, "code": "105585", "display": "methotrexate 2.5 MG Oral Tablet"}]
}


def _samples() -> Path:
    for candidate in (ROOT.parent / "shared" / "fhir-samples", Path("/work/shared/fhir-samples")):
        if candidate.is_dir():
            return candidate
    pytest.skip("the public FHIR samples are not on this machine")


def crd_sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_samples() / "davinci-crd" / name).read_text("utf-8"))
    return data


def evaluations(answer: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = answer.get("extension", {}).get(EVALUATION, [])
    return found


def cards_for(answer: dict[str, Any], order: str) -> list[dict[str, Any]]:
    return [c for c in answer["cards"] if {"reference": order} in c["extension"][ASSOCIATED]]


def only_evaluation(answer: dict[str, Any], order: str = ORDER) -> dict[str, Any]:
    [evaluation] = [e for e in evaluations(answer) if e["order"] == order]
    return evaluation


def sign_example() -> dict[str, Any]:
    return load_example("order-sign-prefetch.json")


def draft(body: dict[str, Any]) -> dict[str, Any]:
    order: dict[str, Any] = body["context"]["draftOrders"]["entry"][0]["resource"]
    return order


# --- null means absent ------------------------------------------------------------


def test_crd_reference_client_order_sign_for_another_product_gets_no_card(
    client: FlaskClient,
) -> None:
    """As published: `fhirAuthorization: null`, a DeviceRequest (oxygen) to sign."""
    body = crd_sample("requestWithHydratedPrefetchBundle.json")
    assert body["fhirAuthorization"] is None
    response = client.post(SIGN, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"cards": []}


def test_crd_reference_client_medication_prescribe_for_botox_gets_no_card(
    client: FlaskClient,
) -> None:
    """As published: the pre-1.0 `medication-prescribe` hook, `fhirServer`,
    `fhirAuthorization` and `encounterId` null, a Botox order: answered by the
    order-select service, no card."""
    body = crd_sample("medicationRequestPrefetch.json")
    assert body["fhirServer"] is None
    assert body["context"]["encounterId"] is None
    response = client.post(SELECT, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"cards": []}


def test_medication_prescribe_is_not_an_order_sign_call(client: FlaskClient) -> None:
    response = client.post(SIGN, json=crd_sample("medicationRequestPrefetch.json"))
    assert response.status_code == 400
    assert response.get_json()["error"] == "wrong-hook"


def test_anakinra_order_in_the_crd_client_shape_is_evaluated(client: FlaskClient) -> None:
    """The CRD client's null fields around our RA patient's Kineret order and prefetch:
    the same answer as without them (criteria met)."""
    plain = client.post(SIGN, json=sign_example()).get_json()
    body = sign_example()
    body.update({"fhirServer": None, "fhirAuthorization": None})
    body["context"]["encounterId"] = None
    body["prefetch"]["deviceRequestBundle"] = None
    response = client.post(SIGN, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert only_evaluation(answer) == only_evaluation(plain)
    assert [c["summary"] for c in answer["cards"]] == [c["summary"] for c in plain["cards"]]
    assert only_evaluation(answer)["outcome"] == "criteria-met"


def test_anakinra_order_in_the_crd_client_request_without_its_record(
    client: FlaskClient,
) -> None:
    """The CRD sample as sent, its oxygen order replaced by a Kineret order: no record
    is sent and there is no FHIR server to read it from, so the card says so."""
    body = crd_sample("requestWithHydratedPrefetchBundle.json")
    body["fhirServer"] = None
    order = copy.deepcopy(draft(sign_example()))
    order["subject"] = {"reference": f"Patient/{body['context']['patientId']}"}
    body["context"]["draftOrders"]["entry"] = [{"resource": order}]
    response = client.post(SIGN, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    [card] = cards_for(answer, ORDER)
    assert card["indicator"] == "warning"
    assert "could not be read from the EHR" in card["detail"]
    assert "no FHIR server" in card["detail"]
    evaluation = only_evaluation(answer)
    assert evaluation["outcome"] == "not-evaluated"
    required = {m["prefetchKey"] for m in evaluation["missingData"] if m.get("required")}
    assert required == {"patient", "medicationRequests"}


def test_medication_prescribe_with_kineret_is_checked_as_order_select(
    client: FlaskClient,
) -> None:
    body = crd_sample("medicationRequestPrefetch.json")
    example = sign_example()
    order = copy.deepcopy(draft(example))
    body["context"] = {
        "patientId": example["context"]["patientId"],
        "encounterId": None,
        "medications": {"resourceType": "Bundle", "entry": [{"resource": order}]},
    }
    body["prefetch"] = example["prefetch"]
    response = client.post(SELECT, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    # order-select shows clinical cards only; the evaluation is there all the same.
    assert only_evaluation(response.get_json())["outcome"] == "criteria-met"


def test_prefetch_null_is_no_prefetch(client: FlaskClient) -> None:
    body = sign_example()
    body["prefetch"] = None
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert only_evaluation(response.get_json())["outcome"] == "not-evaluated"


def test_access_token_without_a_fhir_server_is_still_a_bad_request(client: FlaskClient) -> None:
    body = sign_example()
    body["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer"}
    response = client.post(SIGN, json=body)
    assert response.status_code == 400
    assert response.get_json()["details"][0]["pointer"] == "/fhirServer"
    body["fhirServer"] = None
    assert client.post(SIGN, json=body).status_code == 400


def test_null_where_a_value_is_required_is_still_a_bad_request(client: FlaskClient) -> None:
    body = sign_example()
    body["context"]["patientId"] = None
    assert client.post(SIGN, json=body).status_code == 400


def test_prefetch_key_null_means_no_such_data(client: FlaskClient) -> None:
    """CDS Hooks: a prefetch key whose value is null has no data (an empty result), which
    is not a failed read."""
    body = sign_example()
    body["prefetch"]["medicationDispenses"] = None
    answer = client.post(SIGN, json=body).get_json()
    evaluation = only_evaluation(answer)
    assert evaluation["outcome"] == "criteria-met"
    assert "missingData" not in evaluation


def test_bundle_entries_without_resource_are_skipped(client: FlaskClient) -> None:
    body = sign_example()
    entries = body["prefetch"]["conditions"]["entry"]
    entries.append({"fullUrl": "urn:uuid:6c1f3a52-0000-4000-8000-000000000001"})
    entries.append({"search": {"mode": "match"}})
    answer = client.post(SIGN, json=body).get_json()
    assert only_evaluation(answer)["outcome"] == "criteria-met"


def test_medication_dispense_operation_outcome_is_unavailable(client: FlaskClient) -> None:
    """The dispense query failed at the EHR: dispenses are unavailable (the evaluation
    says so), never read as "no dispense"."""
    body = sign_example()
    body["prefetch"]["medicationDispenses"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception"}],
    }
    answer = client.post(SIGN, json=body).get_json()
    evaluation = only_evaluation(answer)
    [missing] = evaluation["missingData"]
    assert missing["prefetchKey"] == "medicationDispenses"
    assert missing["resourceType"] == "MedicationDispense"
    assert missing["issue"] == "not-found"  # not sent (usable), and no server to read it


# --- draft orders the service cannot read --------------------------------------------


def _with_medication(**medication: Any) -> dict[str, Any]:
    body = sign_example()
    order = draft(body)
    del order["medicationCodeableConcept"]
    order.update(medication)
    return body


UNREADABLE: dict[str, tuple[dict[str, Any], str, bool]] = {
    "r5-concept-anakinra": ({"medication": {"concept": ANAKINRA_SCD}}, "FHIR R5", True),
    "r5-reference": (
        {"medication": {"reference": {"reference": "Medication/med-kineret"}}},
        "FHIR R5",
        False,
    ),
    "r5-concept-local-code": (
        {"medication": {"concept": {"coding": [{"system": "urn:oid:1.2.3", "code": "88"}]}}},
        "FHIR R5",
        False,
    ),
    "no-medication": ({}, "names no drug", False),
    "local-code-only": (
        {"medicationCodeableConcept": {"coding": [{"system": "urn:oid:1.2.3", "code": "88"}]}},
        "could not be identified",
        False,
    ),
    "snomed-code-without-name": (
        {
            "medicationCodeableConcept": {
                "coding": [{"system": "http://snomed.info/sct", "code": "386981008"}]
            }
        },
        "could not be identified",
        False,
    ),
    "concept-not-an-object": (
        {"medicationCodeableConcept": "Kineret"},
        "could not be read",
        False,
    ),
}


@pytest.mark.parametrize("case", UNREADABLE, ids=list(UNREADABLE))
def test_order_the_service_cannot_read_gets_a_could_not_check_card(
    client: FlaskClient, case: str
) -> None:
    medication, words, names_kineret = UNREADABLE[case]
    response = client.post(SIGN, json=_with_medication(**medication))
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    [card] = cards_for(answer, ORDER)
    assert card["indicator"] == "warning"
    assert words in card["detail"]
    if names_kineret:
        assert card["summary"].startswith("Could not complete the Kineret coverage check")
    else:
        assert "its drug could not be read" in card["summary"]
    evaluation = only_evaluation(answer)
    assert evaluation["outcome"] == "not-evaluated"
    assert words in evaluation["reason"]


OTHER_DRUGS: dict[str, dict[str, Any]] = {
    "rxnorm-coded": {"medicationCodeableConcept": METHOTREXATE},
    "rxnorm-code-without-display": {
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "105585"}]}
    },
    "named-only": {"medicationCodeableConcept": {"text": "Humira 40 mg pen"}},
    "r5-coded": {"medication": {"concept": METHOTREXATE}},
    "r5-named": {"medication": {"concept": {"text": "folic acid 1 mg tablet"}}},
    "reference-display-only": {"medicationReference": {"display": "prednisone 5 mg tablet"}},
}


@pytest.mark.parametrize("case", OTHER_DRUGS, ids=list(OTHER_DRUGS))
def test_order_recognisably_for_another_drug_gets_no_card(client: FlaskClient, case: str) -> None:
    body = _with_medication(**OTHER_DRUGS[case])
    del body["prefetch"]  # nothing is read for it: no FHIR server is needed
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_order_select_before_a_drug_is_chosen_stays_silent(client: FlaskClient) -> None:
    body = load_example("order-select-no-drug.json")
    response = client.post(SELECT, json=body)
    assert response.get_json() == {"cards": []}


def test_order_select_of_an_r5_kineret_order_gets_the_card(client: FlaskClient) -> None:
    body = load_example("order-select-no-drug.json")
    order = draft(body)
    order["medication"] = {"concept": ANAKINRA_SCD}
    answer = client.post(SELECT, json=body).get_json()
    [card] = cards_for(answer, "MedicationRequest/request-123")
    assert "FHIR R5" in card["detail"]


def test_unreadable_order_beside_a_readable_kineret_order(client: FlaskClient) -> None:
    """Both are answered: the readable one evaluated, the R5 one a could-not-check card."""
    body = sign_example()
    second = copy.deepcopy(draft(body))
    second["id"] = "draft-anakinra-r5"
    second["medication"] = {"concept": second.pop("medicationCodeableConcept")}
    body["context"]["draftOrders"]["entry"].append({"resource": second})
    answer = client.post(SIGN, json=body).get_json()
    outcomes = {e["order"]: e["outcome"] for e in evaluations(answer)}
    assert outcomes == {
        ORDER: "criteria-met",
        "MedicationRequest/draft-anakinra-r5": "not-evaluated",
    }
    assert cards_for(answer, "MedicationRequest/draft-anakinra-r5")


def test_offline_evaluation_answers_an_unreadable_order_too() -> None:
    """`cds-service evaluate` goes through the same sweep: an R5 order is reported as not
    evaluated, not left out."""
    from datetime import date

    from cds_service.cards import NotEvaluated
    from cds_service.evaluate_file import evaluate_inputs, request_inputs

    body = _with_medication(medication={"concept": ANAKINRA_SCD})
    context, resources = request_inputs(body)
    report = evaluate_inputs(context, resources, date(2026, 11, 29))
    [item] = report.items
    assert isinstance(item, NotEvaluated)
    assert "FHIR R5" in item.reason
