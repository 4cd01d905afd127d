"""The public sample charts under `fhir-samples/`, read as an EHR would hold them.

Nothing here is copied into the repository: the charts are read from the folder named by
`CDS_FHIR_SAMPLES`, else `../shared/fhir-samples` beside the repository, else
`/work/shared/fhir-samples`. Without any of them the suite fails (`samples_dir` raises).

Each file becomes one `Chart`: the patient's id and every resource of the file, with the
references a FHIR server would store. Synthea 2 writes transaction Bundles whose entries name
each other by `urn:uuid:`; Synthea 3 bulk export names practitioners, organisations and
locations by conditional reference (`Practitioner?identifier=...|NPI`). A server resolves
both when it stores the chart, so both paths here read the resolved form: `Type/id`. The
Da Vinci CRD files are CDS Hooks requests; their chart is what the prefetch carried. Logical
references by identifier only (Synthea 3's PractitionerRole naming its practitioner by NPI)
are not references to resolve and are kept as they are.

Functions are pure, apart from `samples_dir` and `load_charts` which read files.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

Json = dict[str, Any]

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_VAR = "CDS_FHIR_SAMPLES"
FALLBACK = Path("/work/shared/fhir-samples")
FOLDERS = (
    "synthea-v2",
    "synthea-v3",
    "davinci-test-ehr",
    "davinci-crd",
    "cerner",
    "us-core",
)
"""Every folder of the sample set; each must be there and hold at least one chart."""

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"


class SamplesMissingError(RuntimeError):
    """The public sample charts cannot be found: the suite must fail, not skip."""


def candidate_dirs() -> list[Path]:
    """Where to look, in order: `CDS_FHIR_SAMPLES`, `../shared/fhir-samples`, the fallback."""
    candidates: list[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        candidates.append(Path(env))
    return [*candidates, REPO_ROOT.parent / "shared" / "fhir-samples", FALLBACK]


def samples_dir() -> Path:
    """Where the sample charts are (see the module docstring); raises `SamplesMissingError`."""
    candidates = candidate_dirs()
    for candidate in candidates:
        if candidate.is_dir() and all((candidate / f).is_dir() for f in FOLDERS):
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise SamplesMissingError(
        f"the public FHIR sample charts were not found (tried {tried}); set {ENV_VAR} to the "
        f"folder holding {', '.join(FOLDERS)}"
    )


# --- reading a file ---------------------------------------------------------------------------


def walk_resources(value: Any) -> Iterator[Json]:
    """Every resource of a Bundle, a CDS Hooks request's prefetch, or a single resource
    (Bundles are opened, contained resources stay inside their parent)."""
    if isinstance(value, Mapping):
        if value.get("resourceType") == "Bundle":
            for entry in value.get("entry") or []:
                if isinstance(entry, Mapping):
                    yield from walk_resources(entry.get("resource"))
            return
        if "resourceType" in value:
            yield dict(value)
            return
        for item in value.values():
            yield from walk_resources(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_resources(item)


def _rewrite_references(value: Any, mapping: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item in mapping:
                out[key] = mapping[item]
            else:
                out[key] = _rewrite_references(item, mapping)
        return out
    if isinstance(value, list):
        return [_rewrite_references(item, mapping) for item in value]
    return value


def _all_references(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from _all_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _all_references(item)


def _conditional_targets(resources: Sequence[Json]) -> dict[str, str]:
    """`Type?identifier=system|value` -> `Type/id` for every resource of the chart that
    carries that identifier (what a server does with conditional references on store)."""
    found: dict[str, str] = {}
    for resource in resources:
        for ident in resource.get("identifier") or []:
            system, value = ident.get("system"), ident.get("value")
            if isinstance(system, str) and isinstance(value, str):
                key = f"{resource['resourceType']}?identifier={system}|{value}"
                found.setdefault(key, f"{resource['resourceType']}/{resource['id']}")
    return found


def _absolute_targets(resources: Sequence[Json]) -> dict[str, str]:
    """Absolute URLs ending in `Type/id` of a resource of the chart -> `Type/id`."""
    local = {f"{r['resourceType']}/{r['id']}" for r in resources if r.get("id")}
    found: dict[str, str] = {}
    for resource in resources:
        for ref in _all_references(resource):
            if ref.startswith(("http://", "https://")):
                tail = "/".join(ref.rstrip("/").split("/")[-2:])
                if tail in local:
                    found[ref] = tail
    return found


def resolve_references(bundle_entries: Sequence[Mapping[str, Any]]) -> list[Json]:
    """The entries' resources with `urn:uuid:` full URLs, conditional references and
    absolute URLs of chart resources rewritten to `Type/id`."""
    resources = [dict(e["resource"]) for e in bundle_entries if isinstance(e.get("resource"), dict)]
    mapping: dict[str, str] = {}
    for entry in bundle_entries:
        resource = entry.get("resource")
        full_url = entry.get("fullUrl")
        if isinstance(resource, Mapping) and isinstance(full_url, str) and resource.get("id"):
            mapping[full_url] = f"{resource['resourceType']}/{resource['id']}"
    mapping.update(_conditional_targets(resources))
    mapping.update(_absolute_targets(resources))
    return [_rewrite_references(r, mapping) for r in resources]


# --- the chart ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chart:
    """One sample file, as the EHR holds it."""

    key: str
    """`folder/name`, e.g. `synthea-v2/Asa_Hermiston` (the file name without ids or suffix)."""
    path: Path
    patient_id: str
    resources: tuple[Json, ...] = field(repr=False)

    def of_type(self, resource_type: str) -> list[Json]:
        return [r for r in self.resources if r.get("resourceType") == resource_type]

    def by_ref(self, ref: str) -> Json | None:
        kind, _, rid = ref.partition("/")
        for resource in self.resources:
            if resource.get("resourceType") == kind and resource.get("id") == rid:
                return resource
        return None

    def fresh_resources(self) -> list[Json]:
        """Deep copies, for tests that transform the chart."""
        return copy.deepcopy(list(self.resources))


def chart_key(path: Path) -> str:
    stem = path.name.removesuffix(".json").removesuffix(".bundle")
    parts = stem.split("_")
    if len(parts) == 3:  # Synthea 2: Given_Family_uuid
        stem = f"{parts[0]}_{parts[1]}"
    return f"{path.parent.name}/{stem}"


def _read_chart(path: Path) -> Chart:
    data = json.loads(path.read_text("utf-8"))
    if isinstance(data, Mapping) and data.get("resourceType") == "Bundle":
        resources = resolve_references(list(data.get("entry") or []))
        patients = [r for r in resources if r.get("resourceType") == "Patient"]
        if len(patients) != 1:
            raise ValueError(f"{path.name}: expected one Patient, found {len(patients)}")
        patient_id = str(patients[0]["id"])
    else:  # a CDS Hooks request: the chart is what its prefetch carried
        context = data.get("context") or {}
        patient_id = str(context["patientId"])
        entries = [{"resource": r} for r in walk_resources(data.get("prefetch") or {})]
        resources = resolve_references(entries)
        # The same resource may sit under two prefetch keys: keep one.
        seen: dict[tuple[str, str], Json] = {}
        for resource in resources:
            seen.setdefault((resource["resourceType"], str(resource.get("id"))), resource)
        resources = list(seen.values())
    return Chart(chart_key(path), path, patient_id, tuple(resources))


@cache
def load_charts(root: Path | None = None) -> tuple[Chart, ...]:
    """Every chart of every folder, in folder then file order."""
    base = root or samples_dir()
    charts: list[Chart] = []
    for folder in FOLDERS:
        files = sorted((base / folder).glob("*.json"))
        if not files:
            raise SamplesMissingError(f"{base / folder} holds no chart")
        charts.extend(_read_chart(path) for path in files)
    return tuple(charts)


def chart_by_key(key: str) -> Chart:
    for chart in load_charts():
        if chart.key == key:
            return chart
    raise KeyError(key)
