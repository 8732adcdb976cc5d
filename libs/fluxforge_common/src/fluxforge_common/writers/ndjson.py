"""The raw NDJSON archive, the dead-letter files, and reading both back.

The archive keeps every accepted raw tick exactly as it arrived, one per line,
so any day can be reprocessed. Lines go to a segment per
(exchange, channel, UTC date); a segment appears under its name only when
complete: on rotation by size, by age, or on `close()`. Age is measured in the
event-time milliseconds the caller passes, never the wall clock, so the same
input always produces the same segmentation (up to the random part of the
names). While open, a streamed segment is a recoverable file of the backend:
every `sync_interval_s` of wall clock the lines received so far become a frame
that is flushed and fsynced, so a crash loses at most that interval and
`fluxforge recover` seals the rest (`frames.intact_prefix`).

Both writers name their files with a time-sortable stem, or with the caller's
`file_stem`: the Parquet sink names every file of a chunk after the Kafka
records it holds, so a replay rewrites the same files.

zstd output is a sequence of independent zstd frames of about 1 MiB each
(`pyarrow.compress`); concatenated frames are one valid `.zst` stream for
`zstd -d`, pyarrow and DuckDB alike, and no extra dependency is needed.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import threading
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Final, Literal, cast

import orjson
import pyarrow as pa
from fluxforge_native import PendingLines

from fluxforge_common.dataset.partitioning import Channel, deadletter_dir, raw_partition_dir, utc_date
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.writers.common import WrittenFile, check_stem, new_stem
from fluxforge_common.writers.frames import cut_mark

MiB: Final = 1 << 20
FRAME_BYTES: Final = MiB  # uncompressed bytes of lines per zstd frame
_READ_CHUNK: Final = MiB
SegmentKey = tuple[str, Channel, str]  # exchange, channel, date
# What `PendingLines.append` did, named once for the hot path.
_APPENDED: Final = PendingLines.APPENDED
_FRAME_FULL: Final = PendingLines.FRAME_FULL
_EXPIRED: Final = PendingLines.EXPIRED
_SEGMENT_FULL: Final = PendingLines.SEGMENT_FULL
Compression = Literal["zstd", "none"]


@dataclass(slots=True, eq=False)
class _Segment:
    """One archive file being filled: the frames written so far (the lines of the next one, its
    age and size are the writer's `PendingLines`)."""

    directory: str
    file: BinaryIO  # the backend's temporary file, or memory while the caller has yet to name it
    path: str | None = None  # None until `close(file_stem)` names it
    writer: AbstractContextManager[BinaryIO] | None = None  # the backend's atomic writer of `path`
    unsynced: bool = False  # frames written since the last sync


class RawArchiveWriter:
    """Appends raw lines to `raw/exchange=/channel=/date=/<stem>.ndjson[.zst]` segments.

    `segment_max_bytes` bounds the uncompressed size of a segment (a single
    line larger than it gets a segment of its own); `segment_max_age_ms`
    bounds the event-time span from a segment's first line to the append that
    closes it. `append` and `close_expired` return the segments they
    completed, so a caller can commit its input offsets only for lines that
    are durably visible.

    Segments stream to the storage backend's recoverable files under a
    time-sortable stem; with `sync_interval_s` a thread of the writer calls
    `sync()` that often, so that lines survive a crash even when no append
    follows them. With `named_on_close` segments are held in memory instead
    (their compressed bytes) and `close(file_stem)` names them all: for a
    caller that learns the name only at the end, as the Parquet sink, whose
    names are the Kafka offsets a file holds, and whose input Kafka keeps
    until then; such a writer has no bounds (its caller decides when to
    close). One thread appends; the sync thread takes the writer's lock.
    """

    def __init__(
        self,
        storage: StorageBackend,
        *,
        compression: Compression = "zstd",
        segment_max_bytes: int | None = 64 * MiB,
        segment_max_age_ms: int | None = 15 * 60_000,
        sync_interval_s: float | None = None,
        named_on_close: bool = False,
    ) -> None:
        if compression not in ("zstd", "none"):
            raise ValueError(f"compression must be 'zstd' or 'none', got {compression!r}")
        if named_on_close:
            if segment_max_bytes is not None or segment_max_age_ms is not None:
                raise ValueError("a writer whose segments are named on close has no segment bounds")
            if sync_interval_s is not None:
                raise ValueError("a writer whose segments are named on close holds them in memory: no sync")
        elif (
            segment_max_bytes is None
            or segment_max_age_ms is None
            or min(segment_max_bytes, segment_max_age_ms) < 1
        ):
            raise ValueError("segment_max_bytes and segment_max_age_ms must be positive")
        if sync_interval_s is not None and sync_interval_s <= 0:
            raise ValueError(f"sync_interval_s must be positive, got {sync_interval_s}")
        self.storage = storage
        self.compression = compression
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age_ms = segment_max_age_ms
        self.sync_interval_s = sync_interval_s
        self.named_on_close = named_on_close
        self._compress = compression == "zstd"
        self._marked = self._compress and not named_on_close  # recoverable frames carry cut marks
        self._id = os.urandom(8)  # names this writer in its cut marks
        self._cuts = 0
        self._suffix = ".ndjson.zst" if self._compress else ".ndjson"
        self._segments: dict[SegmentKey, _Segment] = {}
        self._lines = PendingLines(segment_max_bytes, segment_max_age_ms, FRAME_BYTES)
        self._lock = threading.Lock()
        self._syncer: threading.Thread | None = None
        self._stop_syncing = threading.Event()
        self._sync_error: BaseException | None = None
        self._broken: BaseException | None = None  # a streamed segment's write failed: seal nothing

    @property
    def open_segments(self) -> int:
        """Segments holding lines that are not visible yet."""
        return len(self._segments)

    def append(self, exchange: str, channel: Channel, ts_ms: int, line: bytes) -> list[WrittenFile]:
        """Archive one raw message (without its newline) under the UTC date of `ts_ms`.

        Before appending, closes every segment that `ts_ms` makes too old, and
        this line's segment if the line would push it over the size bound. A
        line that is not one line, or names that cannot be a partition
        directory, raise ValueError and are not archived; a failed sync of the
        writer's thread is raised here.
        """
        with self._lock:
            if self._sync_error is not None:
                raise self._sync_error
            if self._broken is not None:
                raise self._broken
            done = self._lines.append(exchange, channel, ts_ms, line)
            if done == _APPENDED:
                return []
            completed: list[WrittenFile] = []
            # Mend what `PendingLines` reported, then append again: expired, full and not open
            # each happen at most once (a segment's first line always fits).
            mends = 0
            while done > _FRAME_FULL:
                if mends == 3:
                    raise RuntimeError(f"the raw archive found no segment for a line of {exchange}:{channel}")
                mends += 1
                key: SegmentKey = (exchange, channel, utc_date(ts_ms))
                if done == _EXPIRED:
                    completed.extend(self._close_expired(ts_ms))
                elif done == _SEGMENT_FULL:
                    self._cut(sealing=(key,))
                    completed.append(self._close(key, None))
                else:
                    self._open(key, ts_ms)
                done = self._lines.append(exchange, channel, ts_ms, line)
            if done == _FRAME_FULL:
                self._cut()
            return completed

    def close_expired(self, now_ms: int) -> list[WrittenFile]:
        """Close the segments whose first line is `segment_max_age_ms` or more older than `now_ms`.

        `append` does this by itself; call it with the latest event time seen
        anywhere so that a channel that went quiet does not hold its last
        segment invisible until `close()`.
        """
        with self._lock:
            return self._close_expired(now_ms)

    def sync(self) -> None:
        """Write every open segment's pending lines as a frame and make the segments durable."""
        with self._lock:
            self._cut()
            for key, segment in list(self._segments.items()):
                if segment.unsynced and segment.writer is not None:
                    try:
                        self.storage.sync(segment.file)
                    except BaseException as exc:
                        self._abort(key, exc)
                        raise
                    segment.unsynced = False

    def planned_paths(self, file_stem: str) -> list[str]:
        """The files `close(file_stem)` will write (`named_on_close`), in the order it writes them."""
        check_stem(file_stem)
        return [self._named(segment, file_stem) for _, segment in sorted(self._segments.items())]

    def close(self, file_stem: str | None = None) -> list[WrittenFile]:
        """Complete every open segment; the writer can be used again afterwards.

        After a failed write of a streamed segment (a full disk), nothing is
        sealed: every open segment stays unsealed for `fluxforge recover`, which
        ends all channels at the same cut, and the error is raised. A
        `named_on_close` segment that cannot be written stays held for the
        next `close`; the others are written, then the first error is raised.
        `file_stem` names the segments of a `named_on_close` writer (each
        `<stem>.ndjson[.zst]` in its partition directory, so a repeated close of
        the same lines replaces the same files); the others have their names.
        """
        if (file_stem is not None) != self.named_on_close:
            raise ValueError("close takes a file_stem exactly when the writer is named_on_close")
        if file_stem is not None:
            check_stem(file_stem)
        failed: OSError | None = None
        try:
            self._stop_syncer()
        except OSError as exc:
            failed = exc
        with self._lock:
            completed: list[WrittenFile] = []
            if self._broken is None:
                try:
                    self._cut(sealing=list(self._segments))
                except OSError as exc:
                    failed = failed or exc
            if self._broken is not None:
                raise self._leave_unsealed()
            for key in sorted(self._segments):
                try:
                    completed.append(self._close(key, file_stem))
                except OSError as exc:  # the others are still closed; this one stays unsealed or held
                    failed = failed or exc
        if failed is not None:
            raise failed
        return completed

    def _close_expired(self, now_ms: int) -> list[WrittenFile]:
        expired = sorted(cast(list[SegmentKey], self._lines.expired(now_ms)))
        if expired:
            self._cut(sealing=expired)
        return [self._close(key, None) for key in expired]

    def _open(self, key: SegmentKey, ts_ms: int) -> None:
        directory = raw_partition_dir(*key)
        if self.named_on_close:
            segment = _Segment(directory, io.BytesIO())
        else:
            path = f"{directory}/{new_stem('seg', ts_ms)}{self._suffix}"
            writer = self.storage.open_recoverable(path)
            segment = _Segment(directory, writer.__enter__(), path, writer)
            self._start_syncer()
        self._lines.open(key, ts_ms)
        self._segments[key] = segment

    def _start_syncer(self) -> None:
        interval = self.sync_interval_s
        if interval is None or self._syncer is not None:
            return
        self._stop_syncing.clear()
        self._syncer = threading.Thread(
            target=self._sync_every, args=(interval,), name="raw archive sync", daemon=True
        )
        self._syncer.start()

    def _sync_every(self, interval: float) -> None:
        while not self._stop_syncing.wait(interval):
            try:
                self.sync()
            except BaseException as exc:  # handed to the appending thread by its next append
                self._sync_error = exc
                return

    def _stop_syncer(self) -> None:
        if self._syncer is not None:
            self._stop_syncing.set()
            self._syncer.join()
            self._syncer = None
        if self._sync_error is not None:
            error, self._sync_error = self._sync_error, None
            raise error

    def _named(self, segment: _Segment, file_stem: str) -> str:
        return f"{segment.directory}/{file_stem}{self._suffix}"

    def _cut(self, sealing: Collection[SegmentKey] | None = None) -> None:
        """Every open segment's pending lines as a frame, all handed to the OS before any fsync.

        One cut across all segments, so a killed process leaves every channel
        archived up to the same line (a frame of one channel written ahead of
        the others would leave the others' earlier lines missing behind it).
        Every frame is compressed first, then each is written and flushed in
        turn, and a streamed zstd segment's frame follows its cut mark
        (`frames.cut_mark`): recovery drops a cut that a kill, or a failed
        write, left in some files only. Before `sealing` segments are sealed a
        cut is made even without new lines, its marks in the order they will be
        sealed, so that the frame that proves the cut whole stays in a file
        that recovery reads. The first failed write ends the cut and leaves the
        writer broken (`close` then seals nothing).
        """
        for key, segment, frame in self._frames(sealing):
            self._write(key, segment, frame)

    def _frames(
        self, sealing: Collection[SegmentKey] | None
    ) -> list[tuple[SegmentKey, _Segment, bytes | bytearray]]:
        """What `_cut` writes to each segment, in writing order: the segments being sealed first."""
        if not self._marked:
            pending = [(key, s, self._lines.pending(key)) for key, s in self._segments.items()]
            return [(key, s, self._frame(lines)) for key, s, lines in pending if lines]
        if sealing is None and not self._lines.has_pending():
            return []
        first = set(sealing or ())
        members = sorted(self._segments, key=lambda key: (key not in first, key))
        frames = [(key, self._segments[key]) for key in members]
        data = [self._frame(self._lines.pending(key)) for key in members]
        self._cuts += 1
        return [
            (key, segment, cut_mark(self._id, self._cuts, index, len(frames), len(frame)) + frame)
            for index, ((key, segment), frame) in enumerate(zip(frames, data, strict=True))
        ]

    def _frame(self, lines: bytes) -> bytes:
        """Pending lines as one frame: zstd, or as they are; none as none."""
        return pa.compress(lines, codec="zstd", asbytes=True) if self._compress and lines else lines

    def _write(self, key: SegmentKey, segment: _Segment, frame: bytes | bytearray) -> None:
        """Write a frame of the pending lines and hand it to the OS at once, so that files receive
        their frames in the order of their cut marks; the lines stay pending if it fails."""
        try:
            segment.file.write(frame)
            segment.file.flush()
        except BaseException as exc:
            self._abort(key, exc)
            raise
        self._lines.written(key)
        segment.unsynced = True

    def _close(self, key: SegmentKey, file_stem: str | None) -> WrittenFile:
        segment = self._segments[key]
        pending = self._lines.pending(key)
        if pending:
            self._write(key, segment, self._frame(pending))
        lines = self._lines.lines(key)
        if segment.writer is not None and segment.path is not None:
            self._forget(key)
            size = segment.file.tell()
            segment.writer.__exit__(None, None, None)
            return WrittenFile(segment.path, lines, size)
        path = self._named(segment, cast(str, file_stem))
        with self.storage.open_write(path) as f:
            f.write(cast(io.BytesIO, segment.file).getbuffer())
            size = f.tell()
        self._forget(key)
        return WrittenFile(path, lines, size)

    def _forget(self, key: SegmentKey) -> _Segment:
        segment = self._segments.pop(key)
        self._lines.remove(key)
        return segment

    def _abort(self, key: SegmentKey, exc: BaseException) -> None:
        """Drop a segment whose write failed; the backend keeps what reached its recoverable file.

        The backend's `__exit__` re-raises `exc`, or its own form of it (a full
        disk as `DiskFullError`).
        """
        segment = self._forget(key)
        if segment.writer is not None:
            self._broken = exc
            try:
                segment.writer.__exit__(type(exc), exc, exc.__traceback__)
            except BaseException as raised:
                self._broken = raised
                raise

    def _leave_unsealed(self) -> BaseException:
        """After a failed write: every open segment left to `fluxforge recover`; the error to raise."""
        broken = cast(BaseException, self._broken)
        self._broken = None
        for key in list(self._segments):
            segment = self._forget(key)
            if segment.writer is not None:
                with contextlib.suppress(type(broken), OSError):
                    segment.writer.__exit__(type(broken), broken, broken.__traceback__)
        return broken


def dead_letter_record(
    reason: str, raw: bytes, source: str, logged_at_ms: int, *, max_bytes: int | None = None
) -> bytes:
    """One dead-letter JSON line: the original bytes as text when they are UTF-8, else base64.

    `max_bytes` is the limit of the message that carries the record (a Kafka message: a longer
    one is refused for good and would stop its producer). Text whose JSON escaping would pass it
    (up to six times its bytes) goes as base64; an original still too long keeps its first bytes
    that fit, with `raw_bytes`, its length, and `truncated: true` (and a reason or source too
    long for the message, its start). A `max_bytes` under 160 cannot hold a record: ValueError.
    """
    try:
        payload: dict[str, str] = {"raw": raw.decode("utf-8")}
    except UnicodeDecodeError:
        payload = {"raw_b64": base64.b64encode(raw).decode("ascii")}
    record = orjson.dumps({"reason": reason, **payload, "source": source, "logged_at_ms": logged_at_ms})
    if max_bytes is None or len(record) <= max_bytes:
        return record
    if "raw" in payload:
        encoded = base64.b64encode(raw).decode("ascii")
        record = orjson.dumps(
            {"reason": reason, "raw_b64": encoded, "source": source, "logged_at_ms": logged_at_ms}
        )
        if len(record) <= max_bytes:
            return record
    cut: dict[str, object] = {"reason": reason, "raw_b64": "", "raw_bytes": len(raw), "truncated": True}
    cut |= {"source": source, "logged_at_ms": logged_at_ms}
    if len(orjson.dumps(cut)) > max_bytes:
        # Each kept character is at most 6 bytes of JSON; the other fields take under 160.
        if max_bytes < 160:
            raise ValueError(f"a dead-letter record cannot fit {max_bytes} bytes")
        room = (max_bytes - 160) // 12
        cut |= {"reason": _cut_text(reason, room), "source": _cut_text(source, room)}
    keep = max(0, max_bytes - len(orjson.dumps(cut))) // 4 * 3  # base64: 4 characters per 3 bytes
    cut["raw_b64"] = base64.b64encode(raw[:keep]).decode("ascii")
    return orjson.dumps(cut)


def _cut_text(text: str, room: int) -> str:
    return text if len(text) <= room else text[:room] + "…"


class DeadLetterWriter:
    """Writes rejected messages to `deadletter/date=YYYY-MM-DD/<stem>.ndjson`, one JSON per line.

    Records are buffered and written as a new file per date when `batch_size`
    accumulate (never, when None), on `flush()` and on `close()`; the date is
    that of `logged_at_ms`. Files are never appended to, so each is complete
    when seen.
    """

    def __init__(self, storage: StorageBackend, *, batch_size: int | None = 1000) -> None:
        if batch_size is not None and batch_size < 1:
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
        return self.append(dead_letter_record(reason, raw, source, logged_at_ms), logged_at_ms)

    def append(self, record: bytes, logged_at_ms: int) -> list[WrittenFile]:
        """Buffer one record that is already a dead-letter line (as `dead_letter_record` makes them)."""
        date = utc_date(logged_at_ms)
        self._pending.setdefault(date, []).append(record)
        self._first_ms.setdefault(date, logged_at_ms)
        self._count += 1
        return self.flush() if self.batch_size is not None and self._count >= self.batch_size else []

    def planned_paths(self, file_stem: str) -> list[str]:
        """The files `flush(file_stem)` will write, in the order it writes them."""
        check_stem(file_stem)
        return [self._path(date, file_stem) for date in sorted(self._pending)]

    def flush(self, file_stem: str | None = None) -> list[WrittenFile]:
        """Write every buffered record now, one file per date.

        With `file_stem` the files are named after the caller (a repeated flush
        of the same records replaces the same files); without it each gets a
        time-sortable stem.
        """
        if file_stem is not None:
            check_stem(file_stem)
        written: list[WrittenFile] = []
        for date in sorted(self._pending):
            lines = self._pending[date]
            stem = new_stem("dl", self._first_ms[date]) if file_stem is None else file_stem
            path = self._path(date, stem)
            data = b"\n".join(lines) + b"\n"
            self.storage.write_bytes(path, data)
            written.append(WrittenFile(path, len(lines), len(data)))
            del self._pending[date], self._first_ms[date]
            self._count -= len(lines)
        return written

    def close(self) -> list[WrittenFile]:
        """Write what is buffered; an alias of `flush` that reads right at shutdown."""
        return self.flush()

    @staticmethod
    def _path(date: str, stem: str) -> str:
        return f"{deadletter_dir(date)}/{stem}.ndjson"


def iter_ndjson(storage: StorageBackend, path: str) -> Iterator[bytes]:
    """The lines of an archive or dead-letter file, without newlines; `.zst` is decompressed.

    Blank lines are skipped (the writers never produce them).
    """
    for block in ndjson_blocks(storage, path):
        yield from block_lines(block)


def block_lines(block: bytes) -> list[bytes]:
    """The lines of a block of whole lines (`line_blocks`), blank ones left out."""
    return [line for line in block.split(b"\n") if line]


def ndjson_blocks(storage: StorageBackend, path: str) -> Iterator[bytes]:
    """An archive or dead-letter file, `.zst` decompressed, in blocks of whole lines (`line_blocks`):
    a segment of any size needs little memory."""
    with storage.open_read(path) as raw:
        yield from line_blocks(pa.input_stream(raw, compression="zstd") if path.endswith(".zst") else raw)


def read_lines(stream: BinaryIO | pa.NativeFile) -> Iterator[bytes]:
    """Every line of `stream` without its newline; the caller closes it."""
    for block in line_blocks(stream):
        lines = block.split(b"\n")
        if block.endswith(b"\n"):
            lines.pop()
        yield from lines


def line_blocks(stream: BinaryIO | pa.NativeFile) -> Iterator[bytes]:
    """`stream` in blocks of whole lines, read 1 MiB at a time: each ends with a newline (the last
    one only if the stream does); the caller closes it."""
    tail = b""
    while chunk := stream.read(_READ_CHUNK):
        data = tail + chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            yield data[:cut]
        tail = data[cut:]
    if tail:
        yield tail
