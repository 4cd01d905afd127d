"""The fast JSON path reads every text exactly as the standard parser does, and hands over to
it (with its errors) wherever orjson would differ."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cds_service import fast_json


def _standard(data: bytes) -> Any:
    return json.loads(data)


def _exact(value: Any) -> str:
    """repr keeps what `==` hides: 1 against 1.0, -0.0 against 0.0, key order."""
    return repr(value)


_NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=10**18, max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
)
_LEAVES = st.one_of(st.none(), st.booleans(), _NUMBERS, st.text())
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(st.lists(inner), st.dictionaries(st.text(), inner)),
    max_leaves=30,
)


@given(_VALUES)
def test_every_value_reads_as_the_standard_parser_reads_it(value: Any) -> None:
    data = json.dumps(value).encode("utf-8")
    assert _exact(fast_json.loads(data, _standard)) == _exact(json.loads(data))


def test_a_whole_number_beyond_64_bits_stays_exact() -> None:
    data = b'{"value": 123456789012345678901234567890}'
    assert fast_json.loads(data, _standard) == {"value": 123456789012345678901234567890}


def test_what_orjson_refuses_goes_to_the_fallback() -> None:
    seen: list[bytes] = []

    def fallback(data: bytes) -> str:
        seen.append(data)
        return "standard"

    for text in (b"[NaN]", b"[1e400]", b'"\\ud800"', b"\xef\xbb\xbf{}", b"{", b"[1,]"):
        assert fast_json.loads(text, fallback) == "standard", text
    assert len(seen) == 6
    assert fast_json.loads(b'{"a": [1, 2.5, "x"]}', fallback) == {"a": [1, 2.5, "x"]}
    assert len(seen) == 6


def test_a_lone_surrogate_anywhere_is_seen_by_the_fast_check() -> None:
    from cds_service.cards.safe_text import holds_no_lone_surrogate

    assert holds_no_lone_surrogate({"cards": [{"summary": "plain text é ✓"}]})
    assert not holds_no_lone_surrogate({"cards": [{"summary": "bad \ud800 text"}]})
    assert not holds_no_lone_surrogate({"cards": [{"k\udfff": 1}]})
    assert not holds_no_lone_surrogate({1: "not a JSON key"})  # cannot tell: walk it
