"""The validation shortcut (`fhir_mappings.fast_validation`) only ever says "valid" when the
FHIR models accept the body with no error, and it does say so for the real shapes it has
learned, so the verdicts of `r4.validate` are the same with it as without it.

Bodies: every resource of a validated type in the public sample charts and the benchmark
chart, and seeded mutations of them (a leaf replaced by an invalid date, an empty or
whitespace-only text, a value of another JSON type, a huge or out-of-range number, another
leaf's value; a key added, dropped or a choice type doubled; a null, an empty list or object;
a contained resource's type changed)."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation

from benchmarks import workload
from fhir_mappings import fast_validation, r4
from fhir_mappings.fields import LOCAL_REF_KEY
from tests.realworld.charts import load_charts

Body = dict[str, Any]
Path = tuple[str | int, ...]

_CHOICE_PREFIXES = (
    "value",
    "effective",
    "onset",
    "abatement",
    "medication",
    "deceased",
    "multipleBirth",
    "occurrence",
    "asNeeded",
    "dose",
    "rate",
    "reported",
    "serviced",
    "timing",
    "performed",
)


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    fast_validation.forget_shapes()
    yield
    fast_validation.forget_shapes()


@cache
def _real_bodies() -> tuple[tuple[str, Body], ...]:
    """(resource type, body as `r4._checked` sees it) for every resource of a validated type."""
    resources: list[Any] = [r for chart in load_charts() for r in chart.resources]
    chart, order = workload.chart(500)
    resources += [*chart, order]
    out = []
    for resource in resources:
        rtype = resource.get("resourceType")
        if rtype in r4._MODELS:
            data = r4.normalise(resource)
            data.pop(LOCAL_REF_KEY, None)
            out.append((str(rtype), data))
    return tuple(out)


def _accepted(model: Any, body: Body) -> Any | None:
    """The instance when the FHIR models accept the body with no error at all, else None."""
    try:
        return model.model_validate(body)
    except Exception:
        return None


def _learned() -> list[tuple[Any, Body]]:
    """Learn every real body the models accept; returns (model, body) for those."""
    valid = []
    for rtype, body in _real_bodies():
        model = r4._MODELS[rtype]
        instance = _accepted(model, body)
        if instance is not None:
            fast_validation.learn(model, body, instance)
            valid.append((model, body))
    return valid


def _paths(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _set(body: Body, path: Path, value: Any) -> Body:
    out = copy.deepcopy(body)
    target: Any = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


def _leaf_swaps(value: Any, pool: list[Any], rng: random.Random) -> list[Any]:
    """Replacements for one leaf: other JSON types, broken texts and numbers, other leaves."""
    out: list[Any] = [None, "", "   ", " x", "2021-13-45", "2020-06-30T23:59:60Z", "12"]
    out += [7, -1, 0, 2**31, 10**30, 1.5, -0.0, True, False, "true", [], {}, [value]]
    out += [rng.choice(pool) for _ in range(6)]
    if isinstance(value, str):
        out += [value + " ", " " + value, value.upper(), value[:-1] or "x", value + "\n"]
    if type(value) is int:
        out += [float(value), str(value), -value]
    if type(value) is float:
        out += [int(value), str(value)]
    return out


def _mutations(body: Body, pool: list[Any], rng: random.Random) -> Iterator[Body]:
    nodes = list(_paths(body))
    leaves = [(p, v) for p, v in nodes if p and not isinstance(v, dict | list)]
    objects = [(p, v) for p, v in nodes if isinstance(v, dict)]
    for path, value in rng.sample(leaves, min(4, len(leaves))):
        for swap in _leaf_swaps(value, pool, rng):
            yield _set(body, path, swap)
    for path, obj in rng.sample(objects, min(3, len(objects))):
        target = copy.deepcopy(body)
        node: Any = target
        for part in path:
            node = node[part]
        mutated = copy.deepcopy(node)
        mutated["bogus"] = "x"
        yield _set(body, path, mutated) if path else mutated
        for key in list(obj):
            dropped = {k: v for k, v in obj.items() if k != key}
            yield _set(body, path, dropped) if path else dropped
            if key == "resourceType":
                yield _set(body, (*path, key), "Patient")
            for prefix in _CHOICE_PREFIXES:
                rest = key[len(prefix) :]
                if key.startswith(prefix) and rest[:1].isupper():
                    for other, extra in (("String", "x"), ("Boolean", True), ("Quantity", {})):
                        if rest != other:
                            doubled = dict(obj)
                            doubled[prefix + other] = extra
                            yield _set(body, path, doubled) if path else doubled
                    doubled = dict(obj)
                    doubled[prefix + "Quantity"] = {"value": 1, "unit": "mg"}
                    yield _set(body, path, doubled) if path else doubled


def test_learned_real_shapes_are_answered_valid() -> None:
    valid = _learned()
    answered = sum(fast_validation.certainly_valid(model, body) for model, body in valid)
    assert len(valid) > 3000
    assert answered >= 0.95 * len(valid)


def test_valid_is_said_only_of_bodies_the_models_accept() -> None:
    valid = _learned()
    rng = random.Random(20261204)
    pool = [v for _, body in valid for _, v in _paths(body) if not isinstance(v, dict | list)]
    said_valid = rejected_with_known_shape = 0
    for model, body in rng.sample(valid, 120):
        for mutated in _mutations(body, pool, rng):
            if fast_validation.certainly_valid(model, mutated):
                said_valid += 1
                assert _accepted(model, mutated) is not None, mutated
            elif _known_shape(model, mutated) and _accepted(model, mutated) is None:
                rejected_with_known_shape += 1
    # the property was exercised both ways: learned shapes with other values passed and failed
    assert said_valid > 500
    assert rejected_with_known_shape > 500


def _known_shape(model: Any, body: Body) -> bool:
    shape, _ = fast_validation.shape_of(model, body)
    return fast_validation._SHAPES.get(shape) is not None


def _observation(value: Any, status: Any = "final") -> Body:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": "1988-5"}]},
        "effectiveDateTime": "2026-01-02T10:00:00Z",
        "valueQuantity": {"value": value, "unit": "mg/L"},
    }


@pytest.fixture
def model_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Bodies (their status) sent to the Observation model; memos emptied."""
    runs: list[str] = []
    real = Observation.model_validate

    def counting(data: Any, *args: Any, **kwargs: Any) -> Any:
        runs.append(str(data.get("status")))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(Observation, "model_validate", counting)
    monkeypatch.setattr(r4, "_VALID", r4._SeenValid(capacity=10))
    return runs


