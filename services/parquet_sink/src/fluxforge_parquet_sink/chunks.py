"""Chunks: a run of one topic-partition's records and the dataset files it becomes.

Every file a chunk writes is named `<topic>+<partition>+<first>-<last offset>`
(`naming.chunk_stem`) and lies in the directory its content belongs to:

- `FeatureChunk` (a `features.<table>` topic): rows through a
  `PartitionedParquetWriter`, one Parquet file per (exchange, symbol, date);
- `RawChunk` (the raw topic): accepted ticks, stamped with their ingest order
  `[offset, index in batch]`, one `.ndjson.zst` per (exchange, channel, date of
  event time); held as compressed frames, never as one object per tick;
- `DeadLetterChunk` (the dead-letter topic): records, one `.ndjson` per date of
  `logged_at_ms`.

A feature or dead-letter message the sink cannot use (not JSON, rows that do
not fit the table) becomes a dead-letter line of the same chunk, so it is kept
once, like everything else, and never stops the sink.

Chunks are pure apart from `write`; `PartitionStream` decides their boundaries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Generic, TypeGuard, TypeVar

import orjson
import pyarrow as pa
from fluxforge_common.dataset.partitioning import (
    deadletter_dir,
    partition_dir,
    raw_partition_dir,
    utc_date,
)
from fluxforge_common.messages import DecodedTick, Rejection, channel_of, decode_batch, event_time
from fluxforge_common.messages.decoding import MAX_TS_MS, MIN_TS_MS
from fluxforge_common.messages.rows import decode_rows, encode_rows
from fluxforge_common.pipeline.ingest_order import stamp
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.writers import PartitionedParquetWriter, WrittenFile, dead_letter_record

from fluxforge_parquet_sink.naming import ChunkName
from fluxforge_parquet_sink.policy import FlushPolicy

FRAME_BYTES: Final = 1 << 20  # uncompressed bytes per zstd frame, as RawArchiveWriter writes them

P = TypeVar("P")
_CONVERSION_ERRORS = (
    pa.ArrowInvalid,
    pa.ArrowTypeError,
    pa.ArrowNotImplementedError,
    ValueError,
    TypeError,
    OverflowError,
)


class RowsRejectedError(Exception):
    """Rows that passed `add` did not convert to the table's schema when written.

    The chunk has dead-lettered the messages holding them and rebuilt itself
    without them; `stale` lists the files of the earlier plan that the rebuilt
    chunk will not write (the caller deletes them, then writes again).
    """

    def __init__(self, stale: list[str]) -> None:
        super().__init__(f"{len(stale)} file(s) no longer part of the chunk")
        self.stale = stale


@dataclass(frozen=True, slots=True)
class Record:
    """What the sink needs of a Kafka record."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # the record's Kafka timestamp (ms), stored in the log: as replayable as the value
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()  # the engine's `ff-src` lineage header, if any


@dataclass(slots=True)
class Decoded(Generic[P]):
    """A message decoded once: its payload and the span of event times it carries."""

    payload: P
    min_ms: int | None = None
    max_ms: int | None = None


@dataclass(slots=True)
class _DeadLetters:
    """Dead-letter lines of one chunk, per date."""

    lines: dict[str, list[bytes]] = field(default_factory=dict)
    count: int = 0

    def add(self, date: str, line: bytes) -> None:
        self.lines.setdefault(date, []).append(line)
        self.count += 1

    def paths(self, stem: str) -> list[str]:
        return [f"{deadletter_dir(date)}/{stem}.ndjson" for date in sorted(self.lines)]

    def write(self, storage: StorageBackend, stem: str) -> list[WrittenFile]:
        written = []
        for date in sorted(self.lines):
            lines = self.lines[date]
            data = b"\n".join(lines) + b"\n"
            path = f"{deadletter_dir(date)}/{stem}.ndjson"
            storage.write_bytes(path, data)
            written.append(WrittenFile(path, len(lines), len(data)))
        return written


def _source(record: Record) -> str:
    return f"kafka:{record.topic}/{record.partition}@{record.offset}"


def _plausible_ms(value: object) -> TypeGuard[int]:
    return type(value) is int and MIN_TS_MS <= value < MAX_TS_MS


