"""The replay corpus: recorded requests, each answered by the service in-process, and the
response recorded for it.

Every entry is one request an EHR could send, with the clock the suite it comes from pins:

- `scenarios-<folder>`: every scenario file (`tests/scenarios/*/*.json`, `_expect` taken
  out), on the clock its suite uses (the order date for ra/, continued/, rilonacept/;
  `tests.conftest.PINNED_NOW` for other/ and ehr/);
- `examples`: the request examples of `hooks/examples/`;
- `crd`: the Da Vinci CRD conformance cases (`tests/crd/cases`) that run on the default
  settings over the prefetch data path;
- `realworld`: every public sample chart and every variant (`tests/realworld`), the
  prefetch data path, clock on the case's order date (the samples are read from outside the
  repository, see `tests.realworld.charts.samples_dir`);
- no FHIR server is ever reached (`UnreachableFhir`): a request naming one gets the answer
  of a server that cannot be read, whatever listens on this machine;
- `benchmark`: the benchmark's chart (`benchmarks/workload.py`) at 50 and 500 resources;
- `goldens`: the card golden cases (`tests/cards/cases.py`), rendered as
  `tests/cards/test_cards_golden.py` renders them.

Volatile fields are pinned the way the goldens pin them: the clock is fixed per entry and the
uuids count from 1 for every request (`00000000-0000-4000-8000-000000000001`, ...), so the
service's answer is the same bytes on every run. Nothing is rewritten after the fact.

Record again (after an intended change of responses; review the diff):

    python -m tests.replay.record            # or UPDATE_REPLAY=1 pytest tests/replay
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from flask import Flask

from cds_service import create_app
from cds_service.prefetch import FetchError
from tests.conftest import HOOKS_DIR, PINNED_NOW, base_config
from tests.scenarios.harness import ORDER_NOW, SCENARIOS_DIR

RECORDED_DIR = Path(__file__).resolve().parent / "recorded"
SCENARIO_CLOCKS: dict[str, datetime] = {
    "ra": ORDER_NOW,
    "continued": ORDER_NOW,
    "rilonacept": ORDER_NOW,
    "other": PINNED_NOW,
    "ehr": PINNED_NOW,
}
BENCHMARK_SIZES = (50, 500)
SUITES = (
    *(f"scenarios-{folder}" for folder in SCENARIO_CLOCKS),
    "examples",
    "crd",
    "realworld",
    "benchmark",
    "goldens",
)

Json = dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """One request of the corpus: posted to `path` with the clock at `now`."""

    name: str
    path: str
    body: bytes
    now: datetime


class UnreachableFhir:
    """Every FHIR server refuses the connection, as an unreachable one does: a request that
    names a `fhirServer` is answered the same whatever happens to listen on this machine."""

    def get(self, url: str, *args: Any, **kwargs: Any) -> Any:
        raise FetchError("exception", "the FHIR server could not be read")

    def close(self) -> None:
        pass


class Replayer:
    """One app for every entry: its clock and uuid counter are reset for each request, so an
    entry's answer does not depend on what was replayed before it."""

    def __init__(self) -> None:
        self._now = PINNED_NOW
        self._uuids: Iterator[int] = itertools.count(1)
        self.app: Flask = create_app(
            base_config(
                CLOCK=lambda: self._now,
                UUID_FACTORY=lambda: f"00000000-0000-4000-8000-{next(self._uuids):012d}",
                FHIR_CLIENT_FACTORY=UnreachableFhir,
                # No deadline may fire on a loaded machine: the answer must not depend on speed.
                CDS_REQUEST_DEADLINE="60",
                CDS_CALL_DEADLINE="60",
            )
        )
        self._client = self.app.test_client()

    def answer(self, entry: Entry) -> tuple[int, bytes]:
        self._now = entry.now
        self._uuids = itertools.count(1)
        response = self._client.post(entry.path, data=entry.body, content_type="application/json")
        return response.status_code, response.get_data()


def _service_paths() -> dict[str, str]:
    paths = {}
    for path in sorted((HOOKS_DIR / "services").glob("*.json")):
        definition = json.loads(path.read_text("utf-8"))
        paths[definition["hook"]] = f"/cds-services/{definition['id']}"
    return paths


def _encoded(body: Any) -> bytes:
    return json.dumps(body).encode("utf-8")


