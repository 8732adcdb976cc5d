"""The raw NDJSON archive, the dead-letter files, and reading both back.

The archive keeps every accepted raw tick exactly as it arrived, one per line,
so any day can be reprocessed. Lines go to a segment per
(exchange, channel, UTC date); a segment is a single file written through the
storage backend's atomic writer, so it appears only when complete: on rotation
by size, by age, or on `close()`. Age is measured in the event-time
milliseconds the caller passes, never the wall clock, so the same input always
produces the same segmentation (up to the random part of the names).

zstd output is a sequence of independent zstd frames of about 1 MiB each
(`pyarrow.compress`); concatenated frames are one valid `.zst` stream for
`zstd -d`, pyarrow and DuckDB alike, and no extra dependency is needed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import BinaryIO, Final, Literal

import orjson
import pyarrow as pa

from fluxforge_common.dataset.partitioning import Channel, deadletter_dir, raw_partition_dir, utc_date
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.writers.common import WrittenFile, new_stem

MiB: Final = 1 << 20
_FRAME_BYTES: Final = MiB
_READ_CHUNK: Final = MiB
SegmentKey = tuple[str, Channel, str]  # exchange, channel, date


@dataclass(slots=True, eq=False)
class _Segment:
    path: str
    opened_ms: int
    writer: AbstractContextManager[BinaryIO]
    file: BinaryIO
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0
    size: int = 0  # uncompressed bytes, newlines included: what segment_max_bytes bounds
    lines: int = 0


class RawArchiveWriter:
    """Appends raw lines to `raw/exchange=/channel=/date=/<stem>.ndjson[.zst]` segments.

    `segment_max_bytes` bounds the uncompressed size of a segment (a single line
    larger than it gets a segment of its own); `segment_max_age_ms` bounds the
    event-time span from a segment's first line to the append that closes it.
    `append` and `close_expired` return the segments they completed, so a
    caller can commit its input offsets only for lines that are durably visible.
    Not thread-safe.
    """

    def __init__(
        self,
        storage: StorageBackend,
        *,
        compression: Literal["zstd", "none"] = "zstd",
        segment_max_bytes: int = 64 * MiB,
        segment_max_age_ms: int = 15 * 60_000,
    ) -> None:
        if compression not in ("zstd", "none"):
            raise ValueError(f"compression must be 'zstd' or 'none', got {compression!r}")
        if segment_max_bytes < 1 or segment_max_age_ms < 1:
            raise ValueError("segment_max_bytes and segment_max_age_ms must be positive")
        self.storage = storage
        self.compression = compression
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age_ms = segment_max_age_ms
        self._suffix = ".ndjson.zst" if compression == "zstd" else ".ndjson"
        self._segments: dict[SegmentKey, _Segment] = {}
        self._oldest_opened_ms: int | None = None

    @property
    def open_segments(self) -> int:
        """Segments holding lines that are not visible yet."""
        return len(self._segments)

    def append(self, exchange: str, channel: Channel, ts_ms: int, line: bytes) -> list[WrittenFile]:
        """Archive one raw message (without its newline) under the UTC date of `ts_ms`.

        Before appending, closes every segment that `ts_ms` makes too old, and
        this line's segment if the line would push it over the size bound.
        """
        if not line or b"\n" in line:
            raise ValueError("a raw archive line must be non-empty and contain no newline")
        completed: list[WrittenFile] = []
        if self._oldest_opened_ms is not None and ts_ms - self._oldest_opened_ms >= self.segment_max_age_ms:
            completed.extend(self.close_expired(ts_ms))
        key: SegmentKey = (exchange, channel, utc_date(ts_ms))
        segment = self._segments.get(key)
        added = len(line) + 1
        if segment is not None and segment.size + added > self.segment_max_bytes:
            completed.append(self._close(key))
            segment = None
        if segment is None:
            segment = self._open(key, ts_ms)
        segment.pending.append(line)
        segment.pending_bytes += added
        segment.size += added
        segment.lines += 1
        if segment.pending_bytes >= _FRAME_BYTES:
            self._drain(key, segment)
        return completed

    def close_expired(self, now_ms: int) -> list[WrittenFile]:
        """Close the segments whose first line is `segment_max_age_ms` or more older than `now_ms`.

        `append` does this by itself; call it with the latest event time seen
        anywhere so that a channel that went quiet does not hold its last
        segment invisible until `close()`.
        """
        expired = sorted(
            k for k, s in self._segments.items() if now_ms - s.opened_ms >= self.segment_max_age_ms
        )
        return [self._close(key) for key in expired]

    def close(self) -> list[WrittenFile]:
        """Complete every open segment; the writer can be used again afterwards."""
        return [self._close(key) for key in sorted(self._segments)]

    def _open(self, key: SegmentKey, ts_ms: int) -> _Segment:
        path = f"{raw_partition_dir(*key)}/{new_stem('seg', ts_ms)}{self._suffix}"
        writer = self.storage.open_write(path)
        segment = _Segment(path, ts_ms, writer, writer.__enter__())
        self._segments[key] = segment
        self._update_oldest()
        return segment

    def _drain(self, key: SegmentKey, segment: _Segment) -> None:
        data = b"\n".join(segment.pending) + b"\n"
        segment.pending.clear()
        segment.pending_bytes = 0
        try:
            segment.file.write(
                pa.compress(data, codec="zstd", asbytes=True) if self.compression == "zstd" else data
            )
        except BaseException as exc:
            self._abort(key, exc)
            raise

    def _close(self, key: SegmentKey) -> WrittenFile:
        segment = self._segments[key]
        if segment.pending:
            self._drain(key, segment)
        try:
            size = segment.file.tell()
            del self._segments[key]
            segment.writer.__exit__(None, None, None)
        finally:
            self._update_oldest()
        return WrittenFile(segment.path, segment.lines, size)

    def _abort(self, key: SegmentKey, exc: BaseException) -> None:
        """Drop a segment whose write failed; the backend discards its temporary file."""
        segment = self._segments.pop(key)
        self._update_oldest()
        segment.writer.__exit__(type(exc), exc, exc.__traceback__)

    def _update_oldest(self) -> None:
        self._oldest_opened_ms = min((s.opened_ms for s in self._segments.values()), default=None)


def dead_letter_record(reason: str, raw: bytes, source: str, logged_at_ms: int) -> bytes:
    """One dead-letter JSON line: the original bytes as text when they are UTF-8, else base64."""
    try:
        payload: dict[str, str] = {"raw": raw.decode("utf-8")}
    except UnicodeDecodeError:
        payload = {"raw_b64": base64.b64encode(raw).decode("ascii")}
    return orjson.dumps({"reason": reason, **payload, "source": source, "logged_at_ms": logged_at_ms})


class DeadLetterWriter:
    """Writes rejected messages to `deadletter/date=YYYY-MM-DD/<stem>.ndjson`, one JSON per line.

    Records are buffered and written as a new file per date when `batch_size`
    accumulate, on `flush()` and on `close()`; the date is that of
    `logged_at_ms`. Files are never appended to, so each is complete when seen.
    """

    def __init__(self, storage: StorageBackend, *, batch_size: int = 1000) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.storage = storage
        self.batch_size = batch_size
        self._pending: dict[str, list[bytes]] = {}
        self._first_ms: dict[str, int] = {}
        self._count = 0

    @property
    def buffered(self) -> int:
        """Records not yet written."""
        return self._count

    def write(self, reason: str, raw: bytes, source: str, logged_at_ms: int) -> list[WrittenFile]:
        """Buffer one rejected message; returns the files written if this completed a batch."""
        date = utc_date(logged_at_ms)
        self._pending.setdefault(date, []).append(dead_letter_record(reason, raw, source, logged_at_ms))
        self._first_ms.setdefault(date, logged_at_ms)
        self._count += 1
        return self.flush() if self._count >= self.batch_size else []

    def flush(self) -> list[WrittenFile]:
        """Write every buffered record now, one file per date."""
        written: list[WrittenFile] = []
        for date in sorted(self._pending):
            lines = self._pending[date]
            path = f"{deadletter_dir(date)}/{new_stem('dl', self._first_ms[date])}.ndjson"
            data = b"\n".join(lines) + b"\n"
            self.storage.write_bytes(path, data)
            written.append(WrittenFile(path, len(lines), len(data)))
            del self._pending[date], self._first_ms[date]
            self._count -= len(lines)
        return written

    def close(self) -> list[WrittenFile]:
        """Write what is buffered; an alias of `flush` that reads right at shutdown."""
        return self.flush()


def iter_ndjson(storage: StorageBackend, path: str) -> Iterator[bytes]:
    """The lines of an archive or dead-letter file, without newlines; `.zst` is decompressed.

    Blank lines are skipped (the writers never produce them). Reading streams in
    1 MiB chunks, so a segment of any size needs little memory.
    """
    with storage.open_read(path) as raw:
        stream = pa.input_stream(raw, compression="zstd") if path.endswith(".zst") else raw
        tail = b""
        while chunk := stream.read(_READ_CHUNK):
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            yield from (line for line in lines if line)
        if tail:
            yield tail