def _record_date(record: Record) -> tuple[str, int]:
    ms = record.timestamp if _plausible_ms(record.timestamp) else MIN_TS_MS
    return utc_date(ms), ms


class Chunk(ABC, Generic[P]):
    """Records `start..end` (inclusive offsets) of one topic-partition, not yet written."""

    kind: ClassVar[str]

    def __init__(self, storage: StorageBackend, topic: str, partition: int, policy: FlushPolicy) -> None:
        self.storage = storage
        self.topic = topic
        self.partition = partition
        self.policy = policy
        self.start = -1
        self.end = -1
        self.messages = 0
        self.first_ms: int | None = None
        self.last_added = 0.0
        self.reason = ""
        self.dead = _DeadLetters()
        # The partition's dedupe watermarks once this chunk's records are taken (`ff-src/1 ...`,
        # set when the chunk closes): committed with `end + 1` as the offset's metadata.
        self.watermarks = ""

    @property
    def name(self) -> ChunkName:
        return ChunkName(self.topic, self.partition, self.start, self.end)

    @property
    def span_ms(self) -> int:
        return self.policy.span_ms

    def reaches_span(self, decoded: Decoded[P]) -> bool:
        """True if `decoded` lies `span_ms` or more past this chunk's first event time."""
        return (
            self.messages > 0
            and decoded.max_ms is not None
            and self.first_ms is not None
            and decoded.max_ms - self.first_ms >= self.span_ms
        )

    def add(self, record: Record, decoded: Decoded[P], now: float) -> None:
        if self.messages == 0:
            self.start = record.offset
        self.end = record.offset
        self.messages += 1
        self.last_added = now
        if self.first_ms is None and decoded.min_ms is not None:
            self.first_ms = decoded.min_ms
        self._add(record, decoded.payload)

    def dead_letter(self, record: Record, reason: str) -> None:
        date, ms = _record_date(record)
        self.dead.add(date, dead_letter_record(reason, record.value or b"", _source(record), ms))

    @abstractmethod
    def decode(self, record: Record) -> Decoded[P]:
        """Parse a message (no state change), so its event times can decide the boundary first."""

    @abstractmethod
    def _add(self, record: Record, payload: P) -> None: ...

    @property
    @abstractmethod
    def units(self) -> int:
        """Rows, ticks or records held (what the stats count)."""

    @abstractmethod
    def full(self) -> bool:
        """The size bound is reached: close after the message just added."""

    @abstractmethod
    def planned_paths(self) -> list[str]:
        """Every file `write` will create (the recovery journal lists them before they exist)."""

    @abstractmethod
    def write(self) -> list[WrittenFile]:
        """Write every file of the chunk, each atomically (a repeated write gives the same files)."""


