"""The ingest stamp: the line keeps its JSON, gains `_ingest` last (replacing an earlier one), and
reads back with `ingest_key`."""

from __future__ import annotations

from typing import Any

import orjson
from fluxforge_common.pipeline.ingest_order import ingest_key
from fluxforge_common.pipeline.ingest_stamp import stamp
from hypothesis import given, settings
from hypothesis import strategies as st

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
OBJECTS = st.dictionaries(st.text(max_size=10), VALUES, max_size=6)
SPACE = st.text(" \t\r\n\x0b\x0c", max_size=3).map(str.encode)


@settings(max_examples=300, deadline=None)
@given(OBJECTS, SPACE, SPACE, st.integers(0, 2**62), st.integers(0, 2**62), st.booleans())
def test_a_stamped_line_is_its_object_with_the_ingest_position_last(
    obj: dict[str, Any], before: bytes, after: bytes, session: int, n: int, stamped_before: bool
) -> None:
    raw = orjson.dumps({**obj, "_ingest": [1, 2]} if stamped_before else obj)
    line = stamp(before + raw + after, session, n)
    parsed = orjson.loads(line)
    assert list(parsed)[-1] == "_ingest"
    assert parsed == {**{k: v for k, v in obj.items() if k != "_ingest"}, "_ingest": [session, n]}
    assert ingest_key(line) == (session, n)
    if not stamped_before and "_ingest" not in obj:
        assert line.startswith(raw[:-1])  # the received bytes themselves, not a re-encoding


def test_an_empty_object_gets_only_the_stamp() -> None:
    assert stamp(b" {} ", 5, 6) == b'{"_ingest":[5,6]}'
