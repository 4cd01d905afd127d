"""The only module that imports `fhir.resources.R4B`.

`parse_resources` indexes the resources of the types the policy uses by type and id, once per
call, and validates each against the FHIR R4 models the first time a reader asks for it
(see `Parsed`). Anything it cannot use is reported as a problem (`Type/id: field: what is
wrong`, never the value) and left out; nothing raises.

Record identity:
- the same resource (type and id) sent more than once (prefetch and a fetched page, two
  versions) is read once, from its newest valid copy (`fields.compare_versions`: meta.versionId
  as a number, then meta.lastUpdated, then versionId as text; a tie keeps the first copy);
- a resource without an `id` is read like any other (nothing can reference it); it gets an
  internal reference `Type (no id, #<8 hex>)` from a hash of its body, so identical id-less
  copies are read once and the reference is the same whichever path brought it.

Liberal where the meaning is clear, before validation:
- a list field sent as one object is wrapped in a list (the CDS Hooks sandbox sends
  MedicationRequest.category that way);
- Encounter.class sent as a list (R5 style) keeps its first coding;
- unknown fields are reported and ignored, the rest of the resource is kept.

Performance (fhir.resources 8.3 / pydantic 2.14, see docs/benchmarks.md): validating one
small Observation costs about 0.1 ms, so a chart of 5,000 resources took 0.5 s to validate
in full. Readers therefore screen the unvalidated resources first (an Observation whose
code is in no value set, a medication record of a drug in no value set, cannot matter) and
validate only those that can; a malformed resource the policy uses is still reported and
left out. Two shortcuts give the models' verdict without running them: a body already seen
valid in this process (by its content digest, `_SeenValid`), and a body of a shape the
models accepted before whose every value passes the library's own check of its type
(`fast_validation`). Anything else, and every body with a problem, goes to the models.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cmp_to_key
from typing import Any, Final, TypeVar

import orjson
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.coverage import Coverage
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.explanationofbenefit import ExplanationOfBenefit
from fhir.resources.R4B.medication import Medication
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationdispense import MedicationDispense
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from fhir_mappings import budget, fast_validation
from fhir_mappings.content_memo import EXACT_TEXT, WeightedMemo
from fhir_mappings.fields import LOCAL_REF_KEY, compare_versions, ref_of

Json = Mapping[str, Any]
T = TypeVar("T")

_MODELS: Final[Mapping[str, Any]] = {
    "AllergyIntolerance": AllergyIntolerance,
    "CareTeam": CareTeam,
    "Claim": Claim,
    "Condition": Condition,
    "Coverage": Coverage,
    "Encounter": Encounter,
    "ExplanationOfBenefit": ExplanationOfBenefit,
    "Medication": Medication,
    "MedicationAdministration": MedicationAdministration,
    "MedicationDispense": MedicationDispense,
    "MedicationRequest": MedicationRequest,
    "MedicationStatement": MedicationStatement,
    "Observation": Observation,
    "Patient": Patient,
    "Practitioner": Practitioner,
    "PractitionerRole": PractitionerRole,
    "ServiceRequest": ServiceRequest,
}

# List fields that clients are known to send as a single object.
_LIST_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "MedicationRequest": ("category", "dosageInstruction", "reasonCode", "reasonReference"),
    "MedicationStatement": ("dosage", "reasonCode", "reasonReference"),
    "MedicationDispense": ("dosageInstruction", "authorizingPrescription"),
    "Condition": ("category",),
    "Observation": ("category", "interpretation", "component"),
    "PractitionerRole": ("specialty", "code"),
    "ServiceRequest": ("category", "reasonCode"),
    "AllergyIntolerance": ("category", "reaction"),
    # Claims feeds send one-line lists as objects too; `item` and `supportingInfo` are
    # the lists the medication history reads.
    "Claim": ("item", "supportingInfo"),
    "ExplanationOfBenefit": ("item", "supportingInfo", "total"),
}

_PLAIN: Final[Mapping[str, str]] = {
    "missing": "required field missing",
    "extra_forbidden": "unknown field",
    "string_type": "not a text value",
    "list_type": "should be a list",
    "dict_type": "should be an object",
    "model_type": "should be an object",
    "model_attributes_type": "should be an object",
    "literal_error": "not an allowed code",
    "enum": "not an allowed code",
    "bool_type": "not true/false",
    "bool_parsing": "not true/false",
    "int_type": "not a whole number",
    "int_parsing": "not a whole number",
    "float_type": "not a number",
    "float_parsing": "not a number",
    "decimal_type": "not a number",
    "decimal_parsing": "not a number",
}


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(resource)"


def _plain(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind in _PLAIN:
        return _PLAIN[kind]
    message = str(error.get("msg", "")).lower()
    if "decimal" in message or "number" in message:
        return "not a number"
    if "date" in message or "time" in message:
        return "not a valid date/time"
    if "regex" in message or "pattern" in message:
        return "not in the required format"
    return "invalid value"


_DOSAGE_FIELDS: Final = ("dosageInstruction", "dosage")
_DOSAGE_LIST_FIELDS: Final = ("doseAndRate", "additionalInstruction")
"""Lists inside a Dosage that clients send as one object (the CDS Hooks library's own R4
order-select example sends `doseAndRate` so)."""


def _needs_wrap(dosage: Any) -> bool:
    if not isinstance(dosage, Mapping):
        return False
    for key in _DOSAGE_LIST_FIELDS:
        value = dosage.get(key)
        if value is not None and type(value) is not list and isinstance(value, Mapping):
            return True
    return False


def _wrap_dosage(dosage: Any) -> Any:
    if not _needs_wrap(dosage):
        return dosage
    out = dict(dosage)
    for key in _DOSAGE_LIST_FIELDS:
        if isinstance(out.get(key), Mapping):
            out[key] = [out[key]]
    return out


def normalise(resource: Json) -> dict[str, Any]:
    """A shallow copy with the clear-meaning fixes applied (never mutates the input)."""
    out = dict(resource)
    for key in _LIST_FIELDS.get(str(out.get("resourceType")), ()):
        if isinstance(out.get(key), Mapping):
            out[key] = [out[key]]
    for key in _DOSAGE_FIELDS:
        dosages = out.get(key)
        if isinstance(dosages, list) and any(_needs_wrap(d) for d in dosages):
            out[key] = [_wrap_dosage(d) for d in dosages]
    if out.get("resourceType") == "Encounter" and isinstance(out.get("class"), list):
        first = out["class"][0] if out["class"] else None
        if isinstance(first, Mapping) and isinstance(first.get("coding"), list):
            first = first["coding"][0] if first["coding"] else None
        if isinstance(first, Mapping):
            out["class"] = first
        else:
            del out["class"]
    return out


def _checked_fields(fields: Sequence[str]) -> tuple[tuple[str, bool, bool], ...]:
    keys = dict.fromkeys((*fields, *_DOSAGE_FIELDS))
    return tuple((key, key in fields, key in _DOSAGE_FIELDS) for key in keys)


_CHECKED_FIELDS: Final = {rtype: _checked_fields(fields) for rtype, fields in _LIST_FIELDS.items()}
"""The fields `normalise` may change, by resource type: (field, a list field that may come
as one object, a dosage field whose items may hold such lists)."""
_CHECKED_DOSAGE: Final = _checked_fields(())


def _already_normal(rtype: str, resource: Json) -> bool:
    """`normalise` would change nothing, and the resource carries no internal reference."""
    if LOCAL_REF_KEY in resource:
        return False
    for key, a_list, a_dosage in _CHECKED_FIELDS.get(rtype, _CHECKED_DOSAGE):
        value = resource.get(key)
        if value is None:
            continue
        if type(value) is list:
            if a_dosage and any(_needs_wrap(d) for d in value):
                return False
        elif a_list and isinstance(value, Mapping):
            return False
    return not (rtype == "Encounter" and isinstance(resource.get("class"), list))


class _SeenValid:
    """Keys of resource bodies that validated with no problem in this process, at most
    `capacity` of them (the oldest go first), so that a chart sent again (the same
    patient's next call, order-select then order-sign) is not validated again.
    Validation depends on nothing but the body, so a body seen valid is valid."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._keys: dict[bytes, None] = {}
        self._lock = threading.Lock()

    def seen(self, key: bytes) -> bool:
        # No lock: one membership test of a dict is atomic.
        return key in self._keys

    def add(self, key: bytes) -> None:
        with self._lock:
            self._keys[key] = None
            if len(self._keys) > self._capacity:
                del self._keys[next(iter(self._keys))]  # dicts keep insertion order

    def __len__(self) -> int:
        return len(self._keys)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


_VALID: Final = _SeenValid(capacity=50_000)
_AS_SENT: Final = _SeenValid(capacity=50_000)
"""Keys of bodies (as sent) that `normalise` leaves as they are: a chart sent again is
indexed without looking for something to fix in each resource again."""


def forget_validated() -> None:
    """Forget every body seen valid or seen needing no fixing (the benchmark's first-sight
    figures)."""
    _VALID.clear()
    _AS_SENT.clear()
    _CHARTS.clear()


def _content_key(data: Mapping[str, Any]) -> bytes | None:
    """A digest of the body, keys sorted; None when the text would not tell every body apart
    (orjson writes NaN and infinities as `null`, so no body with a `null` is keyed; a value
    orjson cannot write, such as an integer beyond 64 bits, or one that is not of a JSON
    type, `EXACT_TEXT`, is not keyed either)."""
    try:
        text = orjson.dumps(data, option=orjson.OPT_SORT_KEYS | EXACT_TEXT)
    except (orjson.JSONEncodeError, TypeError):
        return None
    if b"null" in text:
        return None
    return hashlib.sha256(text).digest()  # SHA-256: the fastest digest here (CPU support)


def validate(resource: Json) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """Validate one resource of a used type. Returns (normalised copy or None, problems).

    Only unknown fields are forgiven (reported, ignored); any other error leaves the
    resource out."""
    budget.check()
    model = _MODELS.get(str(resource.get("resourceType")))
    if model is None:
        return None, ()
    data = normalise(resource)
    internal = data.pop(LOCAL_REF_KEY, None)  # ours (see parse_resources), never validated
    return _validated(model, data, _content_key(data), internal, ref_of(resource))


def _validated(
    model: Any, data: dict[str, Any], key: bytes | None, internal: Any, label: str
) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """`validate` of a normalised copy `data` (without the internal reference, given
    apart as `internal`) whose content key is `key`."""
    valid: dict[str, Any] | None
    problems: tuple[str, ...]
    if key is not None and _VALID.seen(key):
        valid, problems = data, ()
    else:
        valid, problems = _checked(model, data, label)
        if key is not None and valid is not None and not problems:
            _VALID.add(key)
    if valid is not None and isinstance(internal, str) and not valid.get("id"):
        valid[LOCAL_REF_KEY] = internal
    return valid, problems


def _checked(
    model: Any, data: dict[str, Any], label: str
) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    if fast_validation.certainly_valid(model, data):  # a shape seen valid, values checked
        return data, ()
    try:
        instance = model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        extras = [e for e in errors if e.get("type") == "extra_forbidden"]
        problems = tuple(sorted({f"{label}: {_loc(e['loc'])}: {_plain(e)}" for e in errors}))
        if len(extras) != len(errors):
            return None, tuple(p + " (resource left out)" for p in problems)
        for extra in extras:
            loc = extra["loc"]
            if len(loc) == 1 and isinstance(loc[0], str):
                data.pop(loc[0], None)
        return data, tuple(p + ", ignored" for p in problems)
    except (TypeError, ValueError) as exc:
        return None, (f"{label}: could not be read ({exc.__class__.__name__})",)
    fast_validation.learn(model, data, instance)
    return data, ()


def _newest_first(a: _Entry, b: _Entry) -> int:
    return compare_versions(b.raw, a.raw)


@dataclass(slots=True)
class _Entry:
    index: int
    ref: str
    rtype: str
    raw: Json
    """The normalised copy (with the internal reference of a resource without an id)."""
    data: dict[str, Any] | None = None
    checked: bool = False
    key: bytes | None = None
    keyed: bool = False

    def content_key(self) -> bytes | None:
        """The digest of the body (`_content_key`, the internal reference left out),
        computed once: validation and the readers' memos share it."""
        if not self.keyed:
            self.keyed = True
            body = self.raw
            if LOCAL_REF_KEY in body:
                body = {k: v for k, v in body.items() if k != LOCAL_REF_KEY}
            self.key = _content_key(body)
        return self.key


class _LazyRefs(Mapping[str, Json]):
    """`Type/id` -> the validated resource, validated on first look-up."""

    def __init__(self, parsed: Parsed) -> None:
        self._parsed = parsed

    def __getitem__(self, ref: str) -> Json:
        found = self._parsed.resolve(ref)
        if found is None:
            raise KeyError(ref)
        return found

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, str) and self._parsed.resolve(ref) is not None

    def __iter__(self) -> Iterator[str]:
        return iter([ref for ref in self._parsed.refs() if self._parsed.resolve(ref) is not None])

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Parsed:
    """The resources of one call, indexed once by type and id, validated on demand.

    Each resource is validated the first time something reads it, and at most once per
    call: `by_ref[...]` and `of_type(...)` validate what they return; `candidates(...)`
    hands out the unvalidated (normalised) resources of a type so that a reader can skip
    those that cannot matter to the policy and `accept` only the others. The result is the
    same as validating everything up front, except that a malformed resource nobody reads
    is not reported. Duplicates (same type/id): the newest copy that is valid is kept
    (`fields.compare_versions`; on a tie, the first).

    One `Parsed` belongs to one call (it memoises validation results); never share it.
    """

    def __init__(self, entries: Sequence[_Entry], early_problems: Sequence[tuple[int, str]]):
        self._entries = tuple(entries)
        self._by_ref: dict[str, list[_Entry]] = {}
        self._by_type: dict[str, list[_Entry]] = {}
        for entry in self._entries:
            self._by_ref.setdefault(entry.ref, []).append(entry)
            self._by_type.setdefault(entry.rtype, []).append(entry)
        for ref, copies in self._by_ref.items():
            if len(copies) > 1:  # newest first; a stable sort keeps input order on ties
                self._by_ref[ref] = sorted(copies, key=cmp_to_key(_newest_first))
        self._problems: list[tuple[int, str]] = list(early_problems)
        self._remembered: dict[tuple[str, int], tuple[Any, Any]] = {}

    def remember(self, name: str, resource: Any, compute: Callable[[], T]) -> T:
        """`compute()` for `resource` once per call: the answer of reader `name` (which
        depends on the resource and this call's resources only) is kept until the call
        ends. Keyed by the object's identity; the object is kept with the answer, so its
        identity cannot be reused while the answer is kept."""
        key = (name, id(resource))
        kept = self._remembered.get(key)
        if kept is not None and kept[0] is resource:
            answer: T = kept[1]
            return answer
        answer = compute()
        self._remembered[key] = (resource, answer)
        return answer

    @property
    def by_ref(self) -> Mapping[str, Json]:
        """`Type/id` -> validated resource. A fresh view on each access, so that the index
        holds no reference back to itself: a call's data is freed as soon as the call ends,
        not at the next full garbage collection."""
        return _LazyRefs(self)

    @property
    def problems(self) -> tuple[str, ...]:
        """Problems of the resources validated so far (and unusable input), in input order."""
        ordered = sorted(self._problems, key=lambda item: item[0])
        return tuple(text for _, text in ordered)

    def refs(self) -> list[str]:
        return list(self._by_ref)

    def _check(self, entry: _Entry) -> dict[str, Any] | None:
        if not entry.checked:
            entry.checked = True
            budget.check()
            key = entry.content_key()
            raw = entry.raw
            if key is not None and type(raw) is dict and _VALID.seen(key):
                # Seen valid: validation would give an unchanged copy of the body (the
                # internal reference of a resource without an id put back); the readers
                # never change what they read, so the body itself serves.
                entry.data = raw
                return raw
            # `validate(entry.raw)`, without normalising again (the entry is normalised)
            # or computing the content key twice.
            data = dict(entry.raw)
            internal = data.pop(LOCAL_REF_KEY, None)
            entry.data, found = _validated(
                _MODELS[entry.rtype], data, entry.content_key(), internal, ref_of(entry.raw)
            )
            self._problems.extend((entry.index, text) for text in found)
        return entry.data

    def resolve(self, ref: str) -> dict[str, Any] | None:
        """The newest valid copy of `ref`, or None."""
        for entry in self._by_ref.get(ref, ()):
            data = self._check(entry)
            if data is not None:
                return data
        return None

    def _wins(self, entry: _Entry) -> dict[str, Any] | None:
        """The entry's validated data when it is the copy of its ref that is kept."""
        for other in self._by_ref[entry.ref]:
            data = self._check(other)
            if data is not None:
                return data if other is entry else None
        return None

    def of_type(self, resource_type: str) -> tuple[Json, ...]:
        """Every kept resource of a type, validated, in input order."""
        out = []
        for entry in self._by_type.get(resource_type, ()):
            data = self._wins(entry)
            if data is not None:
                out.append(data)
        return tuple(out)

    def keyed_candidates(self, resource_type: str) -> tuple[tuple[Json, bytes | None], ...]:
        """`candidates` with each one's content key (see `_Entry.content_key`; None when
        the body cannot be keyed): a reader that depends on nothing but the body can keep
        its reading by this key."""
        return tuple((e.raw, e.content_key()) for e in self._by_type.get(resource_type, ()))

    def candidates(self, resource_type: str) -> tuple[Json, ...]:
        """The resources of a type before validation (normalised copies, input order).

        Read them only to decide whether one can matter; pass those that can to
        `accept` and use what it returns."""
        return tuple(entry.raw for entry in self._by_type.get(resource_type, ()))

    def accept(self, candidate: Json) -> dict[str, Any] | None:
        """The validated resource for a `candidates` item, or None when it is invalid or
        another copy of the same type/id is kept instead."""
        for entry in self._by_ref.get(_ref(candidate), ()):
            if entry.raw is candidate:
                return self._wins(entry)
        return None


