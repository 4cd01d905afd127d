"""What loading many policy packs costs per request: the same order-sign call against the
service with the packaged packs and with ten packs, in process, interleaved.

    .venv/bin/python -m benchmarks.many_packs [--calls 300] [--size 500]

Builds, in a temporary folder, ten packs: the packaged ones plus copies of the first pack
(`TEMPLATE`) re-pointed at other ingredients of the shared terminology (each copy's
`drug.json` lists that drug's codes from `fhir_mappings/valuesets/products/<drug>.json`;
everything else is the template's). A pack's ingredient must be a value set of the
terminology, and those drugs have product files and class value sets but no ingredient value
set of their own: the run therefore works on a temporary copy of `fhir_mappings/` with one
small ingredient value set added per copied pack (its RxNorm ingredient code, as the class
value sets list it), imported in a child process in place of the checkout's. Both folders
are loaded by the validating registry, as start-up does. Then one app per folder
(`create_app`, authentication off, in-memory audit store) answers the same order-sign call
(`benchmarks/workload.py`, a chart of `--size` resources as full prefetch), the two apps
taking turns call by call (which one goes first alternates), and the medians are compared.
Routing is a dictionary lookup by ingredient or code and value sets are indexed once for all
packs, so the difference should be within the noise; the run prints the medians, their
difference and the spread of each, the start-up load time and one routing lookup.

Not a test: nothing here passes or fails. Other programs using the CPU change the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import yaml

from cds_service.policy.packs import Registry, load_packs, packs_dir

RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"

ROOT: Final = Path(__file__).resolve().parent.parent
VALUESETS: Final = ROOT / "fhir_mappings" / "valuesets"
TEMPLATE: Final = "NH.PHAR.244"
"""The pack copied for the extra packs (the first policy pack)."""
PACKS: Final = 10
HOOK: Final = "order-sign"

Json = dict[str, Any]


# --------------------------------------------------------------------------- the ten packs


def ingredient_codes(valuesets: Path = VALUESETS) -> dict[str, str]:
    """{drug name: its RxNorm ingredient (TTY IN) code}, from every value set."""
    found: dict[str, str] = {}
    for path in sorted(valuesets.glob("*.json")):
        for concept in json.loads(path.read_text(encoding="utf-8")).get("concepts", []):
            drug = concept.get("drug")
            if drug and concept.get("tty") == "IN" and concept.get("system", "").endswith("rxnorm"):
                found.setdefault(drug, concept["code"])
    return found


def drug_displays(valuesets: Path = VALUESETS) -> dict[str, str]:
    """{drug name: how the value sets display it}, from every medication value set."""
    found: dict[str, str] = {}
    for path in sorted(valuesets.glob("*.json")):
        drugs = json.loads(path.read_text(encoding="utf-8")).get("drugs", {})
        for drug, display in drugs.items():
            found.setdefault(drug, display)
    return found


def ingredient_valueset(drug: str, valuesets: Path = VALUESETS) -> Json:
    """A value set of the drug alone: its RxNorm ingredient code (product codes come from its
    product file, as for every drug)."""
    return {
        "name": drug,
        "title": drug.capitalize(),
        "kind": "medication",
        "description": f"{drug}: ingredient, for a benchmark copy of a policy pack only.",
        "drugs": {drug: drug_displays(valuesets).get(drug, drug)},
        "concepts": [
            {
                "system": RXNORM,
                "code": ingredient_codes(valuesets)[drug],
                "display": drug,
                "tty": "IN",
                "source": "the class value sets of fhir_mappings/valuesets/",
                "confidence": "high",
                "drug": drug,
            }
        ],
        "names": [],
    }


def shadow_terminology(into: Path, drugs: Sequence[str]) -> Path:
    """A copy of the `fhir_mappings` package in `into` with an ingredient value set for each
    of `drugs`; returns `into` (put it first on the import path)."""
    package = into / "fhir_mappings"
    shutil.copytree(ROOT / "fhir_mappings", package, ignore=shutil.ignore_patterns("__pycache__"))
    for drug in drugs:
        (package / "valuesets" / f"{drug}.json").write_text(
            json.dumps(ingredient_valueset(drug), indent=1), encoding="utf-8"
        )
    return into


def other_ingredients(taken: frozenset[str], count: int, valuesets: Path = VALUESETS) -> list[str]:
    """`count` drugs of the terminology that no pack decides, that have a product file with
    RxNorm codes and an RxNorm ingredient code, by name."""
    ingredients = ingredient_codes(valuesets)
    found = []
    for path in sorted((valuesets / "products").glob("*.json")):
        drug = path.stem
        products = json.loads(path.read_text(encoding="utf-8"))
        if drug not in taken and drug in ingredients and products.get("rxnorm"):
            found.append(drug)
    if len(found) < count:
        raise RuntimeError(f"only {len(found)} other ingredients in {valuesets}")
    return found[:count]


def drug_file(template: Mapping[str, Any], drug: str, valuesets: Path = VALUESETS) -> Json:
    """The template's drug.json re-pointed at `drug`: its ingredient code, its product codes
    (RxNorm, NDC, HCPCS) from its product file; route and unit kept."""
    products = json.loads((valuesets / "products" / f"{drug}.json").read_text(encoding="utf-8"))
    codes: list[Json] = []
    for system in ("rxnorm", "ndc", "hcpcs"):
        for item in products.get(system, []):
            code: Json = {"system": system, "code": item["code"], "display": item["display"]}
            if item.get("tty") not in (None, "not given"):
                code["tty"] = item["tty"]
            codes.append(code)
    return {
        **template,
        "ingredient": {"name": drug, "rxnorm": ingredient_codes(valuesets)[drug]},
        "brand": drug.capitalize(),
        "products": codes,
        "billing": {
            "hcpcs": [item["code"] for item in products.get("hcpcs", [])],
            "ndc": [item["code"] for item in products.get("ndc", [])],
        },
    }


def copy_pack(template: Path, into: Path, drug: str) -> Path:
    """A copy of the pack folder `template` deciding `drug`, as `into/<id>`; returns it."""
    pack_id = f"BENCH.{drug.upper()}"
    target = into / pack_id
    shutil.copytree(template, target, ignore=shutil.ignore_patterns("cases"))
    manifest = json.loads((target / "pack.json").read_text(encoding="utf-8"))
    manifest.update(id=pack_id, title=f"{drug} (copy of {manifest['id']} for a benchmark)")
    (target / "pack.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    policy = yaml.safe_load((target / "policy.yaml").read_text(encoding="utf-8"))
    policy.update(id=pack_id, drug=drug, title=manifest["title"])
    (target / "policy.yaml").write_text(
        yaml.safe_dump(policy, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    drug_json = json.loads((template / "drug.json").read_text(encoding="utf-8"))
    (target / "drug.json").write_text(
        json.dumps(drug_file(drug_json, drug), indent=1), encoding="utf-8"
    )
    return target


def build_pack_folder(
    into: Path, total: int = PACKS, source: Path | None = None
) -> tuple[Path, list[str]]:
    """`into` filled with the packs of `source` (default: the packaged ones) plus copies of
    `TEMPLATE` up to `total` packs; returns `into` and the copies' ingredients."""
    source = source or packs_dir()
    packaged = load_packs(source)
    for pack in packaged.packs.values():
        shutil.copytree(pack.directory, into / pack.directory.name)
    template = packaged.packs[TEMPLATE].directory
    drugs = other_ingredients(packaged.ingredients, total - len(packaged.packs))
    for drug in drugs:
        copy_pack(template, into, drug)
    return into, drugs


