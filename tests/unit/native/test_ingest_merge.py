"""`IngestMerge` gives the archive's segments in ingest order exactly as `heapq.merge(...,
key=ingest_key)` did: stamps compared as Python ints (any size, leading zeros), unstamped lines
first, ties in segment order, each segment read a list at a time and only as far as needed."""

from __future__ import annotations

import gc
import heapq
import itertools
import weakref
from collections.abc import Iterator

import pytest
from fluxforge_native import IngestMerge, ingest_key
from hypothesis import given, settings
from hypothesis import strategies as st

# Numbers as digits: small, past a u64, with leading zeros; and lines without a stamp.
DIGITS = st.integers(0, 40).map(str) | st.sampled_from(
    [
        "18446744073709551615",
        "18446744073709551616",
        "000018446744073709551616",
        "222222222222222222222",
        "100000000000000000000000",
    ]
)
STAMP = st.tuples(DIGITS, DIGITS).map(lambda k: f',"_ingest":[{k[0]},{k[1]}]'.encode()) | st.just(b"")


@st.composite
def segments(draw: st.DrawFn) -> list[list[list[bytes]]]:
    """Segments in ingest order (each sorted by its key), each cut into lists at random."""
    out = []
    for s in range(draw(st.integers(0, 5))):
        stamps = draw(st.lists(STAMP, max_size=12))
        lines = sorted(
            (b'{"s":%d,"i":%d%s}' % (s, i, stamp) for i, stamp in enumerate(stamps)), key=ingest_key
        )
        cuts = sorted(draw(st.lists(st.integers(0, len(lines)), max_size=4)))
        bounds = [0, *cuts, len(lines)]
        out.append([lines[a:b] for a, b in itertools.pairwise(bounds)])
    return out


@settings(max_examples=400, deadline=None)
@given(segments())
def test_the_merge_is_heapq_merge_by_the_ingest_key(parts: list[list[list[bytes]]]) -> None:
    flat = [[line for block in segment for line in block] for segment in parts]
    expected = list(heapq.merge(*flat, key=ingest_key))
    assert list(IngestMerge([iter(segment) for segment in parts])) == expected


def test_a_segment_is_read_only_as_far_as_the_next_line_needs() -> None:
    read: list[str] = []

    def segment(name: str, lines: list[bytes]) -> Iterator[list[bytes]]:
        for line in lines:
            read.append(name)
            yield [line]

    first = b'{"_ingest":[1,1]}'
    merge = IngestMerge([segment("a", [first, b'{"_ingest":[1,3]}']), segment("b", [b'{"_ingest":[1,2]}'])])
    assert read == ["a", "b"]
    assert next(merge) == first and read == ["a", "b"]  # "a" moves on when the next line is asked for
    assert next(merge) == b'{"_ingest":[1,2]}' and read == ["a", "b", "a"]


def test_what_a_segment_raises_comes_out_of_the_merge_and_ends_it() -> None:
    def failing() -> Iterator[list[bytes]]:
        yield [b'{"_ingest":[1,1]}']
        raise OSError("disk gone")

    merge = IngestMerge([failing(), iter([[b'{"_ingest":[1,2]}']])])
    assert next(merge) == b'{"_ingest":[1,1]}'
    with pytest.raises(OSError, match="disk gone"):
        next(merge)
    assert list(merge) == []  # as a generator's: nothing after its error


def test_a_segment_must_give_lists_of_bytes() -> None:
    not_bytes: list[list[object]] = [["not bytes"]]
    with pytest.raises(TypeError):
        IngestMerge([iter(not_bytes)])  # type: ignore[list-item]


def test_a_merge_in_a_reference_cycle_is_collected() -> None:
    class Holder:
        merge: IngestMerge | None = None

    def segment(holder: Holder) -> Iterator[list[bytes]]:
        yield [repr(holder).encode()]

    holder = Holder()
    holder.merge = IngestMerge([segment(holder)])
    alive = weakref.ref(holder)
    del holder
    gc.collect()
    assert alive() is None