def _ref(resource: Json) -> str:
    return ref_of(resource)


def local_ref(resource_type: str, resource: Json) -> str:
    """The internal reference of a resource without an id: its type and the first 8 hex
    digits of a SHA-256 of its body (keys sorted), e.g. "Condition (no id, #1a2b3c4d)".
    Stable across calls, data paths and input order; identical bodies share it."""
    body = json.dumps(resource, sort_keys=True, default=str, ensure_ascii=True)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()[:8]
    return f"{resource_type} (no id, #{digest})"


_CHARTS: Final[WeightedMemo[bytes, tuple[bytes | None, ...]]] = WeightedMemo(capacity=100_000)
"""The content keys of the resources of charts seen before, by the chart's digest
(`chart_key`): a chart sent again (order-select then order-sign, a retry, the next
order-select while the order is edited) is keyed with one digest instead of one per
resource. At most 100,000 keys in all (the oldest charts go first)."""


@dataclass(frozen=True)
class ChartKey:
    """A digest of the text of every resource of a call, in order (`chart_key`)."""

    digest: bytes
    exact: bool
    """The text holds no `null`, so it stands for the resources exactly (orjson writes a
    NaN as `null` too). Per-resource keys do not need this (a resource whose text holds a
    `null` has no key of its own, `_content_key`); a memo of the whole chart does."""


