"""What a crash leaves readable of a raw archive segment: whole frames up to a torn tail, never less."""

from __future__ import annotations

import pyarrow as pa
import pytest
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers import RawArchiveWriter
from fluxforge_common.writers.frames import CorruptSegmentError, IntactPrefix, intact_prefix
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
    assert intact_prefix(data, compressed=True) == IntactPrefix(len(data), earlier + len(frames[-1]))
    for cut in range(last_start, len(data)):
        assert intact_prefix(data[:cut], compressed=True) == IntactPrefix(last_start, earlier), cut
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
    assert intact_prefix(data + bytes(4096), compressed=True) == IntactPrefix(len(data), 3)
