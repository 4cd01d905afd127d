"""A shortcut for validating resource bodies of shapes already seen valid.

`certainly_valid(model, body)` answers True ("pydantic would accept this body with no error
at all") or False ("don't know"); on False the caller validates with the FHIR models as
before, so the shortcut can change how fast a verdict comes, never which verdict.

Shape. The shape of a body is its structure with the primitive values taken out: the keys of
every object in order, the length of every list, and the JSON type (str / int / float / bool,
exactly, so a bool is not an int) of every leaf, plus two values that choose code paths:
`resourceType` and `resource_type` (they pick the model of a contained resource and are
checked by `FHIRAbstractModel.__init__`), kept in the shape as they are. The top model class
is part of the shape too. Computing it checks nothing (it is on the fast path): only bodies
that are plain JSON with no null, no empty object, list or text, no whitespace-only text and
string `resourceType` values are ever learned (`_learnable`), and a body whose shape equals
a learned one is built the same way, so it has none of those either.

Learning. When the FHIR models accept a body with no error (`learn`), the body and the
validated model instance are walked side by side: every object is matched with the model
instance pydantic built for it, every key with the field of that instance's class whose alias
it is, and every leaf with the field's element annotation (Optional and List taken off), which
must be one of fhir_core's own primitive types (`FHIR_PRIMITIVES_MAPS`). The shape is then
stored with, per leaf, a checker: a pydantic `TypeAdapter` of exactly that annotation. A body
whose walk meets anything else (a key that is a field name rather than its alias, a field with
extra metadata, a complex field whose type is not a fhir_core model type, a class with a
validator, config or hook this module does not know) is not learned.

Answering. A body whose shape is stored is certainly valid when every leaf passes its checker
(and the checker's result is not None; an empty or whitespace-only text is never passed).
Why that is exactly pydantic's verdict:

1. Pydantic validates an object field by field: each key present is validated by its field's
   schema on its own, keys that are no field are `extra_forbidden`. The learned body had the
   same keys in every object (the shape), none of them extra, each mapped to the same field
   (same keys, so the same alias/name choice).
2. A nested object is validated by the model class fhir_core's `FhirBase` wrapper picks:
   a fixed class, or for `Resource`-typed fields (contained) the class named by the object's
   `resourceType`, a value in the shape. So every object meets the same class as in the
   learned body. Lists (plain `List[X]`, no constraints) validate each item alone.
3. A leaf is validated by its field's inner schema, which is the schema of the annotation the
   checker wraps (Optional only adds None, which never occurs); the classes' config holds only
   `extra`, `validate_assignment`, `populate_by_name`, none of which bears on a primitive
   schema; no fhir_core primitive validator reads anything but its own value. So a leaf passes
   its checker iff it passes inside the model.
4. What else runs looks only at which keys are present (the shape), never at leaf values:
   `FHIRAbstractModel.__init__` (the resourceType values, in the shape); the model validators
   `reject_null_complex_elements` (nulls in lists; there are none),
   `validate_after_model_construction` (required elements and one-of-many choice types:
   whether attributes are None; a present valid leaf gives a non-None attribute, checked, and
   a present object or list is never None) and `FHIRPrimitiveExtension`'s
   `validate_extension_or_fhir_comment_required` (whether `id`, `extension`, `fhir_comments`
   are present). Classes are learned only when their model validators are exactly these
   (compared by qualified name), they have no field validators, no other `__init__`,
   `model_validate`, core schema hook or `model_post_init`, and their fields are validated
   under their alias; `get_required_fields` and `get_one_of_many_fields` return fixed lists.

By induction over the body, every object validates as it did in the learned body, so the
whole body does, with no error. Anything not covered answers False and goes to pydantic.

Memory: at most `_SHAPE_CAPACITY` shapes (least recently used go first) and, per primitive
type, `_VALUES_PER_CHECKER` leaf values seen valid (texts up to `_LONGEST_KEPT` characters;
emptied when full). Both are safe under threads and gevent (a lock around the shape LRU;
single dict operations for the value memos). `forget_shapes()` empties both (the
benchmark's first-sight figures); the checkers (pydantic `TypeAdapter`s) and the per-class
field tables are kept, like the models' own compiled schemas.

Cost (benchmark chart, one Observation): about 10 µs for the shape and 5-10 µs for the leaf
checks, against about 150-370 µs for `model_validate`; learning a shape costs one
`model_validate` plus about 80 µs.
"""

