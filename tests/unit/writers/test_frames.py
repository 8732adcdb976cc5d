"""What a crash leaves readable of a raw archive segment: whole frames up to a torn tail, never less."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from fluxforge_common.dataset.partitioning import Channel
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers import RawArchiveWriter
from fluxforge_common.writers.frames import (
    CorruptSegmentError,
    IntactPrefix,
    intact_prefix,
    sealing_order,
    whole_cuts,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.times import T0

line_text = st.text(st.characters(codec="utf-8", exclude_characters="\n"), min_size=1, max_size=300)
frames_of_lines = st.lists(st.lists(line_text, min_size=1, max_size=20), min_size=1, max_size=4)


def written_segment(tmp_path_factory: pytest.TempPathFactory, frames: list[list[str]]) -> tuple[bytes, int]:
    """The bytes a writer left in its open segment after syncing each list of lines as a frame,
    and where the last frame starts."""
    storage = LocalStorage(tmp_path_factory.mktemp("seg"))
    writer = RawArchiveWriter(storage)
    last_start = 0
    for lines in frames:
        last_start = sum(storage.size(path) for path in storage.unsealed_files())
        for line in lines:
            writer.append("x", "book", T0, line.encode())
        writer.sync()
    (unsealed,) = storage.unsealed_files()
    return storage.read_bytes(unsealed), last_start


@settings(max_examples=40, deadline=None)
@given(frames=frames_of_lines)
def test_a_segment_cut_anywhere_in_its_last_frame_keeps_every_earlier_frame(
    tmp_path_factory: pytest.TempPathFactory, frames: list[list[str]]
) -> None:
    data, last_start = written_segment(tmp_path_factory, frames)
    earlier = sum(len(lines) for lines in frames[:-1])
    whole = intact_prefix(data, compressed=True)
    assert (whole.length, whole.lines) == (len(data), earlier + len(frames[-1]))
    for cut in range(last_start, len(data)):
        torn = intact_prefix(data[:cut], compressed=True)
        assert (torn.length, torn.lines) == (last_start, earlier), cut
    # what is kept is exactly the earlier frames' lines
    kept = pa.input_stream(pa.BufferReader(data[:last_start]), compression="zstd").read()
    assert kept.decode().split("\n")[:-1] == [line for lines in frames[:-1] for line in lines]


@given(
    text=st.lists(line_text, min_size=1, max_size=10),
    tail=st.binary(max_size=50).filter(lambda b: b"\n" not in b),
)
def test_an_uncompressed_segment_keeps_its_whole_lines(text: list[str], tail: bytes) -> None:
    whole = "".join(f"{line}\n" for line in text).encode()
    assert intact_prefix(whole + tail, compressed=False) == IntactPrefix(len(whole), len(text))


def test_a_damaged_frame_before_whole_frames_is_refused_not_cut(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data, last_start = written_segment(tmp_path_factory, [["a" * 50, "b"], ["c", "d"]])
    damaged = bytearray(data)
    damaged[last_start - 3] ^= 0xFF  # inside the first frame's compressed data
    with pytest.raises(CorruptSegmentError, match="whole frame follows"):
        intact_prefix(bytes(damaged), compressed=True)


def test_zeros_after_the_last_frame_are_a_torn_tail(tmp_path_factory: pytest.TempPathFactory) -> None:
    data, _ = written_segment(tmp_path_factory, [["a", "b"], ["c"]])
    prefix = intact_prefix(data + bytes(4096), compressed=True)
    assert (prefix.length, prefix.lines) == (len(data), 3)


CHANNELS: tuple[Channel, ...] = ("book", "trade", "ticker")


def synced_twice(storage: LocalStorage) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Three channels' open segments after a first sync, and after a second that gave one of them
    no new line."""
    writer = RawArchiveWriter(storage)
    for i, channel in enumerate(CHANNELS * 3):
        writer.append("x", channel, T0 + i, b'{"n":%d}' % i)
    writer.sync()
    first = {path: storage.read_bytes(path) for path in storage.unsealed_files()}
    for i, channel in enumerate(CHANNELS[:2] * 2):
        writer.append("x", channel, T0 + 100 + i, b'{"m":%d}' % i)
    writer.sync()
    second = {path: storage.read_bytes(path) for path in storage.unsealed_files()}
    writer.close()
    return first, second


def place_in_last_cut(data: bytes) -> int:
    mark = intact_prefix(data, compressed=True).last_cut
    assert mark is not None
    return mark.index


@settings(max_examples=30, deadline=None)
@given(written=st.integers(0, len(CHANNELS)), torn_at=st.floats(0, 1, exclude_max=True))
def test_a_sync_killed_between_two_files_is_dropped_from_all_of_them(
    tmp_path_factory: pytest.TempPathFactory, written: int, torn_at: float
) -> None:
    first, second = synced_twice(LocalStorage(tmp_path_factory.mktemp("root")))
    order = sorted(second, key=lambda path: place_in_last_cut(second[path]))
    left = {path: second[path] if n < written else first[path] for n, path in enumerate(order)}
    if written < len(order):  # the next file's write was cut short
        path = order[written]
        left[path] += second[path][len(first[path]) :][
            : int(torn_at * (len(second[path]) - len(first[path])))
        ]
    kept = whole_cuts([intact_prefix(left[path], compressed=True) for path in order])
    expected = second if written == len(order) else first
    assert [(p.length, p.lines) for p in kept] == [
        (len(expected[path]), intact_prefix(expected[path], compressed=True).lines) for path in order
    ]
    sealing = sealing_order(kept)
    for sealed in range(len(order)):  # a recovery killed after sealing that many decides the same
        rest = sealing[sealed:]
        again = whole_cuts([intact_prefix(left[order[n]], compressed=True) for n in rest])
        assert [(p.length, p.lines) for p in again] == [(kept[n].length, kept[n].lines) for n in rest]


def test_a_segment_sealed_by_rotation_leaves_the_others_whole(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    writer = RawArchiveWriter(storage, segment_max_bytes=40)
    writer.append("x", "trade", T0, b'{"trade":1}')
    writer.append("x", "book", T0 + 1, b'{"book":1,"pad":"xxxxxxxxxxxxxxxxx"}')
    (sealed,) = writer.append("x", "book", T0 + 2, b'{"book":2}')  # the first book segment is full
    assert sealed.rows == 1
    prefixes = [intact_prefix(storage.read_bytes(path), compressed=True) for path in storage.unsealed_files()]
    assert sum(p.lines for p in whole_cuts(prefixes)) == 1  # the trade, archived before the sealed book line
    writer.close()


def test_a_damaged_cut_mark_is_refused_when_frames_follow(tmp_path_factory: pytest.TempPathFactory) -> None:
    data, _ = written_segment(tmp_path_factory, [["a"], ["b"]])
    damaged = bytearray(data)
    damaged[20] ^= 0xFF  # the first cut mark's number
    with pytest.raises(CorruptSegmentError, match="whole frame follows"):
        intact_prefix(bytes(damaged), compressed=True)
