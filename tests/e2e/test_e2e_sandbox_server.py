"""The FHIR sandbox answers every query the service makes, pages, and loads idempotently."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from cds_service.policy.packs import default_registry
from sandbox import make_patients
from sandbox.fhir_sandbox import PATIENTS_DIR, SandboxServer, load_patients, patient_bundles
from sandbox.scenarios import load_scenarios

FHIR_JSON = "application/fhir+json"
TIMEOUT = 30
PATIENT = "pt-ra-met"
LONG = "pt-ra-long"


def get(server: SandboxServer, path: str, **headers: str) -> requests.Response:
    resp = requests.get(f"{server.base_url}/{path}", headers=headers, timeout=TIMEOUT)
    return resp


def search(server: SandboxServer, path: str) -> dict[str, Any]:
    resp = get(server, path)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith(FHIR_JSON)
    bundle: dict[str, Any] = resp.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    return bundle


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"
    ]


def ids(bundle: dict[str, Any]) -> set[str]:
    return {r["id"] for r in matches(bundle)}


def all_pages(server: SandboxServer, path: str) -> list[dict[str, Any]]:
    bundle = search(server, path)
    found = matches(bundle)
    pages = 1
    while nxt := next(
        (lk["url"] for lk in bundle.get("link", []) if lk["relation"] == "next"), None
    ):
        assert nxt.startswith(server.base_url + "/")
        resp = requests.get(nxt, timeout=TIMEOUT)
        assert resp.status_code == 200
        bundle = resp.json()
        found.extend(matches(bundle))
        pages += 1
        assert pages < 100
    return found


def test_reads_the_resources_the_service_reads(fhir_sandbox: SandboxServer) -> None:
    patient = get(fhir_sandbox, f"Patient/{PATIENT}").json()
    assert patient["birthDate"] == "1971-04-12"

    role = get(fhir_sandbox, "PractitionerRole/prrole-rheum-1").json()
    assert role["specialty"][0]["coding"][0]["code"] == "207RR0500X"

    encounter = get(fhir_sandbox, "Encounter/covid-inpt-enc").json()
    assert encounter["class"]["code"] == "IMP"

    drug = make_patients.pack_drug(make_patients.FIRST_PACK)
    medication_id = f"ra-cont-better-med-{drug.brand.lower()}"
    medication = get(fhir_sandbox, f"Medication/{medication_id}").json()
    assert {c["code"] for c in medication["code"]["coding"]} == {
        drug.product("ndc")["code"],
        drug.product("rxnorm", "SBD")["code"],
    }

    missing = get(fhir_sandbox, "Patient/no-such-patient")
    assert missing.status_code == 404


def test_answers_each_patient_search_of_the_service(fhir_sandbox: SandboxServer) -> None:
    conditions = matches(search(fhir_sandbox, f"Condition?patient={PATIENT}"))
    assert [c["code"]["coding"][0]["code"] for c in conditions] == ["M05.79"]

    codes = "http://loinc.org|88982-4,http://loinc.org|29463-7,http://loinc.org|1988-5"
    observations = matches(search(fhir_sandbox, f"Observation?patient={PATIENT}&code={codes}"))
    assert sorted(o["code"]["coding"][0]["code"] for o in observations) == [
        "1988-5",
        "29463-7",
        "88982-4",
        "88982-4",
    ]

    requests_ = matches(search(fhir_sandbox, f"MedicationRequest?patient={PATIENT}"))
    assert {r["medicationCodeableConcept"]["coding"][0]["code"] for r in requests_} == {"5521"}

    statements = matches(search(fhir_sandbox, f"MedicationStatement?patient=Patient/{PATIENT}"))
    assert {s["medicationCodeableConcept"]["coding"][0]["code"] for s in statements} == {
        "6851",
        "327361",
    }

    dispenses = matches(search(fhir_sandbox, f"MedicationDispense?patient={PATIENT}"))
    assert len(dispenses) == 1

    assert matches(search(fhir_sandbox, f"AllergyIntolerance?patient={PATIENT}")) == []
    allergies = matches(search(fhir_sandbox, "AllergyIntolerance?patient=pt-ra-ecoli"))
    assert allergies[0]["code"]["text"] == "E. coli-derived proteins"

    roles = matches(search(fhir_sandbox, "PractitionerRole?practitioner=pr-rheum-1"))
    assert [r["id"] for r in roles] == ["prrole-rheum-1"]

    care_team = search(fhir_sandbox, f"CareTeam?patient={PATIENT}&_include=CareTeam:participant")
    assert ids(care_team) == {"ra-met-careteam"}
    included = [e["resource"] for e in care_team["entry"] if e["search"]["mode"] == "include"]
    assert [r["id"] for r in included] == ["prrole-rheum-1"]

    referral = f"ServiceRequest?patient={PATIENT}&category=http://snomed.info/sct|3457005"
    assert ids(search(fhir_sandbox, referral)) == {"ra-met-referral"}

    by_patient = ids(search(fhir_sandbox, f"Coverage?patient={PATIENT}&status=active"))
    by_beneficiary = ids(search(fhir_sandbox, f"Coverage?beneficiary=Patient/{PATIENT}"))
    assert by_patient == by_beneficiary == {"ra-met-coverage"}


def test_searches_do_not_leak_other_patients(fhir_sandbox: SandboxServer) -> None:
    for resource in matches(search(fhir_sandbox, "Observation?patient=pt-nomid-met")):
        assert resource["subject"]["reference"] == "Patient/pt-nomid-met"


def test_include_returns_the_referenced_medication(fhir_sandbox: SandboxServer) -> None:
    bundle = search(
        fhir_sandbox,
        "MedicationRequest?patient=pt-ra-cont-better&_include=MedicationRequest:medication",
    )
    included = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert [(r["resourceType"], r["id"]) for r in included] == [
        ("Medication", "ra-cont-better-med-kineret")
    ]


def test_paging_follows_next_links_on_the_servers_own_base(fhir_sandbox: SandboxServer) -> None:
    path = f"Observation?patient={LONG}&code=http://loinc.org|88982-4,http://loinc.org|1988-5"
    first = search(fhir_sandbox, path + "&_count=50")
    assert len(matches(first)) == 50
    assert first["total"] > 200

    everything = all_pages(fhir_sandbox, path + "&_count=50")
    assert len(everything) == first["total"]
    assert len({r["id"] for r in everything}) == len(everything)
    unpaged = matches(search(fhir_sandbox, path + "&_count=1000"))
    assert {r["id"] for r in unpaged} == {r["id"] for r in everything}


def test_default_page_size_still_pages_long_histories(fhir_sandbox: SandboxServer) -> None:
    bundle = search(fhir_sandbox, f"Observation?patient={LONG}")
    assert len(matches(bundle)) < bundle["total"]
    assert any(link["relation"] == "next" for link in bundle["link"])


def test_unknown_search_parameter_is_refused(fhir_sandbox: SandboxServer) -> None:
    resp = get(fhir_sandbox, f"Observation?pateint={PATIENT}")
    assert resp.status_code == 400
    assert "pateint" in resp.json()["issue"][0]["diagnostics"]


def test_reloading_the_patients_changes_nothing(fhir_sandbox: SandboxServer) -> None:
    probes = [
        f"Observation?patient={LONG}&_count=1",
        f"MedicationDispense?patient={LONG}&_count=1",
        "Patient?_count=1",
        "PractitionerRole?_count=1",
    ]
    before = [search(fhir_sandbox, p)["total"] for p in probes]
    load_patients(fhir_sandbox.base_url, patient_bundles())
    after = [search(fhir_sandbox, p)["total"] for p in probes]
    assert after == before
    assert before[2] == len(patient_bundles())


def test_a_failing_transaction_leaves_no_trace(fhir_sandbox: SandboxServer) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": "tx-rollback-probe"},
                "request": {"method": "PUT", "url": "Patient/tx-rollback-probe"},
            },
            {
                "resource": {"resourceType": "Patient", "id": "mismatched"},
                "request": {"method": "PUT", "url": "Patient/another-id"},
            },
        ],
    }
    resp = requests.post(
        fhir_sandbox.base_url,
        data=json.dumps(bundle),
        headers={"Content-Type": FHIR_JSON},
        timeout=TIMEOUT,
    )
    assert resp.status_code == 400
    assert get(fhir_sandbox, "Patient/tx-rollback-probe").status_code == 404


def test_records_whether_a_bearer_token_was_sent(fhir_sandbox: SandboxServer) -> None:
    fhir_sandbox.clear_requests()
    get(fhir_sandbox, f"Patient/{PATIENT}", Authorization="Bearer secret-value-123")
    get(fhir_sandbox, f"Condition?patient={PATIENT}")
    seen = fhir_sandbox.requests_seen()
    assert [(r["path"], r["had_bearer"]) for r in seen] == [
        (f"/fhir/Patient/{PATIENT}", True),
        ("/fhir/Condition", False),
    ]
    assert "secret-value-123" not in json.dumps(seen)


def test_required_token_is_enforced(fhir_sandbox_with_token: tuple[SandboxServer, str]) -> None:
    server, token = fhir_sandbox_with_token
    assert get(server, f"Patient/{PATIENT}").status_code == 401
    assert get(server, f"Patient/{PATIENT}", Authorization="Bearer wrong").status_code == 401
    ok = get(server, f"Patient/{PATIENT}", Authorization=f"Bearer {token}")
    assert ok.status_code == 200
    assert ok.json()["id"] == PATIENT


ORDER_FILES = sorted(
    p.relative_to(PATIENTS_DIR).as_posix()
    for p in [*PATIENTS_DIR.glob("*.order.json"), *PATIENTS_DIR.glob("*/*.order.json")]
)


def test_every_pack_has_sandbox_patients_and_the_sandbox_loads_them() -> None:
    registry = default_registry()
    sets = make_patients.patient_sets()
    assert {patients.policy_id for patients in sets} == set(registry.packs)
    loaded = {path.relative_to(PATIENTS_DIR).as_posix() for path in patient_bundles()}
    for patients in sets:
        prefix = f"{patients.folder}/" if patients.folder else ""
        for scenario in load_scenarios(PATIENTS_DIR / patients.folder):
            assert f"{prefix}{scenario.bundle}" in loaded
            assert f"{prefix}{scenario.order}" in ORDER_FILES


@pytest.mark.parametrize("name", ORDER_FILES)
def test_each_draft_order_points_at_loaded_resources(
    fhir_sandbox: SandboxServer, name: str
) -> None:
    order = json.loads((PATIENTS_DIR / name).read_text(encoding="utf-8"))
    assert order["resourceType"] == "MedicationRequest"
    assert order["status"] == "draft"
    assert order["authoredOn"] == "2026-11-20"
    for ref in (order["subject"], order["requester"], order["encounter"]):
        assert get(fhir_sandbox, ref["reference"]).status_code == 200


def test_committed_patient_files_match_the_generator() -> None:
    for name, content in make_patients.rendered_files():
        on_disk = (PATIENTS_DIR / name).read_text(encoding="utf-8")
        assert on_disk == content, f"{name} is stale: run python -m sandbox.make_patients"