from __future__ import annotations

import threading
import typing
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from fhir_core.constraints import FHIR_PRIMITIVES_MAPS
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase
from pydantic import BaseModel, TypeAdapter

_SHAPE_CAPACITY: Final = 4096
_VALUES_PER_CHECKER: Final = 10_000
_LONGEST_KEPT: Final = 256

_VALUE_KEYS: Final = frozenset({"resourceType", "resource_type"})
"""Keys whose values choose code paths; their values are part of the shape."""

_LIST: Final = object()
_END: Final = object()
_VALUE: Final = object()
_UNSURE: Final = object()
"""Shape tokens. An object is the tuple of its keys (strings) followed by its values' tokens;
a list is `_LIST`, its items' tokens, `_END`; a leaf is its type; the value of a
`_VALUE_KEYS` key is `(_VALUE, value)`, or `_UNSURE` when it is not a string (or a list
holds a list). No key equals a marker, so the kinds of token never meet and a token sequence
reads back one way only. Learned shapes never hold `_UNSURE`."""

_LEAF_TYPES: Final = (str, int, float, bool)

_CONFIG_KEYS: Final = frozenset({"extra", "validate_assignment", "populate_by_name"})
_MODEL_VALIDATORS: Final = frozenset(
    {
        "FHIRAbstractModel.reject_null_complex_elements",
        "FHIRAbstractModel.validate_after_model_construction",
        "FHIRPrimitiveExtension.validate_extension_or_fhir_comment_required",
    }
)

Shape = tuple[object, ...]


class _Checker:
    """Pydantic's own validation of one fhir_core primitive annotation, with the values it
    accepted (at most `_VALUES_PER_CHECKER`, emptied when full)."""

    def __init__(self, annotation: Any) -> None:
        self.annotation = annotation
        self._adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        self._accepted: dict[object, None] = {}

    def accepts(self, value: object) -> bool:
        # a text is its own key; other values go with their type (1, 1.0 and True are
        # equal in Python), floats by repr (so that -0.0 and 0.0 stay apart)
        kind = type(value)
        key = value if kind is str else (kind, repr(value))
        if key in self._accepted:
            return True
        if kind is str and not typing.cast(str, value).strip():
            return False  # empty or whitespace only: left to the models
        try:
            result = self._adapter.validate_python(value)
        except Exception:  # any failure: not certain, the models decide
            return False
        if result is None:
            return False
        if kind is not str or len(typing.cast(str, value)) <= _LONGEST_KEPT:
            if len(self._accepted) >= _VALUES_PER_CHECKER:
                self._accepted.clear()
            self._accepted[key] = None
        return True

    def forget(self) -> None:
        self._accepted.clear()