def run_with_terminology(terminology: Path, args: Sequence[str]) -> str:
    """Run this module with `args` in a child process importing `terminology`'s
    `fhir_mappings` (the rest from the checkout); returns its output."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(terminology), str(ROOT)])}
    result = subprocess.run(  # noqa: S603 - this interpreter, this module, fixed arguments
        [sys.executable, "-P", "-m", "benchmarks.many_packs", *args],
        cwd=terminology,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{result.stderr[-3000:]}")
    return result.stdout


def ten_pack_ids(workdir: Path) -> list[str]:
    """Build the ten-pack folder and its terminology in `workdir` and load the packs there,
    as the service does at start-up; the ids of the packs loaded."""
    packs, drugs = build_pack_folder(workdir / "packs")
    terminology = shadow_terminology(workdir / "terminology", drugs)
    out = run_with_terminology(terminology, ["--load-only", "--packs", str(packs)])
    ids: list[str] = json.loads(out.strip().splitlines()[-1])
    return ids


# --------------------------------------------------------------------------- measuring


def _service_id() -> str:
    for path in sorted((ROOT / "hooks" / "services").glob("*.json")):
        definition = json.loads(path.read_text(encoding="utf-8"))
        if definition.get("hook") == HOOK:
            return str(definition["id"])
    raise RuntimeError(f"no {HOOK} service in hooks/services/")


@contextmanager
def in_process_service(packs: Path) -> Iterator[Any]:
    """A Flask test client of the service reading the packs of `packs`."""
    from cds_service import create_app

    app = create_app(
        {
            "CDS_AUTH": "disabled",
            "CDS_HOOKS_DIR": str(ROOT / "hooks"),
            "CDS_DATABASE_URL": "sqlite://",
            "CDS_POLICY_PACKS_DIR": str(packs),
        }
    )
    yield app.test_client()


def _deciding_pack(answer: Mapping[str, Any]) -> str:
    """The id of the pack named in the answer's evaluation extension."""
    for entries in answer.get("extension", {}).values():
        for entry in entries if isinstance(entries, list) else []:
            policy = entry.get("policy") if isinstance(entry, Mapping) else None
            if isinstance(policy, Mapping):
                return str(policy.get("id"))
    return "none"


