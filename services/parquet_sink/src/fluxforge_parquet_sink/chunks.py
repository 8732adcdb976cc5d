"""Chunks: a run of one topic-partition's records and the dataset files it becomes.

Every file a chunk writes is named `<topic>+<partition>+<first>-<last offset>`
(`naming.chunk_stem`) and lies in the directory its content belongs to:

- `FeatureChunk` (a `features.<table>` topic): rows through a
  `PartitionedParquetWriter`, one Parquet file per (exchange, symbol, date),
  its provenance naming the topic, partition and offset range;
- `RawChunk` (the raw topic): accepted ticks, stamped with their ingest order
  `[offset, index in batch]`, through a `RawArchiveWriter`, one `.ndjson.zst`
  per (exchange, channel, date of event time);
- `DeadLetterChunk` (the dead-letter topic): records, through a
  `DeadLetterWriter`, one `.ndjson` per date of `logged_at_ms`.

A feature or dead-letter message the sink cannot use (not JSON, rows that do
not fit the table) becomes a dead-letter line of the same chunk, so it is kept
once, like everything else, and never stops the sink.

Chunks are pure apart from `write`; `PartitionStream` decides their boundaries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeGuard, TypeVar

import orjson
import pyarrow as pa
from fluxforge_common.dataset.partitioning import partition_dir
from fluxforge_common.dataset.provenance import Provenance
from fluxforge_common.kafka.completeness import COMPLETE_METADATA, parse_complete
from fluxforge_common.kafka.keys import parse_key
from fluxforge_common.messages import (
    DecodedTick,
    DecodedWatermark,
    Rejection,
    channel_of,
    decode_batch,
    event_time,
)
from fluxforge_common.messages.decoding import MAX_TS_MS, MIN_TS_MS
from fluxforge_common.messages.rows import decode_rows
from fluxforge_common.pipeline.ingest_stamp import stamp
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.writers import (
    DeadLetterWriter,
    PartitionedParquetWriter,
    RawArchiveWriter,
    WrittenFile,
    dead_letter_record,
)
from fluxforge_common.writers.parquet import CONVERSION_ERRORS, PartitionKey, row_reader
from fluxforge_native import ReadRows

from fluxforge_parquet_sink.naming import ChunkName
from fluxforge_parquet_sink.policy import FlushPolicy

P = TypeVar("P")


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
    headers: tuple[tuple[str, bytes], ...] = ()  # the engine's `ff-src` and `ff-complete` headers, if any
    key: bytes | None = None  # a raw record's `<exchange>:<symbol>` (fluxforge_common.kafka.keys)


@dataclass(slots=True)
class Decoded(Generic[P]):
    """A message decoded once: its payload and the span of event times it carries."""

    payload: P
    min_ms: int | None = None
    max_ms: int | None = None


def _source(record: Record) -> str:
    return f"kafka:{record.topic}/{record.partition}@{record.offset}"


def _plausible_ms(value: object) -> TypeGuard[int]:
    return type(value) is int and MIN_TS_MS <= value < MAX_TS_MS


def _record_ms(record: Record) -> int:
    return record.timestamp if _plausible_ms(record.timestamp) else MIN_TS_MS


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
        self.dead = DeadLetterWriter(storage, batch_size=None)  # written with the chunk, under its name
        self.dead_letters = 0  # records given to `dead` (the stats read it after the write)
        # The partition's dedupe positions once this chunk's records are taken (`ff-src/1 ...`,
        # set when the chunk closes): committed with `end + 1` as the offset's metadata.
        self.positions = ""

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

    def dead_letter(self, record: Record, reason: str, raw: bytes | None = None) -> None:
        """Keep `raw` (the record's value when None) as a dead-letter line of this chunk."""
        ms = _record_ms(record)
        value = (record.value or b"") if raw is None else raw
        self._keep_dead_letter(dead_letter_record(reason, value, _source(record), ms), ms)

    def _keep_dead_letter(self, line: bytes, logged_at_ms: int) -> None:
        self.dead.append(line, logged_at_ms)
        self.dead_letters += 1

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
        """Write every file of the chunk, each atomically.

        A replay of the same records writes the same files (same names, same content).
        """


Rows = ReadRows | list[dict[str, Any]]


class FeatureChunk(Chunk[Rows | str]):
    """Rows of one feature table; payload is the rows (read natively where `row_reader` takes
    them, else decoded as dicts), or the reason they are unusable."""

    kind = "features"

    def __init__(
        self,
        storage: StorageBackend,
        topic: str,
        partition: int,
        policy: FlushPolicy,
        table: str,
        schema: pa.Schema,
        origin: Provenance,
    ) -> None:
        super().__init__(storage, topic, partition, policy)
        self.table = table
        self.schema = schema
        self.origin = origin
        self.writer: PartitionedParquetWriter | None = None
        self.reader = row_reader(schema)
        self.keys: set[tuple[str, str, str]] = set()
        self.rows = 0
        self.complete_ms: int | None = None  # the greatest `ff-complete` of the chunk's messages
        # The messages taken, their bytes kept, so the rare message whose values do not fit the
        # schema can be found when the chunk is written. Bytes, not the decoded rows: a 105-column
        # row is ~2.5 KB as JSON and several times that as a dict, and dicts kept alive made
        # decoding and adding a row ~1.3x slower.
        self.received: list[Record] = []

    def decode(self, record: Record) -> Decoded[Rows | str]:
        if record.value is None:
            return Decoded([])
        read = None if self.reader is None else self.reader.read(record.value)
        if read is not None:
            return Decoded(read, read.min_ts, read.max_ts)
        try:
            rows = decode_rows(record.value)
        except ValueError as exc:
            return Decoded(f"sink: {self.table} message is not a JSON array of rows: {exc}")
        stamps = [ts for row in rows if _plausible_ms(ts := row.get("ts"))]
        if not stamps:
            return Decoded(rows)
        return Decoded(rows, min(stamps), max(stamps))

    def _add(self, record: Record, payload: Rows | str) -> None:
        complete = parse_complete(record.headers)
        if complete is not None and (self.complete_ms is None or complete > self.complete_ms):
            self.complete_ms = complete
        if isinstance(payload, str):
            self.dead_letter(record, payload)
            return
        if not len(payload):
            return
        if self.writer is None:
            self.writer = self._parquet_writer()
        try:  # all or nothing
            keys = self.writer.add_read(payload) if isinstance(payload, ReadRows) else None
            if keys is None:
                rows = payload if isinstance(payload, list) else decode_rows(record.value or b"")
                keys = self.writer.add(rows)
        except (ValueError, OverflowError) as exc:
            self.dead_letter(record, f"sink: {self.table} rows rejected: {exc}")
            return
        self._accepted(record, keys, len(payload))

    def _parquet_writer(self) -> PartitionedParquetWriter:
        policy = self.policy
        return PartitionedParquetWriter(
            self.storage,
            self.table,
            self.schema,
            compression=policy.compression,
            row_group_size=policy.row_group_size,
        )

    def _accepted(self, record: Record, keys: Iterable[PartitionKey], rows: int) -> None:
        self.keys.update(keys)
        self.rows += rows
        self.received.append(record)

    @property
    def units(self) -> int:
        return self.rows

    def full(self) -> bool:
        return self.rows >= self.policy.rows

    def planned_paths(self) -> list[str]:
        stem = self.name.stem
        paths = [f"{partition_dir(self.table, *key)}/{stem}.parquet" for key in sorted(self.keys)]
        return paths + self.dead.planned_paths(stem)

    def write(self) -> list[WrittenFile]:
        stem = self.name.stem
        written: list[WrittenFile] = []
        if self.writer is not None:
            name = self.name
            source = {
                "mode": "kafka",
                "topic": name.topic,
                "partition": name.partition,
                "offsets": [name.start, name.end],
            }
            try:
                metadata = self.origin.with_source(source).metadata()
                if self.complete_ms is not None:
                    metadata[COMPLETE_METADATA] = str(self.complete_ms)
                written += self.writer.flush(file_stem=stem, metadata=metadata)
            except ValueError as exc:
                stale = self._without_misfits()
                if stale is None:
                    raise
                raise RowsRejectedError(stale) from exc
            self.writer = None  # the rows are on disk; free them before the commit
            self.received = []
        return written + self.dead.flush(stem)

    def _without_misfits(self) -> list[str] | None:
        """Dead-letter the messages whose rows do not convert; rebuild the chunk from the others.

        Returns the paths the rebuilt chunk no longer writes, or None when every
        message converts (the write failed for another reason).
        """
        misfits: list[tuple[Record, str]] = []
        fits: list[tuple[Record, list[dict[str, Any]]]] = []
        for record in self.received:
            assert record.value is not None  # a message without rows is not kept
            rows = decode_rows(record.value)  # decoded once already
            try:
                pa.Table.from_pylist(rows, schema=self.schema)
            except CONVERSION_ERRORS as exc:
                misfits.append((record, str(exc)))
            else:
                fits.append((record, rows))
        if not misfits:
            return None
        before = set(self.planned_paths())
        for record, reason in misfits:
            self.dead_letter(record, f"sink: {self.table} rows do not fit the schema: {reason}")
        self.writer = self._parquet_writer()
        self.keys, self.rows, self.received = set(), 0, []
        for record, rows in fits:
            self._accepted(record, self.writer.add(rows), len(rows))
        return sorted(before - set(self.planned_paths()))


class RawChunk(Chunk[list[DecodedTick | DecodedWatermark | Rejection]]):
    """Accepted raw ticks, stamped `_ingest: [offset, index]`, grouped per (exchange, channel, date).

    Memory: the archive writer holds each group as zstd frames of ~1 MiB of
    lines and at most one uncompressed frame, so a chunk of a few hundred
    thousand ticks costs its compressed size (typically a tenth of the text),
    with no Python object per tick. The final name is known only when the
    chunk closes; keeping the frames until then means the file is written in
    one go (one PUT on S3) without a rename in the storage interface.
    """

    kind = "raw"

    def __init__(self, storage: StorageBackend, topic: str, partition: int, policy: FlushPolicy) -> None:
        super().__init__(storage, topic, partition, policy)
        self.archive = RawArchiveWriter(
            storage,
            compression=policy.raw_compression,
            segment_max_bytes=None,
            segment_max_age_ms=None,
            named_on_close=True,
        )
        self.size = 0
        self.ticks = 0
        self.rejected = 0

    @property
    def span_ms(self) -> int:
        return self.policy.raw_span_ms

    def decode(self, record: Record) -> Decoded[list[DecodedTick | DecodedWatermark | Rejection]]:
        if record.value is None:
            return Decoded([])
        items = decode_batch(record.value, self.policy.max_message_bytes)
        times = [event_time(item.tick) for item in items if type(item) is DecodedTick]
        if not times:
            return Decoded(items)
        return Decoded(items, min(times), max(times))

    def _add(self, record: Record, payload: list[DecodedTick | DecodedWatermark | Rejection]) -> None:
        offset = record.offset
        append = self.archive.append
        owner = parse_key(record.key)
        for n, item in enumerate(payload):
            if type(item) is not DecodedTick:
                # A rejection is the feature engine's to dead-letter; a watermark is no tick. Neither is archived.
                self.rejected += type(item) is Rejection
                continue
            tick = item.tick
            if owner != (tick.exchange, tick.symbol):  # the engine dead-letters it under the key rules
                self.rejected += 1
                continue
            line = stamp(item.raw, offset, n)
            if b"\n" in line:  # pretty-printed JSON is valid input; an archive line must be one line
                line = orjson.dumps(orjson.loads(line))
            try:
                append(tick.exchange, channel_of(tick), event_time(tick), line)
            except ValueError as exc:
                self.dead_letter(record, f"sink: cannot archive tick: {exc}", item.raw)
                continue
            self.size += len(line) + 1
            self.ticks += 1

    @property
    def units(self) -> int:
        return self.ticks

    def full(self) -> bool:
        return self.size >= self.policy.raw_bytes

    def planned_paths(self) -> list[str]:
        stem = self.name.stem
        return self.archive.planned_paths(stem) + self.dead.planned_paths(stem)

    def write(self) -> list[WrittenFile]:
        stem = self.name.stem
        return self.archive.close(stem) + self.dead.flush(stem)


class DeadLetterChunk(Chunk[tuple[bytes, int] | None]):
    """Dead-letter records, kept byte for byte (one line each), per date of `logged_at_ms`."""

    kind = "deadletter"

    @property
    def span_ms(self) -> int:
        return self.policy.deadletter_span_ms

    def decode(self, record: Record) -> Decoded[tuple[bytes, int] | None]:
        value = (record.value or b"").strip()
        if not value:
            return Decoded(None)
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and _plausible_ms(logged := obj.get("logged_at_ms")):
            line = orjson.dumps(obj) if b"\n" in value else value
            return Decoded((line, logged), logged, logged)
        ms = _record_ms(record)
        line = dead_letter_record("sink: unreadable dead-letter record", value, _source(record), ms)
        return Decoded((line, ms), ms, ms)

    def _add(self, record: Record, payload: tuple[bytes, int] | None) -> None:
        if payload is not None:
            self._keep_dead_letter(*payload)

    @property
    def units(self) -> int:
        return self.dead_letters

    def full(self) -> bool:
        return self.dead_letters >= self.policy.deadletter_records

    def planned_paths(self) -> list[str]:
        return self.dead.planned_paths(self.name.stem)

    def write(self) -> list[WrittenFile]:
        return self.dead.flush(self.name.stem)