def chart_key(resources: Sequence[Any]) -> ChartKey | None:
    """The key of the resources of a call, or None when orjson cannot write them. Equal
    text, equal resources in the same order, so equal keys one by one."""
    try:
        text = orjson.dumps(
            resources if isinstance(resources, list | tuple) else list(resources),
            option=EXACT_TEXT,
        )
    except (orjson.JSONEncodeError, TypeError):
        return None
    return ChartKey(hashlib.sha256(text).digest(), b"null" not in text)


def parse_resources(resources: Sequence[Any]) -> Parsed:
    """`parse_charted` of the resources and their `chart_key`."""
    return parse_charted(resources, chart_key(resources))


def parse_charted(resources: Sequence[Any], chart: ChartKey | None) -> Parsed:
    """Index the resources of the types the policy uses (validated on demand, see
    `Parsed`); ignore the others. Unusable input is reported at once.

    Each resource with an id is keyed here (`_content_key`; the keys of a chart seen
    before come from `_CHARTS`): the key marks a body seen needing no fix (`_AS_SENT`),
    and the readers' memos and validation use it. `chart`: the resources' `chart_key`."""
    entries: list[_Entry] = []
    problems: list[tuple[int, str]] = []
    digest = chart.digest if chart is not None else None
    known = _CHARTS.get(digest) if digest is not None else None
    fresh: list[bytes | None] = []
    for index, resource in enumerate(resources):
        if index % 64 == 0:
            budget.check()
        key: bytes | None = None
        entry = _index(index, resource, problems, known[index] if known is not None else None)
        if entry is not None:
            entries.append(entry)
            key = entry.key if entry.keyed else None
        fresh.append(key)
    if digest is not None and known is None:
        _CHARTS.add(digest, tuple(fresh), weight=len(fresh))
    return Parsed(entries, problems)


