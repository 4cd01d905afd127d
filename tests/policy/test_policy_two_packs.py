"""Two policy packs in one service: each draft order is routed to the pack of its drug and
decided by that pack's policy, with its own cards, coverage information and evaluation
entry; an order for a drug no pack decides gets nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from cds_service import create_app
from cds_service.store import AuditStore, format_audit_report
from tests.answers import coverage_information
from tests.conftest import base_config, load_example, wait_for_audit
from tests.policy.pack_builder import TEST_PACK_ID, copy_packaged_packs, write_pack

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
EVALUATION = "com.anakinra-cds.evaluation"


def _order(template: dict[str, Any], rid: str, code: str, display: str) -> dict[str, Any]:
    order = copy.deepcopy(template)
    order["id"] = rid
    order["medicationCodeableConcept"] = {
        "coding": [{"system": RXNORM, "code": code, "display": display}],
        "text": display,
    }
    return order


def _call(tmp_path: Path, database: str = "sqlite://") -> dict[str, Any]:
    root = copy_packaged_packs(tmp_path / "packs")
    write_pack(root)
    request = load_example("order-sign-prefetch.json")
    entries = request["context"]["draftOrders"]["entry"]
    first = entries[0]["resource"]
    entries.append({"resource": _order(first, "draft-mtx-1", "105585", "methotrexate 2.5 MG")})
    entries.append({"resource": _order(first, "draft-ada-1", "327361", "adalimumab")})
    app = create_app(base_config(CDS_POLICY_PACKS_DIR=str(root), CDS_DATABASE_URL=database))
    response = app.test_client().post("/cds-services/anakinra-order-sign", json=request)
    assert response.status_code == 200
    wait_for_audit(app)
    body: dict[str, Any] = response.get_json()
    return body


def _cards_by_order(body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for card in body["cards"]:
        (associated,) = card["extension"]["davinci-crd.associated-resource"]
        out.setdefault(associated["reference"], []).append(card)
    return out


def test_each_order_is_decided_by_its_own_pack(tmp_path: Path) -> None:
    body = _call(tmp_path)
    evaluations = {e["order"]: e for e in body["extension"][EVALUATION]}
    assert set(evaluations) == {
        "MedicationRequest/draft-anakinra-1",
        "MedicationRequest/draft-mtx-1",
    }
    first = evaluations["MedicationRequest/draft-anakinra-1"]
    second = evaluations["MedicationRequest/draft-mtx-1"]
    assert first["policy"]["id"] == "NH.PHAR.244"
    assert (second["policy"]["id"], second["policy"]["version"]) == (TEST_PACK_ID, "test-7")
    # The test pack has one RA criterion (age) and its common IV.C: its own criteria decide.
    assert {c["id"] for c in second["criteria"]} == {"I.A.1", "IV.C"}
    assert second["outcome"] == "criteria-met"
    assert "I.A.8" in {c["id"] for c in first["criteria"]}

    cards = _cards_by_order(body)
    # The test pack's order meets its criteria: the coverage information attached to it is
    # its whole answer (no card repeats it, CRD resp-12), and it names the test pack's criteria.
    assert set(cards) == {"MedicationRequest/draft-anakinra-1"}
    mtx_coverage = json.dumps(coverage_information(body)["MedicationRequest/draft-mtx-1"])
    assert f"{TEST_PACK_ID} I.A.1" in mtx_coverage
    assert "NH.PHAR.244" not in mtx_coverage
    first_labels = {card["source"]["label"] for card in cards["MedicationRequest/draft-anakinra-1"]}
    assert all(label.startswith("NH.PHAR.244 ") for label in first_labels)

    covered = {a["resource"]["id"] for a in body.get("systemActions", [])}
    assert {"draft-anakinra-1", "draft-mtx-1"} <= covered
    assert "draft-ada-1" not in covered


def test_the_audit_names_the_pack_that_decided_each_order(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    _call(tmp_path, database)
    store = AuditStore(database)
    try:
        decided = {d.order_ref: (d.policy_id, d.policy_version) for d in store.recent_decisions()}
        report = format_audit_report(store)
    finally:
        store.dispose()
    assert decided["MedicationRequest/draft-mtx-1"] == (TEST_PACK_ID, "test-7")
    assert decided["MedicationRequest/draft-anakinra-1"][0] == "NH.PHAR.244"
    assert "MedicationRequest/draft-ada-1" not in decided
    assert f"policy {TEST_PACK_ID} version test-7" in report
