"""JSON text parsed with orjson where that gives exactly what `json.loads` gives.

orjson parses a request body several times faster than the standard library. Where the two
could differ, the standard parser decides, so every accepted body reads the same and every
refused one is refused with the same message as before:

- anything orjson refuses (invalid JSON, NaN / Infinity, numbers beyond a float, UTF-16/32
  or a byte-order mark, escaped lone surrogates, nesting past its own limit) is handed to
  the caller's `fallback`, the standard parser with its checks and error messages;
- text with a run of 19 or more digits is never given to orjson: it reads an integer
  beyond 64 bits as a float, where `json.loads` keeps the exact integer.

`read` also says which parser decided. A text orjson read holds no lone surrogate: orjson
takes UTF-8 only (no byte-order mark), refuses the UTF-8 bytes of a surrogate, and refuses
an escaped surrogate that is not half of a high-low pair, so the caller need not look for
one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson

T = TypeVar("T")

_DIGITS_ONLY = bytes(0x39 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
"""Every digit becomes `9`, every other byte a space: a run of 19 digits is then a plain
substring search (several times faster than a regular expression over a large body)."""
_LONG_RUN = b"9" * 19


def loads(data: bytes, fallback: Callable[[bytes], T]) -> Any:
    """`data` parsed by orjson, or `fallback(data)` wherever orjson might not give what the
    standard parser gives (see the module docstring)."""
    return read(data, fallback)[0]


def has_long_digit_run(data: bytes) -> bool:
    """Whether `data` holds a run of 19 or more digits (then orjson is not asked)."""
    return _LONG_RUN in data.translate(_DIGITS_ONLY)


def read(
    data: bytes, fallback: Callable[[bytes], T], *, long_digit_run: bool | None = None
) -> tuple[Any, bool]:
    """(`loads(data, fallback)`, whether orjson read it): True means `data` was UTF-8 JSON
    text without a byte-order mark and without a lone surrogate, escaped or not.

    `long_digit_run`: `has_long_digit_run(data)` when the caller already knows it."""
    if long_digit_run is None:
        long_digit_run = has_long_digit_run(data)
    if not long_digit_run:
        try:
            return orjson.loads(data), True
        except orjson.JSONDecodeError:
            pass
    return fallback(data), False
