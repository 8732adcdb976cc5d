"""`with_ingest` refuses exactly the lines that hold `"_ingest"`, wherever it lies (its search
reads eight bytes a step), and stamps every other line; `ingest_key` reads a stamp back as the
regular expression it replaced did."""

from __future__ import annotations

import re

import orjson
from fluxforge_native import ingest_key, with_ingest
from hypothesis import given, settings
from hypothesis import strategies as st

FIELD = b'"_ingest"'
# Bytes near the field's own, so that partial matches (`_`, `"_ing`, `_ingest` unquoted) are common.
BYTES = st.lists(
    st.sampled_from([b"_", b'"', b"_ingest", b'"_ing', b"a", b"{", b"}", b",", b" "]), max_size=40
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(BYTES, BYTES, st.booleans())
def test_a_line_holding_the_field_anywhere_is_refused(head: bytes, tail: bytes, with_field: bool) -> None:
    raw = head + FIELD + tail if with_field else head + tail
    line = with_ingest(raw, 1, 2)
    assert (line is None) == (FIELD in raw)


@given(st.integers(0, 24))
def test_the_field_is_found_at_every_offset_of_an_eight_byte_step(offset: int) -> None:
    raw = b"{" + b"x" * offset + FIELD + b":1}"
    assert with_ingest(raw, 1, 2) is None
    assert with_ingest(raw.replace(FIELD, b'"_ingesT"'), 1, 2) is not None


def test_a_line_without_the_field_gets_it_last() -> None:
    line = with_ingest(b' {"a_b":"_x","c":1} ', 7, 8)
    assert line is not None and orjson.loads(line) == {"a_b": "_x", "c": 1, "_ingest": [7, 8]}


# The definition `ingest_key` replaced, kept as its oracle.
STAMP = re.compile(rb'"_ingest":\[(\d+),(\d+)\]')


def _regex_key(line: bytes) -> tuple[int, int]:
    match = STAMP.search(line, max(0, len(line) - 64))
    if match is None:
        match = STAMP.search(line)
    return (0, 0) if match is None else (int(match.group(1)), int(match.group(2)))


# Pieces of stamps, whole and broken, among filler, so that near misses and several stamps are common.
STAMP_BYTES = st.lists(
    st.sampled_from(
        [b'"_ingest":[', b"12", b"0", b"99999999999999999999999", b",", b"]", b"[", b'"', b"x" * 30, b"\xd9"]
    )
    | st.integers(0, 2**70).map(lambda n: b'"_ingest":[%d,%d]' % (n, n // 3)),
    max_size=30,
).map(b"".join)


@settings(max_examples=1000, deadline=None)
@given(STAMP_BYTES)
def test_the_key_of_a_line_is_the_regular_expression_s(line: bytes) -> None:
    assert ingest_key(line) == _regex_key(line)


def test_the_key_of_a_stamped_line_and_of_an_unstamped_one() -> None:
    stamped = with_ingest(b'{"a":"' + b"y" * 200 + b'"}', 1_765_497_600_000, 42)
    assert stamped is not None and ingest_key(stamped) == (1_765_497_600_000, 42)
    assert ingest_key(b'{"a":1}') == (0, 0)
    assert ingest_key(b'{"_ingest":[3,4],"pad":"' + b"z" * 100 + b'"}') == (3, 4)  # before the last 64 bytes
    assert ingest_key(b'{"_ingest":[2**64,1]}'.replace(b"2**64", b"%d" % 2**64)) == (2**64, 1)
