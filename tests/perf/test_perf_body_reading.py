"""The request body is read with fewer passes over its bytes, and reads exactly as before.

`parse_json_body` skips the lone-surrogate scan when orjson read the body (orjson refuses
every lone surrogate), tests for an empty body without copying it, and takes the run-of-19-
digits check and the nesting check from one pass over a UTF-8 body (`_Scan`). The long way
below is the reader as it was; both must give the same value (repr: 1 against 1.0, key
order) or the same 400 for every text, surrogates escaped or raw, byte-order marks,
UTF-16/32, whitespace around, broken text, long digit runs, deep nesting, brackets and
escapes in strings.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cds_service import fast_json
from cds_service.api import _marks_nest_deeper, _Scan, _standard_loads, parse_json_body
from cds_service.errors import ApiError
from cds_service.http_guard import may_hold_lone_surrogates, replace_lone_surrogates

MAX_DEPTH = 8


_STRUCTURE = b'"[]{}'
_NOT_STRUCTURE = bytes(range(256)).translate(None, _STRUCTURE)


def _old_nesting_exceeds(data: bytes, limit: int) -> bool:
    """`api.json_nesting_exceeds` as it was."""
    encoding = json.detect_encoding(data)
    if encoding not in ("utf-8", "utf-8-sig"):
        data = data.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = data.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in marks:
        marks = b"".join(marks.split(b'"')[::2])
    brackets = marks.translate(bytes.maketrans(b"{}", b"[]"))
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


def _old_long_run(data: bytes) -> bool:
    return b"9" * 19 in data.translate(
        bytes(0x39 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
    )


def _long_way(data: bytes, max_depth: int) -> Any:
    """The reader before this change, step by step."""
    if not data.strip():
        raise ApiError("the request body is empty: expected a JSON object")
    try:
        body = fast_json.loads(data, _standard_loads)
    except json.JSONDecodeError as exc:
        raise ApiError(
            "the request body is not valid JSON",
            details=[{"message": f"{exc.msg} at line {exc.lineno} column {exc.colno}"}],
        ) from exc
    except RecursionError:
        too_deep = True
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            "the request body is not valid JSON", details=[{"message": "not UTF-8 JSON text"}]
        ) from exc
    else:
        too_deep = _old_nesting_exceeds(data, max_depth)
    if too_deep:
        raise ApiError(f"the request body nests deeper than {max_depth} levels", error="too-deep")
    if may_hold_lone_surrogates(data, json.detect_encoding(data)):
        body = replace_lone_surrogates(body)
    return body


def _outcome(read: Any, data: bytes) -> tuple[str, str]:
    try:
        return "value", repr(read(data, MAX_DEPTH))
    except ApiError as refused:
        return "refused", repr((refused.status_code, refused.to_dict()))


def assert_reads_as_before(data: bytes) -> None:
    assert _outcome(parse_json_body, data) == _outcome(_long_way, data), data[:200]


_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # surrogates, lone or not
        st.sampled_from('\ud83d\ude00"\\[]{}09 é✓\n'),
        st.characters(),
    ),
    max_size=12,
)
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**22),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=20,
)


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    value = draw(_VALUES)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))  # escaped or raw surrogates
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "utf-32-le"]))
    data = text.encode(encoding, "surrogatepass")
    if draw(st.booleans()):
        data = draw(st.sampled_from([b"", b" ", b"\n", b"\t\r\n", b"\x0b\x0c"])) + data
        data += draw(st.sampled_from([b"", b" ", b"\n", b"\r\n", b"\x0c"]))
    if encoding == "utf-8" and draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if data and draw(st.integers(0, 4)) == 0:  # a broken byte
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


@settings(max_examples=1500, deadline=None)
@given(_bodies())
@example(b"")
@example(b" \n\t\r\x0b\x0c")
@example(b"\x00")
@example(b'"\\ud800"')
@example(b'"\\udc00"')
@example(b'"\\ud83d\\ude00"')
@example(b'["\\uDBFF\\uDFFF", "\\udfff\\ud800"]')
@example(b'"\xed\xa0\x80"')
@example(b'"\xf0\x9f\x98\x80"')
@example(b'\xef\xbb\xbf"\\ud800"')
@example(b'{"n": 12345678901234567890, "s": "\\ud800"}')
@example(b"[" * 9 + b"]" * 9)
@example(b"[" * 8 + b"]" * 8 + b"\n")
def test_every_body_reads_as_before(data: bytes) -> None:
    assert_reads_as_before(data)


@pytest.mark.parametrize(
    "data",
    [
        json.dumps({"a": "x\ud800y"}).encode(),  # escaped: the standard parser reads it
        json.dumps({"a": "x\ud800y"}, ensure_ascii=False).encode("utf-8", "surrogatepass"),
        json.dumps({"a": "x\ud800y"}).encode("utf-16"),
    ],
)
def test_a_lone_surrogate_still_becomes_the_replacement_character(data: bytes) -> None:
    assert parse_json_body(data, MAX_DEPTH) == {"a": "x\ufffdy"}
    assert_reads_as_before(data)


def test_orjson_reads_no_text_with_a_lone_surrogate() -> None:
    """What the skipped scan rests on: whatever orjson reads holds none."""
    for text in ('"\\ud800"', '"\\udc00"', '"\\ud800\\u0041"', '"\\udfff\\udfff"'):
        _, by_orjson = fast_json.read(text.encode(), json.loads)
        assert not by_orjson, text
    _, by_orjson = fast_json.read(b'"\xed\xa0\x80"', lambda data: None)
    assert not by_orjson
    value, by_orjson = fast_json.read(b'"\\ud83d\\ude00"', json.loads)
    assert by_orjson
    assert value == "\U0001f600"


_DENSE = st.binary(max_size=80).map(
    lambda raw: raw.translate(bytes(b'0123456789"\\[]{}a.-:'[c % 20] for c in range(256)))
)


@settings(max_examples=3000, deadline=None)
@given(_DENSE, st.integers(0, 6))
@example(b'"1234567890abcdefghi123456789"', 3)  # joined only once letters are dropped
@example(b'"1234567890-123456789:1.2"', 3)  # kept apart
@example(b'["1234567890123456789"]', 3)
@example(b'"1234567890\\\\123456789"', 3)  # joined once an escape pair is dropped
@example(b'["a\\"[[[[", [[[]]], "]\\\\"]', 3)
def test_one_pass_gives_what_both_checks_gave(data: bytes, limit: int) -> None:
    """On any bytes (digits, quotes, backslashes and brackets thick): the same answer to
    "a run of 19 digits?" and the same nesting verdict as the two separate passes."""
    scan = _Scan.of(data)
    assert scan.long_digit_run == _old_long_run(data)
    assert _marks_nest_deeper(scan.marks, limit) == _old_nesting_exceeds(data, limit)


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": "1234567890abcdefghi123456789", "b": 1.5}',
        b'{"a": 12345678901234567890}',
        b'{"a": "x\\\\1234567890123456789"}',
        b'{"a": "[[[[[[[[[[", "b": [[[[[[[[]]]]]]]]}',
        b'{"a": "\\"[[[[[[[[[[", "b": [[[[[[[]]]]]]]}',
        b'{"a": "\\\\", "b": [[[[[[[[]]]]]]]]}',
        b"[" * 8 + b'"]]]"' + b"]" * 8,
    ],
)
def test_digit_runs_and_nesting_read_as_before(data: bytes) -> None:
    assert_reads_as_before(data)
