"""The sink without Kafka: records in, copies dropped, chunks cut, files written; the caller commits.

`SinkCore` is what the Kafka runner drives and what the unit tests drive
directly: `assign` (recovery, and the partition's dedupe positions from the
committed offset's metadata) before a partition's first record, `add` records
in offset order, `write` each closed chunk (journal entry, then files), then
commit `chunk.end + 1` with `chunk.positions` as its metadata - the caller's
job, because only the caller knows whether Kafka accepted it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

import pyarrow as pa
from fluxforge_common.config.state import StateConfig
from fluxforge_common.dataset.provenance import provenance
from fluxforge_common.features import TABLES, table_schema
from fluxforge_common.kafka import TopicNames
from fluxforge_common.kafka.lineage import Deduplicator, decode_positions, encode_positions, parse_source
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.writers import WrittenFile

from fluxforge_parquet_sink.chunks import (
    Chunk,
    DeadLetterChunk,
    FeatureChunk,
    RawChunk,
    Record,
    RowsRejectedError,
)
from fluxforge_parquet_sink.journal import Journal
from fluxforge_parquet_sink.naming import check_topic
from fluxforge_parquet_sink.policy import FlushPolicy
from fluxforge_parquet_sink.stats import SinkStats

RAW: Final = "raw"
DEADLETTER: Final = "deadletter"
KINDS: Final = (*TABLES, RAW, DEADLETTER)

DEDUPED: Final = (*TABLES, DEADLETTER)  # kinds whose messages the feature engine writes (`ff-src`)

AnyChunk = Chunk[Any]
TopicPartitionKey = tuple[str, int]

log = logging.getLogger("fluxforge.sink")


def route_topics(names: TopicNames, tables: Iterable[str], *, raw: bool, deadletter: bool) -> dict[str, str]:
    """topic -> what it carries (`hf`, `bars`, `trades`, `ticker`, `raw`, `deadletter`)."""
    routes: dict[str, str] = {}
    for table in tables:
        if table not in names.features:
            raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
        routes[names.features[table]] = table
    if raw:
        routes[names.raw] = RAW
    if deadletter:
        routes[names.deadletter] = DEADLETTER
    if not routes:
        raise ValueError("nothing to consume: give at least one table, or raw, or deadletter")
    return routes


class PartitionStream:
    """Cuts one topic-partition's records into chunks, by the records alone.

    With a `Deduplicator` (feature and dead-letter topics), a message whose
    `ff-src` (raw partition, offset, index) is at or below the greatest one
    taken from that raw partition is a copy the feature engine re-sent after a
    crash: it is dropped before anything else looks at it, so it neither enters
    a chunk nor moves a boundary. Messages without the header (the collector's
    dead letters) are all kept.

    A kept message whose event time reaches the span bound starts a new chunk
    (the open one closes first, reason "span"); a chunk that reaches its size
    bound closes after the message that filled it (reason "size"). So the chunk
    boundaries depend only on the kept records from the chunk's first one on,
    and which records are kept depends only on the records and the positions
    at the committed offset: a sink that resumes at a committed chunk boundary
    with the positions committed there cuts the same chunks.

    A closed chunk carries the positions after its last record
    (`chunk.positions`), the metadata to commit with `chunk.end + 1`.
    """

    def __init__(
        self,
        new_chunk: Callable[[], AnyChunk],
        key: TopicPartitionKey,
        dedupe: Deduplicator | None = None,
    ) -> None:
        self._new_chunk = new_chunk
        self.topic, self.partition = key
        self.dedupe = dedupe
        self.current: AnyChunk | None = None
        self.last_offset = -1
        self.duplicates = 0

    def add(self, record: Record, now: float) -> list[AnyChunk]:
        if record.offset <= self.last_offset:
            return []  # delivered twice within one assignment: already in a chunk
        self.last_offset = record.offset
        dedupe = self.dedupe
        source = None
        if dedupe is not None:
            source = parse_source(record.headers)
            if source is not None and not dedupe.is_new(self.topic, self.partition, source):
                self.duplicates += 1
                return []
        chunk = self.current if self.current is not None else self._new_chunk()
        decoded = chunk.decode(record)
        closed: list[AnyChunk] = []
        if chunk.reaches_span(decoded):
            self._close(chunk, "span")  # before this record is taken: not part of its positions
            closed.append(chunk)
            chunk = self._new_chunk()
        if source is not None:
            assert dedupe is not None
            dedupe.take(self.topic, self.partition, source)
        chunk.add(record, decoded, now)
        if chunk.full():
            self._close(chunk, "size")
            closed.append(chunk)
            self.current = None
        else:
            self.current = chunk
        return closed

    def positions(self) -> str:
        """The dedupe positions of what was taken so far, as commit metadata ("" without dedupe)."""
        if self.dedupe is None:
            return ""
        return encode_positions(self.dedupe.partition_positions(self.topic, self.partition))

    def _close(self, chunk: AnyChunk, reason: str) -> None:
        chunk.reason = reason
        chunk.positions = self.positions()

    def close(self, reason: str) -> AnyChunk | None:
        chunk, self.current = self.current, None
        if chunk is not None:
            self._close(chunk, reason)
        return chunk

    def idle_since(self) -> float | None:
        return None if self.current is None else self.current.last_added


class SinkCore:
    """Chunks per assigned topic-partition over one storage root."""

    def __init__(
        self,
        storage: StorageBackend,
        policy: FlushPolicy,
        features: StateConfig,
        routes: dict[str, str],
        *,
        stats: SinkStats | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for topic, kind in routes.items():
            check_topic(topic)
            if kind not in KINDS:
                raise ValueError(f"topic {topic} routed to unknown kind {kind!r}")
        self.storage = storage
        self.policy = policy
        self.routes = dict(routes)
        self.stats = stats if stats is not None else SinkStats()
        self.journal = Journal(storage)
        self._clock = clock
        self._schemas: dict[str, pa.Schema] = {
            kind: table_schema(kind, features) for kind in routes.values() if kind in TABLES
        }
        self._origin = provenance(features, {"mode": "kafka"})
        self.streams: dict[TopicPartitionKey, PartitionStream] = {}

    @property
    def topics(self) -> list[str]:
        return sorted(self.routes)

    def _factory(self, topic: str, partition: int) -> Callable[[], AnyChunk]:
        kind = self.routes[topic]
        storage, policy = self.storage, self.policy
        if kind == RAW:
            return lambda: RawChunk(storage, topic, partition, policy)
        if kind == DEADLETTER:
            return lambda: DeadLetterChunk(storage, topic, partition, policy)
        schema, origin = self._schemas[kind], self._origin
        return lambda: FeatureChunk(storage, topic, partition, policy, kind, schema, origin)

    # -- assignment -----------------------------------------------------------------------------

    def is_assigned(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self.streams

    def is_open(self, topic: str, partition: int) -> bool:
        """True if the partition holds records not written yet."""
        stream = self.streams.get((topic, partition))
        return stream is not None and stream.current is not None

    def assign(
        self, topic: str, partition: int, committed: int | None, metadata: str | None = None
    ) -> list[str]:
        """Take a partition whose group position is `committed`: undo its uncommitted files first.

        `metadata` is what was committed with that offset: the dedupe positions
        of the records before it (`chunk.positions`). Unreadable metadata
        (another writer's, another format) is logged and ignored: the partition
        then starts without positions, as a new group does.
        """
        if topic not in self.routes:
            raise ValueError(f"topic {topic} is not one this sink consumes")
        deleted = self.journal.recover(topic, partition, committed)
        self.stats.recovered_files += len(deleted)
        dedupe = None
        if self.routes[topic] in DEDUPED:
            dedupe = Deduplicator()
            try:
                dedupe.load_partition(topic, partition, decode_positions(metadata))
            except ValueError as exc:
                log.warning(
                    "%s/%d: committed offset %s carries metadata that is not this sink's dedupe "
                    "positions (%s); copies re-sent by the feature engine before it are not recognised",
                    topic,
                    partition,
                    committed,
                    exc,
                )
        key = (topic, partition)
        self.streams[key] = PartitionStream(self._factory(topic, partition), key, dedupe)
        return deleted

    def positions(self, topic: str, partition: int) -> str:
        """Commit metadata for a position past every record taken so far (no open chunk)."""
        return self.streams[(topic, partition)].positions()

    def revoke(self, topic: str, partition: int) -> None:
        """Forget a partition; its open chunk is dropped (the next owner reads it again)."""
        stream = self.streams.pop((topic, partition), None)
        if stream is not None and stream.current is not None:
            self.stats.dropped_chunks += 1

    # -- records ----------------------------------------------------------------------------------

    def add(self, records: Iterable[Record]) -> list[AnyChunk]:
        """Feed records (each partition's in offset order); returns the chunks they closed."""
        now = self._clock()
        closed: list[AnyChunk] = []
        stats = self.stats
        messages = stats.messages
        for record in records:
            stream = self.streams.get((record.topic, record.partition))
            if stream is None:
                raise RuntimeError(f"{record.topic}/{record.partition} is not assigned (call assign first)")
            messages[self.routes[record.topic]] += 1
            before = stream.duplicates
            closed += stream.add(record, now)
            stats.duplicates += stream.duplicates - before
        return closed

    def idle(self, now: float | None = None) -> list[AnyChunk]:
        """Close the chunks that received nothing for `policy.idle_s` (0 = never)."""
        if self.policy.idle_s <= 0:
            return []
        now = self._clock() if now is None else now
        closed = []
        for key in sorted(self.streams):
            stream = self.streams[key]
            since = stream.idle_since()
            if since is not None and now - since >= self.policy.idle_s:
                chunk = stream.close("idle")
                if chunk is not None:
                    closed.append(chunk)
        return closed

    def close_all(self, reason: str = "shutdown") -> list[AnyChunk]:
        closed = [self.streams[key].close(reason) for key in sorted(self.streams)]
        return [chunk for chunk in closed if chunk is not None]

    def buffered(self) -> dict[str, int]:
        """Units held in open chunks, per kind (rows, ticks, records)."""
        held: dict[str, int] = {}
        for (topic, _), stream in self.streams.items():
            if stream.current is not None:
                kind = self.routes[topic]
                held[kind] = held.get(kind, 0) + stream.current.units
        return held

    # -- output -----------------------------------------------------------------------------------

    def write(self, chunk: AnyChunk) -> list[WrittenFile]:
        """Journal the chunk's files, then write them; the caller commits `chunk.end + 1` after."""
        self.journal.record(chunk.name, chunk.planned_paths())
        try:
            written = chunk.write()
        except RowsRejectedError as rejected:  # a few messages' values did not fit: now dead letters
            self.journal.record(chunk.name, sorted({*chunk.planned_paths(), *rejected.stale}))
            for path in rejected.stale:
                self.storage.delete(path)
            written = chunk.write()
        stats = self.stats
        kind = self.routes[chunk.topic]
        stats.units[kind] += chunk.units
        stats.chunks[chunk.reason or "other"] += 1
        stats.files[kind] += len(written)
        stats.bytes[kind] += sum(f.bytes for f in written)
        stats.last_write[kind] = time.time()
        if isinstance(chunk, RawChunk):
            stats.raw_rejected += chunk.rejected
        if not isinstance(chunk, DeadLetterChunk):
            stats.bad_messages += chunk.dead_letters
        return written