class _Shapes:
    """Shapes learned valid -> one checker per leaf; least recently used go first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[Shape, tuple[_Checker, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, shape: Shape) -> tuple[_Checker, ...] | None:
        with self._lock:
            found = self._items.get(shape)
            if found is not None:
                self._items.move_to_end(shape)
            return found

    def add(self, shape: Shape, checkers: tuple[_Checker, ...]) -> None:
        with self._lock:
            self._items[shape] = checkers
            self._items.move_to_end(shape)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_SHAPES: Final = _Shapes(_SHAPE_CAPACITY)
_CHECKERS: dict[Any, _Checker | None] = {}
_TRUSTED: dict[type, Mapping[str, _Field] | None] = {}
_BUILD_LOCK: Final = threading.Lock()


def forget_shapes() -> None:
    """Forget every learned shape and leaf value (the benchmark's first-sight figures)."""
    _SHAPES.clear()
    for checker in list(_CHECKERS.values()):
        if checker is not None:
            checker.forget()


# --- shapes -----------------------------------------------------------------------------------


def _walk(
    body: Mapping[str, object],
    push: Callable[[object], None],
    leaf: Callable[[object], None],
) -> None:
    push(tuple(body))
    for key, item in body.items():
        kind = type(item)
        if kind is dict:
            _walk(typing.cast(dict[str, object], item), push, leaf)
        elif kind is list:
            push(_LIST)
            for element in typing.cast(list[object], item):
                element_kind = type(element)
                if element_kind is dict:
                    _walk(typing.cast(dict[str, object], element), push, leaf)
                elif element_kind is list:
                    push(_UNSURE)
                else:
                    push(element_kind)
                    leaf(element)
            push(_END)
        elif key in _VALUE_KEYS:
            push((_VALUE, item) if kind is str else _UNSURE)
        else:
            push(kind)
            leaf(item)


def shape_of(model: type, body: Mapping[str, Any]) -> tuple[Shape, list[object]]:
    """(the body's shape, its leaf values in walk order). Cheap: it checks nothing, as only
    shapes that passed `_learnable` are ever stored and compared with."""
    tokens: list[object] = [model]
    leaves: list[object] = []
    _walk(body, tokens.append, leaves.append)
    return tuple(tokens), leaves


def _learnable(value: object) -> bool:
    """Plain JSON with string keys, no null, no empty object, list or text, no whitespace-only
    text, and string `resourceType` values: the only bodies whose shapes are learned."""
    kind = type(value)
    if kind is dict:
        items = typing.cast(dict[object, object], value)
        return bool(items) and all(
            type(key) is str and (type(item) is str if key in _VALUE_KEYS else _learnable(item))
            for key, item in items.items()
        )
    if kind is list:
        elements = typing.cast(list[object], value)
        return bool(elements) and all(
            type(element) is not list and _learnable(element) for element in elements
        )
    if kind is str:
        return bool(typing.cast(str, value).strip())
    return kind in _LEAF_TYPES


# --- answering --------------------------------------------------------------------------------


def certainly_valid(model: type, body: Mapping[str, Any]) -> bool:
    """True only when the FHIR model `model` would accept `body` with no error at all."""
    shape, leaves = shape_of(model, body)
    checkers = _SHAPES.get(shape)
    if checkers is None or len(checkers) != len(leaves):
        return False
    return all(checker.accepts(leaf) for checker, leaf in zip(checkers, leaves, strict=True))


# --- learning ---------------------------------------------------------------------------------


def learn(model: type, body: Mapping[str, Any], instance: object) -> None:
    """Remember the shape of `body`, which `model` has just accepted with no error as
    `instance`, when every part of it is understood (see the module docstring)."""
    if type(instance) is not model or not _learnable(body):
        return
    shape, leaves = shape_of(model, body)
    if _SHAPES.get(shape) is not None:
        return
    checkers: list[_Checker] = []
    if not _learn_object(typing.cast(dict[str, object], body), instance, checkers):
        return
    if len(checkers) == len(leaves):
        _SHAPES.add(shape, tuple(checkers))


@dataclass(frozen=True)
class _Field:
    """How one field of a trusted class takes a value: its attribute name, whether it is a
    list, and whether its (item) type is a fhir_core model type (`complex`) or a primitive
    with a `checker` (None: neither, so a body with this field is not learned)."""

    name: str
    is_list: bool
    complex: bool
    checker: _Checker | None


def _learn_object(body: dict[str, object], instance: object, out: list[_Checker]) -> bool:
    fields = _trusted_fields(type(instance))
    if fields is None:
        return False
    for key, item in body.items():
        if key in _VALUE_KEYS:
            continue
        field = fields.get(key)
        if field is None:
            return False
        attribute = getattr(instance, field.name, None)
        if type(item) is list:
            items = typing.cast(list[object], item)
            if not field.is_list or not isinstance(attribute, list):
                return False
            if len(attribute) != len(items):
                return False
            if not all(
                _learn_item(one, built, field, out)
                for one, built in zip(items, attribute, strict=True)
            ):
                return False
        elif field.is_list or not _learn_item(item, attribute, field, out):
            return False
    return True


def _learn_item(item: object, attribute: object, field: _Field, out: list[_Checker]) -> bool:
    if type(item) is dict:
        return (
            field.complex
            and isinstance(attribute, FHIRAbstractModel)
            and _learn_object(typing.cast(dict[str, object], item), attribute, out)
        )
    if field.checker is None or type(item) is list:
        return False
    out.append(field.checker)
    return True


_UNION_TYPE: Final = type(int | None)


def _without_none(annotation: Any) -> Any:
    """`X` for `Optional[X]` / `X | None`, else the annotation itself."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, _UNION_TYPE) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _field(name: str, annotation: Any) -> _Field:
    inner = _without_none(annotation)
    is_list = typing.get_origin(inner) is list
    if is_list:
        (inner,) = typing.get_args(inner)
        inner = _without_none(inner)
    complex_ = isinstance(inner, type) and issubclass(inner, FhirBase)
    return _Field(name, is_list, complex_, None if complex_ else _checker_for(inner))


def _checker_for(annotation: Any) -> _Checker | None:
    """The checker of a fhir_core primitive annotation, None for anything else."""
    try:
        if annotation not in FHIR_PRIMITIVES_MAPS:
            return None
        if annotation in _CHECKERS:
            return _CHECKERS[annotation]
    except TypeError:  # unhashable: not a primitive
        return None
    with _BUILD_LOCK:
        if annotation not in _CHECKERS:
            _CHECKERS[annotation] = _Checker(annotation)
        return _CHECKERS[annotation]


def _trusted_fields(cls: type) -> Mapping[str, _Field] | None:
    """alias -> field for a model class whose validation this module understands, None for
    any other class."""
    if cls in _TRUSTED:
        return _TRUSTED[cls]
    fields = _fields_if_trusted(cls)
    with _BUILD_LOCK:
        _TRUSTED[cls] = fields
    return fields


def _function(method: object) -> object:
    return getattr(method, "__func__", method)


def _qualname(method: object) -> str:
    return str(getattr(_function(method), "__qualname__", ""))


def _fields_if_trusted(cls: type) -> Mapping[str, _Field] | None:
    if not issubclass(cls, FHIRAbstractModel):
        return None
    config = dict(cls.model_config)
    if not set(config) <= _CONFIG_KEYS or config.get("extra") != "forbid":
        return None
    if cls.__init__ is not FHIRAbstractModel.__init__:
        return None
    if cls.model_post_init is not BaseModel.model_post_init:
        return None
    if _function(cls.model_validate) is not _function(BaseModel.model_validate) or _function(
        cls.__get_pydantic_core_schema__
    ) is not _function(BaseModel.__get_pydantic_core_schema__):
        return None
    if (
        cls.validate_after_model_construction
        is not FHIRAbstractModel.validate_after_model_construction
        or cls._validate_one_of_many is not FHIRAbstractModel._validate_one_of_many
        or cls._validate_required_primitive_elements
        is not FHIRAbstractModel._validate_required_primitive_elements
    ):
        return None
    decorators = cls.__pydantic_decorators__
    if decorators.validators or decorators.field_validators or decorators.root_validators:
        return None
    names = {_qualname(d.func) for d in decorators.model_validators.values()}
    if not names <= _MODEL_VALIDATORS:
        return None
    out: dict[str, _Field] = {}
    for name, info in cls.model_fields.items():
        if info.metadata or info.discriminator is not None:
            continue  # never matched: a key for it makes the body unlearnable
        key = info.alias or name
        if info.validation_alias not in (None, key):
            continue  # validated under another key (or an alias path): never matched
        out[key] = _field(name, info.annotation)
    return out
