"""How much of a raw archive file a crash left readable: whole zstd frames, or whole lines.

`RawArchiveWriter` writes a zstd segment as independent frames, each holding
whole lines and recording its content size, so the file a killed writer left
is readable up to its last complete frame. `intact_prefix` finds that point by
walking the frames' block headers (zstd format, RFC 8878) and decoding each
frame; a frame cut short is a torn tail. A frame that does not decode with
whole frames after it is damage, not a tail, and is refused: cutting there
would drop the frames after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pyarrow as pa

ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_FCS_BYTES: Final = (0, 2, 4, 8)  # Frame_Content_Size field size by flag (flag 0: 1 byte if single-segment)
_DICT_ID_BYTES: Final = (0, 1, 2, 4)
_RLE_BLOCK: Final = 1
_RESERVED_BLOCK: Final = 3


class CorruptSegmentError(ValueError):
    """A raw archive file damaged other than at its end; left in place for a person to inspect."""


@dataclass(frozen=True, slots=True)
class IntactPrefix:
    """The readable start of a file: `length` bytes holding `lines` whole lines."""

    length: int
    lines: int


def intact_prefix(data: bytes, *, compressed: bool) -> IntactPrefix:
    """The longest start of `data` made of whole frames (`compressed`) or whole lines that decode."""
    if not compressed:
        length = data.rfind(b"\n") + 1
        return IntactPrefix(length, data.count(b"\n", 0, length))
    view = memoryview(data)
    pos = lines = 0
    while pos < len(data):
        decoded = _decode_frame(view, pos)
        if decoded is None:
            _refuse_if_frames_follow(view, pos)
            break
        pos, frame_lines = decoded
        lines += frame_lines
    return IntactPrefix(pos, lines)


def _refuse_if_frames_follow(view: memoryview, bad: int) -> None:
    data = view.obj
    assert isinstance(data, bytes)
    start = data.find(ZSTD_MAGIC, bad + 1)
    while start != -1:
        if _decode_frame(view, start) is not None:
            raise CorruptSegmentError(
                f"the frame at byte {bad} does not decode but a whole frame follows at byte {start}"
            )
        start = data.find(ZSTD_MAGIC, start + 1)


def _decode_frame(view: memoryview, pos: int) -> tuple[int, int] | None:
    """(end offset, lines) of the whole frame at `pos` holding whole lines, or None."""
    bounds = _frame_bounds(view, pos)
    if bounds is None:
        return None
    end, content_size = bounds
    try:
        content = pa.decompress(view[pos:end], decompressed_size=content_size, codec="zstd", asbytes=True)
    except (pa.ArrowException, OSError):
        return None
    if not content.endswith(b"\n"):
        return None
    return end, content.count(b"\n")


def _frame_bounds(view: memoryview, pos: int) -> tuple[int, int] | None:
    """(end offset, content size) of a complete zstd frame starting at `pos`, from its headers alone."""
    size = len(view)
    if view[pos : pos + 4].tobytes() != ZSTD_MAGIC or pos + 5 > size:
        return None
    descriptor = view[pos + 4]
    fcs_flag, single_segment = descriptor >> 6, descriptor >> 5 & 1
    if descriptor >> 3 & 1:  # reserved bit
        return None
    p = pos + 5 + (0 if single_segment else 1) + _DICT_ID_BYTES[descriptor & 3]
    fcs_bytes = 1 if fcs_flag == 0 and single_segment else _FCS_BYTES[fcs_flag]
    if fcs_bytes == 0 or p + fcs_bytes > size:  # the writer always records the content size
        return None
    content_size = int.from_bytes(view[p : p + fcs_bytes], "little") + (256 if fcs_bytes == 2 else 0)
    p += fcs_bytes
    last = 0
    while not last:
        if p + 3 > size:
            return None
        header = int.from_bytes(view[p : p + 3], "little")
        last, block_type, block_size = header & 1, header >> 1 & 3, header >> 3
        if block_type == _RESERVED_BLOCK:
            return None
        p += 3 + (1 if block_type == _RLE_BLOCK else block_size)
    p += 4 if descriptor >> 2 & 1 else 0  # content checksum
    return (p, content_size) if p <= size else None