class FeatureChunk(Chunk[list[dict[str, Any]] | str]):
    """Rows of one feature table; payload is the decoded rows, or the reason they are unusable."""

    kind = "features"

    def __init__(
        self,
        storage: StorageBackend,
        topic: str,
        partition: int,
        policy: FlushPolicy,
        table: str,
        schema: pa.Schema,
    ) -> None:
        super().__init__(storage, topic, partition, policy)
        self.table = table
        self.schema = schema
        self.writer: PartitionedParquetWriter | None = None
        self.keys: set[tuple[str, str, str]] = set()
        self.rows = 0
        # Per message: where it came from and its rows (the writer holds the same dicts), so the
        # rare message whose values do not fit the schema can be found when the chunk is written.
        self.received: list[tuple[Record, list[dict[str, Any]]]] = []

    def decode(self, record: Record) -> Decoded[list[dict[str, Any]] | str]:
        if record.value is None:
            return Decoded([])
        try:
            rows = decode_rows(record.value)
        except ValueError as exc:
            return Decoded(f"sink: {self.table} message is not a JSON array of rows: {exc}")
        stamps = [ts for row in rows if _plausible_ms(ts := row.get("ts"))]
        if not stamps:
            return Decoded(rows)
        return Decoded(rows, min(stamps), max(stamps))

    def _add(self, record: Record, payload: list[dict[str, Any]] | str) -> None:
        if isinstance(payload, str):
            self.dead_letter(record, payload)
            return
        if not payload:
            return
        if self.writer is None:
            self.writer = PartitionedParquetWriter(
                self.storage, self.table, self.schema, row_group_size=self.policy.row_group_size
            )
        try:
            self.writer.add(payload)  # all or nothing
        except (ValueError, OverflowError) as exc:
            self.dead_letter(record, f"sink: {self.table} rows rejected: {exc}")
            return
        self._accepted(record, payload)

    def _accepted(self, record: Record, rows: list[dict[str, Any]]) -> None:
        keys = self.keys
        for row in rows:
            keys.add((row["exchange"], row["symbol"], utc_date(row["ts"])))
        self.rows += len(rows)
        self.received.append(
            (Record(record.topic, record.partition, record.offset, record.timestamp, None), rows)
        )

    @property
    def units(self) -> int:
        return self.rows

    def full(self) -> bool:
        return self.rows >= self.policy.rows

    def planned_paths(self) -> list[str]:
        stem = self.name.stem
        paths = [f"{partition_dir(self.table, *key)}/{stem}.parquet" for key in sorted(self.keys)]
        return paths + self.dead.paths(stem)

    def write(self) -> list[WrittenFile]:
        stem = self.name.stem
        written: list[WrittenFile] = []
        if self.writer is not None:
            try:
                written += self.writer.flush(file_stem=stem)
            except ValueError as exc:
                stale = self._without_misfits()
                if stale is None:
                    raise
                raise RowsRejectedError(stale) from exc
            self.writer = None  # the rows are on disk; free them before the commit
            self.received = []
        return written + self.dead.write(self.storage, stem)

    def _without_misfits(self) -> list[str] | None:
        """Dead-letter the messages whose rows do not convert; rebuild the chunk from the others.

        Returns the paths the rebuilt chunk no longer writes, or None when every
        message converts (the write failed for another reason).
        """
        misfits: list[tuple[Record, list[dict[str, Any]], str]] = []
        fits: list[tuple[Record, list[dict[str, Any]]]] = []
        for meta, rows in self.received:
            try:
                pa.Table.from_pylist(rows, schema=self.schema)
            except _CONVERSION_ERRORS as exc:
                misfits.append((meta, rows, str(exc)))
            else:
                fits.append((meta, rows))
        if not misfits:
            return None
        before = set(self.planned_paths())
        for meta, rows, reason in misfits:
            date, ms = _record_date(meta)
            line = dead_letter_record(
                f"sink: {self.table} rows do not fit the schema: {reason}",
                encode_rows(rows),
                _source(meta),
                ms,
            )
            self.dead.add(date, line)
        self.writer = PartitionedParquetWriter(
            self.storage, self.table, self.schema, row_group_size=self.policy.row_group_size
        )
        self.keys, self.rows, self.received = set(), 0, []
        for meta, rows in fits:
            self.writer.add(rows)
            self._accepted(meta, rows)
        return sorted(before - set(self.planned_paths()))


class _RawGroup:
    """One archive file of a chunk: compressed frames plus the uncompressed tail."""

    __slots__ = ("directory", "frames", "lines", "pending", "size")

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.frames: list[bytes] = []
        self.pending = bytearray()
        self.lines = 0
        self.size = 0