def _index(
    index: int, resource: Any, problems: list[tuple[int, str]], known: bytes | None
) -> _Entry | None:
    """The index entry of one resource (None: not one the policy uses, or unusable, then
    said in `problems`); `known`: its content key as sent, when the chart was seen."""
    if not (type(resource) is dict or isinstance(resource, Mapping)):
        problems.append((index, f"resources[{index}]: not a FHIR resource"))
        return None
    rtype = resource.get("resourceType")
    if type(rtype) is not str and not isinstance(rtype, str):
        problems.append((index, f"resources[{index}]: no resourceType"))
        return None
    if rtype not in _MODELS:
        return None
    rid = resource.get("id")
    if type(rid) is str and rid:
        key = known if known is not None else _content_key(resource)
        if key is not None and _AS_SENT.seen(key):
            # Seen before as sent: nothing to fix (indexed as it is, never mutated:
            # validation works on a copy).
            return _Entry(index, f"{rtype}/{rid}", rtype, resource, key=key, keyed=True)
        if _already_normal(rtype, resource):
            if key is not None:
                _AS_SENT.add(key)
            return _Entry(index, f"{rtype}/{rid}", rtype, resource, key=key, keyed=True)
    data = normalise(resource)
    data.pop(LOCAL_REF_KEY, None)  # only parse_resources sets it
    if isinstance(rid, str) and rid:
        ref = f"{rtype}/{rid}"
    else:
        ref = local_ref(rtype, data)
        data[LOCAL_REF_KEY] = ref
    return _Entry(index, ref, rtype, data)