def _scenario_entries(folder: str) -> list[Entry]:
    paths = _service_paths()
    out = []
    for file in sorted((SCENARIOS_DIR / folder).glob("*.json")):
        body = json.loads(file.read_text("utf-8"))
        body.pop("_expect", None)
        out.append(Entry(file.stem, paths[body["hook"]], _encoded(body), SCENARIO_CLOCKS[folder]))
    return out


def _example_entries() -> list[Entry]:
    paths = _service_paths()
    out = []
    for file in sorted((HOOKS_DIR / "examples").glob("*.json")):
        body = json.loads(file.read_text("utf-8"))
        if body.get("hook") in paths:
            out.append(Entry(file.stem, paths[body["hook"]], _encoded(body), PINNED_NOW))
    return out


def _crd_entries() -> list[Entry]:
    from tests.crd import conformance

    out = []
    for case in conformance.load_cases():
        request = case.request
        if case.settings or "prefetch" not in case.data_paths:
            continue
        if request.get("method", "POST") != "POST" or "raw" in request:
            continue
        body = conformance.request_body(request)
        if body is None:
            continue
        path = f"/cds-services/{request['service']}"
        out.append(Entry(case.id, path, _encoded(body), PINNED_NOW))
    return out


def _realworld_entries() -> list[Entry]:
    from tests.realworld.cases import ALL_CASES, prepare
    from tests.realworld.ehr import SIGN_SERVICE
    from tests.realworld.service import build_request

    out = []
    for case in ALL_CASES:
        prepared = prepare(case.name)
        now = datetime.combine(prepared.spec.order_date, time(15, 0), tzinfo=UTC)
        body = build_request(prepared, "prefetch")
        out.append(Entry(case.name, f"/cds-services/{SIGN_SERVICE}", _encoded(body), now))
    return out


def _benchmark_entries() -> list[Entry]:
    from benchmarks.workload import order_sign_request

    path = _service_paths()["order-sign"]
    return [
        Entry(f"chart-{n}", path, _encoded(order_sign_request(n)), ORDER_NOW)
        for n in BENCHMARK_SIZES
    ]


ENTRIES: dict[str, Callable[[], list[Entry]]] = {
    **{
        f"scenarios-{folder}": (lambda folder=folder: _scenario_entries(folder))  # type: ignore[misc]
        for folder in SCENARIO_CLOCKS
    },
    "examples": _example_entries,
    "crd": _crd_entries,
    "realworld": _realworld_entries,
    "benchmark": _benchmark_entries,
}


def golden_answers() -> dict[str, bytes]:
    """Each card golden case rendered (request and response), as JSON bytes."""
    from tests.cards.cases import CASES
    from tests.cards.test_cards_golden import _pair

    return {name: json.dumps(_pair(name)).encode("utf-8") for name in sorted(CASES)}


def answers(suite: str, replayer: Replayer) -> dict[str, tuple[int, bytes]]:
    """Entry name -> (HTTP status, response bytes) for every entry of `suite`."""
    if suite == "goldens":
        return {name: (200, data) for name, data in golden_answers().items()}
    found: dict[str, tuple[int, bytes]] = {}
    for entry in ENTRIES[suite]():
        assert entry.name not in found, f"{suite}: two entries named {entry.name}"
        found[entry.name] = replayer.answer(entry)
    return found


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recorded_file(suite: str) -> Path:
    """Status and SHA-256 of each entry's response bytes: one line per entry (reviewable,
    and two branches that change different entries merge without a conflict)."""
    return RECORDED_DIR / f"{suite}.json"


def responses_file(suite: str) -> Path:
    """The recorded responses themselves (compressed): read only to show what changed."""
    return RECORDED_DIR / f"{suite}.responses.json.gz"


def write_record(suite: str, found: dict[str, tuple[int, bytes]]) -> None:
    RECORDED_DIR.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{json.dumps(name)}: {json.dumps({'status': status, 'sha256': digest(data)})}"
        for name, (status, data) in sorted(found.items())
    ]
    recorded_file(suite).write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    texts = {name: data.decode("utf-8") for name, (_, data) in sorted(found.items())}
    packed = json.dumps(texts, ensure_ascii=False, indent=0).encode("utf-8")
    responses_file(suite).write_bytes(gzip.compress(packed, compresslevel=9, mtime=0))


def read_record(suite: str) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(recorded_file(suite).read_text("utf-8"))
    return data


def read_responses(suite: str) -> dict[str, str]:
    """Entry name -> the recorded response text ({} when the file is missing)."""
    path = responses_file(suite)
    if not path.is_file():
        return {}
    data: dict[str, str] = json.loads(gzip.decompress(path.read_bytes()))
    return data