class RawChunk(Chunk[list[DecodedTick | Rejection]]):
    """Accepted raw ticks, stamped `_ingest: [offset, index]`, grouped per (exchange, channel, date).

    Memory: each group keeps zstd frames of ~1 MiB of lines (pyarrow's codec,
    as `RawArchiveWriter` writes them) and at most one uncompressed frame, so a
    chunk of a few hundred thousand ticks costs its compressed size (typically
    a tenth of the text), with no Python object per tick. The final name is
    known only when the chunk closes; keeping the frames until then means the
    file is written in one go (one PUT on S3) without a rename in the storage
    interface.
    """

    kind = "raw"

    def __init__(self, storage: StorageBackend, topic: str, partition: int, policy: FlushPolicy) -> None:
        super().__init__(storage, topic, partition, policy)
        self.groups: dict[tuple[str, str, str], _RawGroup] = {}
        self.size = 0
        self.ticks = 0
        self.rejected = 0
        self._compress = policy.raw_compression == "zstd"
        self._suffix = ".ndjson.zst" if self._compress else ".ndjson"

    @property
    def span_ms(self) -> int:
        return self.policy.raw_span_ms

    def decode(self, record: Record) -> Decoded[list[DecodedTick | Rejection]]:
        if record.value is None:
            return Decoded([])
        items = decode_batch(record.value, self.policy.max_message_bytes)
        times = [event_time(item.tick) for item in items if type(item) is DecodedTick]
        if not times:
            return Decoded(items)
        return Decoded(items, min(times), max(times))

    def _add(self, record: Record, payload: list[DecodedTick | Rejection]) -> None:
        offset = record.offset
        compress = self._compress
        groups = self.groups
        for n, item in enumerate(payload):
            if type(item) is not DecodedTick:
                self.rejected += 1  # the feature engine dead-letters it; not part of the archive
                continue
            tick = item.tick
            key = (tick.exchange, channel_of(tick), utc_date(event_time(tick)))
            group = groups.get(key)
            if group is None:
                try:
                    directory = raw_partition_dir(tick.exchange, channel_of(tick), key[2])
                except ValueError as exc:
                    date, ms = _record_date(record)
                    reason = f"sink: cannot archive tick: {exc}"
                    self.dead.add(date, dead_letter_record(reason, item.raw, _source(record), ms))
                    continue
                group = groups[key] = _RawGroup(directory)
            line = stamp(item.raw, offset, n)
            if b"\n" in line:  # pretty-printed JSON is valid input; an archive line must be one line
                line = orjson.dumps(orjson.loads(line))
            pending = group.pending
            pending += line
            pending += b"\n"
            group.lines += 1
            added = len(line) + 1
            group.size += added
            self.size += added
            self.ticks += 1
            if compress and len(pending) >= FRAME_BYTES:
                group.frames.append(pa.compress(pending, codec="zstd", asbytes=True))
                group.pending = bytearray()

    @property
    def units(self) -> int:
        return self.ticks

    def full(self) -> bool:
        return self.size >= self.policy.raw_bytes

    def _path(self, group: _RawGroup, stem: str) -> str:
        return f"{group.directory}/{stem}{self._suffix}"

    def planned_paths(self) -> list[str]:
        stem = self.name.stem
        return [self._path(self.groups[key], stem) for key in sorted(self.groups)] + self.dead.paths(stem)

    def write(self) -> list[WrittenFile]:
        stem = self.name.stem
        written: list[WrittenFile] = []
        for key in sorted(self.groups):
            group = self.groups[key]
            path = self._path(group, stem)
            with self.storage.open_write(path) as f:
                for frame in group.frames:
                    f.write(frame)
                if group.pending:
                    tail = bytes(group.pending)
                    f.write(pa.compress(tail, codec="zstd", asbytes=True) if self._compress else tail)
                size = f.tell()
            written.append(WrittenFile(path, group.lines, size))
        return written + self.dead.write(self.storage, stem)


class DeadLetterChunk(Chunk[tuple[str, bytes] | None]):
    """Dead-letter records, kept byte for byte (one line each), per date of `logged_at_ms`."""

    kind = "deadletter"

    @property
    def span_ms(self) -> int:
        return self.policy.deadletter_span_ms

    def decode(self, record: Record) -> Decoded[tuple[str, bytes] | None]:
        value = (record.value or b"").strip()
        if not value:
            return Decoded(None)
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and _plausible_ms(logged := obj.get("logged_at_ms")):
            line = orjson.dumps(obj) if b"\n" in value else value
            return Decoded((utc_date(logged), line), logged, logged)
        date, ms = _record_date(record)
        line = dead_letter_record("sink: unreadable dead-letter record", value, _source(record), ms)
        return Decoded((date, line), ms, ms)

    def _add(self, record: Record, payload: tuple[str, bytes] | None) -> None:
        if payload is not None:
            self.dead.add(*payload)

    @property
    def units(self) -> int:
        return self.dead.count

    def full(self) -> bool:
        return self.dead.count >= self.policy.deadletter_records

    def planned_paths(self) -> list[str]:
        return self.dead.paths(self.name.stem)

    def write(self) -> list[WrittenFile]:
        return self.dead.write(self.storage, self.name.stem)
