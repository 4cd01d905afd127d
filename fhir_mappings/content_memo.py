"""A bounded memo keyed by the content of JSON values, for pure readers of chart data.

A chart repeats the same few codes thousands of times (every CRP result has the same
`code`, every fill of one drug the same `medicationCodeableConcept`), and some readers
(`conditions.classify_concept`, `medications._identify_concepts`) depend on nothing but
that value and the value sets loaded at import. Their answers are kept by the value's JSON
text (a digest of it when long): equal text, equal value, equal answer. A value whose text
would not tell it apart (orjson writes NaN and infinities as `null`; so no value with a
`null` is keyed), that orjson cannot write, or that holds anything but JSON's own types
(`EXACT_TEXT`) is computed every time. At most `capacity`
answers are kept (the oldest go first), so a worker's memory stays flat
whatever it is sent. Answers must be immutable (tuples, frozensets, strings) or copied by
the caller.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable
from typing import Any, Final, Generic, TypeVar

import orjson

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


EXACT_TEXT: Final = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
"""orjson options for a text that stands for a value: only JSON's own types are written (a
date object, a dataclass or a subclass of str would be written as the plain JSON of another
value and read differently; with these options orjson refuses them instead, so no key)."""

_SHORT: Final = 160
"""Texts up to this long are kept as they are; longer ones by their SHA-256 digest, so that
a kept key never takes more than a few hundred bytes whatever the chart holds."""


def content_key(value: Any) -> bytes | None:
    """The value's JSON text (or its digest, when long), or None when it cannot stand for
    the value exactly."""
    try:
        text = orjson.dumps(value, option=EXACT_TEXT)
    except (orjson.JSONEncodeError, TypeError):
        return None
    if b"null" in text:
        return None
    return text if len(text) <= _SHORT else hashlib.sha256(text).digest()


class ContentMemo(Generic[T]):
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._answers: dict[bytes, T] = {}
        self._lock = threading.Lock()

    def get(self, value: Any, compute: Callable[[], T]) -> T:
        """The answer kept for `value`, else `compute()` (kept when `value` can be keyed)."""
        return self.get_keyed(content_key(value), compute)

    def get_keyed(self, key: bytes | None, compute: Callable[[], T]) -> T:
        """The answer kept under `key` (a `content_key`, or another digest that stands for
        the value exactly), else `compute()`, kept unless `key` is None."""
        if key is None:
            return compute()
        # A hit takes no lock: one look-up in a dict is atomic, and answers are immutable.
        try:
            return self._answers[key]
        except KeyError:
            pass
        answer = compute()
        with self._lock:
            self._answers[key] = answer
            if len(self._answers) > self._capacity:
                # The oldest answer goes first (dicts keep insertion order).
                del self._answers[next(iter(self._answers))]
        return answer

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()

    def __len__(self) -> int:
        return len(self._answers)


class WeightedMemo(Generic[K, T]):
    """A bounded memo whose answers differ in size (a chart of 50 resources or of 20,000):
    each answer is added with its weight, and the oldest answers go first once the weights
    kept add up to more than `capacity`. An answer heavier than `capacity` is not kept.
    Answers must be immutable."""

    def __init__(self, capacity: int, *, dropped: Callable[[K, T], None] | None = None) -> None:
        self._capacity = capacity
        self._answers: dict[K, tuple[T, int]] = {}
        self._weight = 0
        self._lock = threading.Lock()
        self._dropped = dropped
        """Told of each answer that goes to make room (not of those `clear` empties)."""

    def get(self, key: K) -> T | None:
        kept = self._answers.get(key)  # one look-up in a dict is atomic: no lock
        return kept[0] if kept is not None else None

    def add(self, key: K, answer: T, *, weight: int) -> bool:
        """Keep `answer`; False when it is not kept (too heavy, or `key` is kept)."""
        if weight > self._capacity:
            return False
        with self._lock:
            if key in self._answers:
                return False
            self._answers[key] = (answer, weight)
            self._weight += weight
            while self._weight > self._capacity:
                oldest = next(iter(self._answers))  # dicts keep insertion order
                gone, gone_weight = self._answers.pop(oldest)
                self._weight -= gone_weight
                if self._dropped is not None:
                    self._dropped(oldest, gone)
        return True

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()
            self._weight = 0

    def items(self) -> list[tuple[K, T]]:
        """Every key and answer kept, oldest first."""
        with self._lock:
            return [(key, kept[0]) for key, kept in self._answers.items()]

    def __len__(self) -> int:
        return len(self._answers)
