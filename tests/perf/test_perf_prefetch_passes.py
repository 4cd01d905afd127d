"""The prefetch layer's single passes give what the plain reading of the spec gives: a search
answer kept to the call's patient (`kept_to_patient`), and the resources a search Bundle
carries (`_read_page`), for every mix of subjects, search modes and entry shapes."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from typing import Any

from cds_service import prefetch
from fhir_mappings.fields import reference

SUBJECTS: list[Any] = [
    None,
    {"reference": "Patient/p1"},
    {"reference": " Patient/p1 "},
    {"reference": "Patient/p1/_history/2"},
    {"reference": "https://ehr.example/fhir/Patient/p1"},
    {"reference": "Patient/p2"},
    {"reference": ""},
    {"display": "someone"},
    "Patient/p1",
]


def _named(resource: Mapping[str, Any]) -> str | None:
    for key in ("subject", "patient", "beneficiary"):
        target = reference(resource.get(key))
        if target is not None:
            return target
    return None


def _kept_long_way(
    resources: Sequence[Mapping[str, Any]], searched: str, patient_ref: str
) -> list[Mapping[str, Any]]:
    ours = [r for r in resources if r.get("resourceType") == searched]
    if not any((_named(r) or patient_ref) != patient_ref for r in ours):
        return list(resources)
    return [r for r in resources if r.get("resourceType") != searched or _named(r) == patient_ref]


def test_a_search_answer_is_kept_to_the_patient_as_the_long_way_keeps_it() -> None:
    rng = random.Random(7)
    kinds = ["Observation", "Medication", "Observation"]
    for patient_ref in ("Patient/p1", "Patient/p2", "Patient/a/b", "Patient/ p1"):
        for _ in range(400):
            resources: list[dict[str, Any]] = []
            for i in range(rng.randint(0, 6)):
                body: dict[str, Any] = {"resourceType": rng.choice(kinds), "id": str(i)}
                subject = rng.choice([*SUBJECTS, {"reference": patient_ref}])
                if subject is not None:
                    body[rng.choice(["subject", "subject", "patient"])] = subject
                resources.append(body)
            got = prefetch.kept_to_patient(resources, "Observation", patient_ref)
            assert got == _kept_long_way(resources, "Observation", patient_ref)


def _entries() -> list[Any]:
    resources: list[Any] = [
        {"resourceType": "Observation", "id": "o"},
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]},
        {"resourceType": "OperationOutcome", "issue": [{"severity": "warning"}]},
        {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Condition"}}]},
        {"resourceType": 3},
        "not a resource",
        None,
    ]
    searches: list[Any] = [None, {"mode": "match"}, {"mode": "include"}, {"mode": "outcome"}, "x"]
    out: list[Any] = ["not an entry", None]
    for resource, search in itertools.product(resources, searches):
        entry: dict[str, Any] = {"fullUrl": "urn:x"}
        if resource is not None:
            entry["resource"] = resource
        if search is not None:
            entry["search"] = search
        out.append(entry)
    return out


def _page_long_way(bundle: Mapping[str, Any]) -> tuple[list[Any], int, bool]:
    carried = 0
    kept: list[Any] = []
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, Mapping):
            continue
        search = entry.get("search")
        outcome = isinstance(search, Mapping) and search.get("mode") == "outcome"
        if not outcome:
            carried += 1
        resource = entry.get("resource")
        kind = resource.get("resourceType") if isinstance(resource, Mapping) else None
        if kind == "OperationOutcome" and prefetch._failed_outcome(entry):
            return kept, carried, True
        if not outcome:
            kept.extend(prefetch.flatten(resource, 1))
    return kept, carried, False


def test_a_search_bundle_is_read_as_the_long_way_reads_it() -> None:
    rng = random.Random(11)
    pool = _entries()
    for _ in range(3000):
        bundle = {"resourceType": "Bundle", "entry": rng.sample(pool, rng.randint(0, 5))}
        page = prefetch._read_page(bundle)
        assert (page.resources, page.carried, page.failed) == _page_long_way(bundle)
