"""How much of a raw archive file a crash left readable: whole zstd frames, or whole lines.

`RawArchiveWriter` writes a zstd segment as independent frames, each holding
whole lines and recording its content size, so the file a killed writer left
is readable up to its last complete frame. `intact_prefix` finds that point by
walking the frames' block headers (zstd format, RFC 8878) and decoding each
frame; a frame cut short is a torn tail. A frame that does not decode with
whole frames after it is damage, not a tail, and is refused: cutting there
would drop the frames after it.

A writer's sync writes one frame to each open segment, one file after
another, so a kill between two of those writes leaves some channels a frame
ahead of the others. Each such frame is therefore preceded by a cut mark, a
zstd skippable frame (ignored by every zstd reader) naming the writer, the
cut, the frame's place in the cut's writing order and the cut's size:
`whole_cuts` drops, from every file, a last cut whose final frame is missing.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import pyarrow as pa

ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_SKIPPABLE_MAGIC: Final = 0x184D2A50  # the low 4 bits are free: 16 skippable magics
_CUT_MAGIC: Final = struct.pack("<I", 0x184D2A5F)
_CUT: Final = struct.Struct("<8sQIIQ")  # writer, cut, index, members, bytes of the data frame that follows
_CRC: Final = struct.Struct("<I")  # crc32 of the fields above
_CUT_BYTES: Final = _CUT.size + _CRC.size
_FCS_BYTES: Final = (0, 2, 4, 8)  # Frame_Content_Size field size by flag (flag 0: 1 byte if single-segment)
_DICT_ID_BYTES: Final = (0, 1, 2, 4)
_RLE_BLOCK: Final = 1
_RESERVED_BLOCK: Final = 3


class CorruptSegmentError(ValueError):
    """A raw archive file damaged other than at its end; left in place for a person to inspect."""


@dataclass(frozen=True, slots=True)
class CutMark:
    """A file's frame of one cut: the `index`-th of the cut's `members` frames, written in that order."""

    writer: bytes
    cut: int
    index: int
    members: int
    data_bytes: int  # of the data frame that follows the mark, 0 when the file had no new lines
    start: int  # where the mark starts in the file
    lines_before: int


@dataclass(frozen=True, slots=True)
class IntactPrefix:
    """The readable start of a file: `length` bytes holding `lines` whole lines; `last_cut` is the
    mark of its last whole cut, if its writer marks them."""

    length: int
    lines: int
    last_cut: CutMark | None = None
    previous_cut: CutMark | None = None  # the mark before `last_cut`: the last one if that cut goes


def cut_mark(writer: bytes, cut: int, index: int, members: int, data_bytes: int) -> bytes:
    """The skippable frame written before a cut's frame (`data_bytes` long, 0 for none) in one file."""
    fields = _CUT.pack(writer, cut, index, members, data_bytes)
    return _CUT_MAGIC + struct.pack("<I", _CUT_BYTES) + fields + _CRC.pack(zlib.crc32(fields))


def intact_prefix(data: bytes, *, compressed: bool) -> IntactPrefix:
    """The longest start of `data` made of whole frames (`compressed`) or whole lines that decode;
    a cut mark counts only with the whole frame it announces."""
    if not compressed:
        length = data.rfind(b"\n") + 1
        return IntactPrefix(length, data.count(b"\n", 0, length))
    view = memoryview(data)
    pos = lines = 0
    last_cut: CutMark | None = None
    previous_cut: CutMark | None = None
    while pos < len(data):
        skipped = _skippable_end(view, pos)
        if skipped is not None:
            if view[pos : pos + 4] != _CUT_MAGIC:  # a skippable frame of another tool: nothing to read
                pos = skipped
                continue
            mark = _cut_mark(view, pos, skipped, lines)
            if mark is None:
                _refuse_if_frames_follow(view, pos)
                break
            end = skipped + mark.data_bytes
            if end > len(data):
                break  # its frame is cut short
            if mark.data_bytes:
                decoded = _decode_frame(view, skipped)
                if decoded is None or decoded[0] != end:
                    _refuse_if_frames_follow(view, skipped)
                    break
                lines += decoded[1]
            pos, previous_cut, last_cut = end, last_cut, mark
            continue
        decoded = _decode_frame(view, pos)
        if decoded is None:
            _refuse_if_frames_follow(view, pos)
            break
        pos, frame_lines = decoded
        lines += frame_lines
    return IntactPrefix(pos, lines, last_cut, previous_cut)


def whole_cuts(prefixes: Sequence[IntactPrefix]) -> list[IntactPrefix]:
    """The files' prefixes (of one directory tree's open segments) without a torn last cut.

    A writer writes a cut's frames in index order and only then seals any of
    those files, so its latest cut among them is whole exactly when the last
    frame (index `members - 1`) is there; otherwise every file's frame of that
    cut goes, and the files end where the writer's previous, whole, cut did.
    Whoever seals the files keeps that true by sealing them in `sealing_order`.
    """
    latest: dict[bytes, int] = {}
    whole: set[tuple[bytes, int]] = set()
    for prefix in prefixes:
        if (mark := prefix.last_cut) is not None:
            latest[mark.writer] = max(mark.cut, latest.get(mark.writer, mark.cut))
            if mark.index == mark.members - 1:
                whole.add((mark.writer, mark.cut))
    torn = {(writer, cut) for writer, cut in latest.items() if (writer, cut) not in whole}
    return [
        replace(
            p,
            length=p.last_cut.start,
            lines=p.last_cut.lines_before,
            last_cut=p.previous_cut,
            previous_cut=None,
        )
        if p.last_cut is not None and (p.last_cut.writer, p.last_cut.cut) in torn
        else p
        for p in prefixes
    ]


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


def _skippable_end(view: memoryview, pos: int) -> int | None:
    """The end of the whole skippable frame at `pos`, or None: not one, or cut short."""
    if pos + 8 > len(view) or int.from_bytes(view[pos : pos + 4], "little") & ~0xF != _SKIPPABLE_MAGIC:
        return None
    end = pos + 8 + int.from_bytes(view[pos + 4 : pos + 8], "little")
    return end if end <= len(view) else None


def _cut_mark(view: memoryview, pos: int, end: int, lines_before: int) -> CutMark | None:
    """The cut mark at `pos`, None if damaged."""
    fields = view[pos + 8 : end - _CRC.size]
    if end - pos - 8 != _CUT_BYTES or _CRC.unpack(view[end - _CRC.size : end])[0] != zlib.crc32(fields):
        return None
    writer, cut, index, members, data_bytes = _CUT.unpack(fields)
    return CutMark(writer, cut, index, members, data_bytes, pos, lines_before)


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


def sealing_order(prefixes: Sequence[IntactPrefix]) -> list[int]:
    """Indexes of `prefixes` (as `whole_cuts` left them) in the order to seal their files: per writer
    by cut and place in it, so that the file proving a writer's latest cut whole is sealed last, and a
    recovery killed halfway judges the cuts as this one did."""

    def key(n: int) -> tuple[int, int, int]:
        mark = prefixes[n].last_cut
        return (0, 0, 0) if mark is None else (1, mark.cut, mark.index)

    return sorted(range(len(prefixes)), key=key)