def measure(
    clients: Mapping[str, Any], body: bytes, calls: int, warmup: int = 20
) -> dict[str, list[float]]:
    """Seconds per call of each client, the clients taking turns (first one alternating)."""
    path = f"/cds-services/{_service_id()}"
    names = list(clients)
    for name in names:
        for _ in range(warmup):
            resp = clients[name].post(path, data=body, content_type="application/json")
            if resp.status_code != 200:
                raise RuntimeError(f"{name}: HTTP {resp.status_code}")
            if _deciding_pack(resp.get_json()) != TEMPLATE:
                raise RuntimeError(f"{name}: the call was not decided by {TEMPLATE}")
    gc.collect()
    times: dict[str, list[float]] = {name: [] for name in names}
    for n in range(calls):
        for name in names if n % 2 == 0 else reversed(names):
            start = time.perf_counter()
            clients[name].post(path, data=body, content_type="application/json")
            times[name].append(time.perf_counter() - start)
    return times


def load_time(folder: Path, repeats: int = 5) -> float:
    """Median seconds to load and validate every pack of `folder` (start-up)."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        load_packs(folder)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def routing_time(registry: Registry, drug: str, repeats: int = 100_000) -> float:
    """Mean seconds of one routing lookup by ingredient (a dict get)."""
    start = time.perf_counter()
    for _ in range(repeats):
        registry.for_ingredient(drug)
    return (time.perf_counter() - start) / repeats


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def summary(times: Mapping[str, Sequence[float]]) -> dict[str, Json]:
    out = {}
    for name, sample in times.items():
        q = statistics.quantiles(sample, n=4)
        out[name] = {"p50": statistics.median(sample), "q1": q[0], "q3": q[2], "n": len(sample)}
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.many_packs")
    parser.add_argument("--calls", type=int, default=300, help="calls per app (default 300)")
    parser.add_argument("--size", type=int, default=500, help="prefetch resources (default 500)")
    parser.add_argument("--packs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--load-only", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _check_terminology() -> None:
    import fhir_mappings

    if Path(fhir_mappings.__file__).resolve().is_relative_to(ROOT):
        raise RuntimeError("the child process imported the checkout's terminology")


def measure_main(args: argparse.Namespace) -> None:
    """In the child process: time 2 vs 10 packs and print the figures."""
    from benchmarks.workload import order_sign_request

    _check_terminology()
    many = args.packs
    packaged = packs_dir()
    few_registry, many_registry = load_packs(packaged), load_packs(many)
    few_label = f"{len(few_registry.packs)} packs"
    many_label = f"{len(many_registry.packs)} packs"
    print(f"{many_label}: {', '.join(sorted(many_registry.packs))}", flush=True)
    print(
        f"load and validate at start-up: {few_label} {_ms(load_time(packaged))}, "
        f"{many_label} {_ms(load_time(many))}",
        flush=True,
    )
    drug = few_registry.packs[TEMPLATE].drug.ingredient
    print(
        f"routing lookup: {few_label} {routing_time(few_registry, drug) * 1e9:.0f} ns, "
        f"{many_label} {routing_time(many_registry, drug) * 1e9:.0f} ns",
        flush=True,
    )
    body = json.dumps(order_sign_request(args.size)).encode()
    with in_process_service(packaged) as few, in_process_service(many) as lots:
        times = measure({few_label: few, many_label: lots}, body, args.calls)
    stats = summary(times)
    for name, s in stats.items():
        print(
            f"order-sign, {args.size} resources, {name}: median {_ms(s['p50'])} "
            f"(quartiles {_ms(s['q1'])} to {_ms(s['q3'])}, {s['n']} calls)"
        )
    difference = stats[many_label]["p50"] - stats[few_label]["p50"]
    print(
        f"difference of the medians: {difference * 1000:+.2f} ms "
        f"({difference / stats[few_label]['p50']:+.1%})"
    )
    paired = [b - a for a, b in zip(times[few_label], times[many_label], strict=True)]
    slower = sum(d > 0 for d in paired) / len(paired)
    print(
        f"call by call ({many_label} minus {few_label}, same round): median "
        f"{statistics.median(paired) * 1000:+.2f} ms; {many_label} slower in {slower:.0%} "
        "of the rounds (about 50% when there is no difference)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load_only:
        _check_terminology()
        print(json.dumps(sorted(load_packs(args.packs).packs)))
        return 0
    if args.packs is not None:
        measure_main(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="cds-packs-") as tmp:
        packs, drugs = build_pack_folder(Path(tmp) / "packs")
        print(f"copies of {TEMPLATE} for: {', '.join(drugs)}", flush=True)
        terminology = shadow_terminology(Path(tmp) / "terminology", drugs)
        child = ["--packs", str(packs), "--calls", str(args.calls), "--size", str(args.size)]
        print(run_with_terminology(terminology, child), end="", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