def test_a_known_shape_with_new_values_skips_the_model(model_runs: list[str]) -> None:
    assert r4.validate(_observation(3.5)) == (r4.normalise(_observation(3.5)), ())
    other = _observation(4.25, status="amended")
    assert r4.validate(other) == (r4.normalise(other), ())
    assert model_runs == ["final"]


def test_a_known_shape_with_a_bad_value_is_reported_as_before(model_runs: list[str]) -> None:
    r4.validate(_observation(3.5))
    data, problems = r4.validate(_observation(3.5, status="fin al  "))
    assert data is None
    assert problems == ("Observation/o1: status: not in the required format (resource left out)",)
    bad_date = _set(_observation(3.5), ("effectiveDateTime",), "2026-02-30")
    data, problems = r4.validate(bad_date)
    assert data is None
    assert problems == (
        "Observation/o1: effectiveDateTime: not a valid date/time (resource left out)",
    )
    assert model_runs == ["final", "fin al  ", "final"]


def test_unknown_fields_are_still_reported_and_ignored(model_runs: list[str]) -> None:
    r4.validate(_observation(3.5))
    with_extra = {**_observation(3.5), "colour": "red"}
    assert r4.validate(with_extra) == (
        r4.normalise(_observation(3.5)),
        ("Observation/o1: colour: unknown field, ignored",),
    )


def test_threads_sharing_the_memos_get_the_models_verdicts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Eight threads validating one chart with a few broken resources, through a shape memo
    small enough to evict all the time, give exactly the verdicts of the models alone."""
    chart, order = workload.chart(500)
    resources = [*chart, order]
    for index in range(0, len(resources), 7):
        resources[index] = {**resources[index], "id": "not an id"}
    with pytest.MonkeyPatch.context() as models_only:
        models_only.setattr(fast_validation, "certainly_valid", lambda model, body: False)
        models_only.setattr(r4, "_VALID", r4._SeenValid(capacity=1))
        expected = [r4.validate(resource) for resource in resources]
    monkeypatch.setattr(fast_validation, "_SHAPES", fast_validation._Shapes(capacity=4))
    monkeypatch.setattr(r4, "_VALID", r4._SeenValid(capacity=1))
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(2):
            assert list(pool.map(r4.validate, resources)) == expected
    assert sum(problems != () for _, problems in expected) >= len(resources) // 7
