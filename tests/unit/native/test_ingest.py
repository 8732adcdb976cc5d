"""`with_ingest` refuses exactly the lines that hold `"_ingest"`, wherever it lies (its search
reads eight bytes a step), and stamps every other line."""

from __future__ import annotations

import orjson
from fluxforge_native import with_ingest
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
