"""The Kafka side: a consumer-group member feeding `SinkCore`, committing after durable files.

Every commit carries the partition's dedupe positions as its offset metadata
(`OffsetAndMetadata(end + 1, chunk.positions)`); on assignment both are read
back together with one OffsetFetch (`committed_offsets`), so the offset a
partition resumes from and the positions that decide which of the following
records are copies always belong to the same point of the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, OffsetAndMetadata, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from fluxforge_common.config.settings import FluxForgeSettings
from fluxforge_common.health import Heartbeat, KafkaProbe, ServiceHealth, serving
from fluxforge_common.kafka import TopicNames, consumer, ensure_topics, start, topic_specs
from fluxforge_common.stopping import StopRequests
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.storage.mirror import MirroredStorage
from fluxforge_common.storage.s3 import S3Storage
from fluxforge_common.storage.s3url import parse_s3_url
from fluxforge_common.storage.space import DiskFullError

from fluxforge_parquet_sink.chunks import Record
from fluxforge_parquet_sink.core import AnyChunk, SinkCore, route_topics
from fluxforge_parquet_sink.metrics import SinkMetrics
from fluxforge_parquet_sink.policy import FlushPolicy
from fluxforge_parquet_sink.stats import SinkStats

log = logging.getLogger("fluxforge.sink")

UNIT_NAMES = {"raw": "ticks", "deadletter": "records"}
POLL_TIMEOUT_MS = 500
MAX_RECORDS_PER_POLL = 2_000


async def committed_offsets(
    kafka: AIOKafkaConsumer, tps: Iterable[TopicPartition]
) -> dict[TopicPartition, OffsetAndMetadata]:
    """The group's committed offset *and metadata* of each partition (absent: never committed).

    `AIOKafkaConsumer.committed` returns the offset only; it is a thin wrapper
    around the group coordinator's `fetch_committed_offsets`, which has the
    metadata too (aiokafka 0.14). This calls that, so the fetch keeps
    `committed`'s retries and coordinator handling. (The public alternative,
    `AIOKafkaAdminClient.list_consumer_group_offsets`, needs a second client
    and raises on the first retriable error, e.g. while the group loads.)
    """
    wanted = list(tps)
    if not wanted:
        return {}
    coordinator = getattr(kafka, "_coordinator", None)
    fetch = getattr(coordinator, "fetch_committed_offsets", None)
    if fetch is None:
        raise RuntimeError(
            "this aiokafka has no AIOKafkaConsumer._coordinator.fetch_committed_offsets: the sink cannot "
            "read its dedupe positions back from the commit metadata (tested with aiokafka 0.14)"
        )
    fetched: dict[TopicPartition, OffsetAndMetadata] = await fetch(wanted)
    return {tp: om for tp, om in fetched.items() if om.offset >= 0}


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sink: KafkaSink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.sink._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.sink._on_assigned(assigned)


class StoppedOnFullDiskError(Exception):
    """A stop came while the sink waited for space: what it held is neither written nor committed,
    and the next start consumes it again (nothing is lost)."""

    def __init__(self, full: DiskFullError, units: int) -> None:
        super().__init__(
            f"stopped with the disk full: {full}; what was not written ({units:,} rows or ticks of the "
            "chunk under way, and the chunks after it) is not committed either, and the next start "
            "consumes it again. Free space there before starting it."
        )


def sink_storage(settings: FluxForgeSettings) -> StorageBackend:
    """Where the sink writes, by `sink.target`: the local root, the S3 location, or both."""
    sink = settings.sink
    local = LocalStorage(
        settings.storage.root,
        durable=sink.fsync,
        fsync_scope=sink.fsync_scope,
        min_free_bytes=settings.storage.min_free_mb << 20,
    )
    if sink.target == "local":
        return local
    assert settings.storage.s3.url is not None  # the settings refuse an S3 target without it
    remote = S3Storage(parse_s3_url(settings.storage.s3.url), settings.storage.s3)
    return remote if sink.target == "s3" else MirroredStorage(local, remote)


class KafkaSink:
    """One member of the sink's consumer group (several processes share the partitions).

    The loop: poll; recover partitions seen for the first time in this
    assignment; cut records into chunks; write each closed chunk (journal entry,
    files) in a worker thread; commit `end + 1` per partition. A rebalance
    drops open chunks (the new owner re-reads them from the committed offset
    and cuts the same chunks); records polled before it are discarded. A
    graceful stop writes and commits every open chunk; an exception stops the
    consumer without committing anything more.
    """

    def __init__(
        self,
        settings: FluxForgeSettings,
        *,
        group_id: str,
        tables: Iterable[str],
        raw: bool,
        deadletter: bool,
        policy: FlushPolicy | None = None,
        storage: StorageBackend | None = None,
        stats: SinkStats | None = None,
        progress_s: float = 10.0,
        until_caught_up: bool = False,
        create_topics: bool = True,
        consumer_options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.group_id = group_id
        self.names = TopicNames.from_config(settings.kafka)
        self.routes = route_topics(self.names, tables, raw=raw, deadletter=deadletter)
        self.policy = policy if policy is not None else FlushPolicy.from_settings(settings)
        self.storage = storage if storage is not None else sink_storage(settings)
        self.stats = stats if stats is not None else SinkStats()
        self.core = SinkCore(self.storage, self.policy, settings.features, self.routes, stats=self.stats)
        self.progress_s = progress_s
        self.until_caught_up = until_caught_up
        self.create_topics = create_topics
        self.consumer_options = consumer_options or {}
        self._lock = asyncio.Lock()
        self._epoch = 0
        self._stop = asyncio.Event()  # `run`'s: set when the sink is asked to stop
        self._committed: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self.health = ServiceHealth(
            "sink",
            Heartbeat(settings.metrics.heartbeat_timeout_s),
            checks=[self.stats.disk_pause.problem],
            kafka=KafkaProbe(settings.kafka),
        )
        # Only while served (sink.metrics_port): off, the sink does no metrics work at all.
        self.metrics: SinkMetrics | None = None

    # -- rebalance callbacks (run by aiokafka's coordinator task) -----------------------------------

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:  # waits for a chunk being written and committed
            self._epoch += 1
            self.stats.rebalances += 1
            for tp in revoked:
                self.core.revoke(tp.topic, tp.partition)
        if revoked:
            log.info("partitions revoked: %s", _tps(revoked))

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self._lock:
            await self._recover(assigned)
        log.info("partitions assigned: %s", _tps(assigned) or "none")

    async def _recover(self, tps: Iterable[TopicPartition]) -> None:
        kafka = self._consumer
        assert kafka is not None
        todo = sorted(tp for tp in tps if not self.core.is_assigned(tp.topic, tp.partition))
        found = await committed_offsets(kafka, todo)
        for tp in todo:
            position = found.get(tp)
            committed = None if position is None else position.offset
            metadata = None if position is None else position.metadata
            deleted = await asyncio.to_thread(self.core.assign, tp.topic, tp.partition, committed, metadata)
            self._committed[tp] = committed or 0
            if deleted:
                log.warning(
                    "%s/%d: removed %d file(s) of a chunk written but not committed before "
                    "(committed offset %s); its records are consumed again",
                    tp.topic,
                    tp.partition,
                    len(deleted),
                    committed,
                )

    # -- the loop ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> SinkStats:
        """Consume until `stop` is set (or, with `until_caught_up`, until the assigned partitions are read to their end)."""
        stop = stop if stop is not None else asyncio.Event()
        port = self.settings.sink.metrics_port
        metrics = self.metrics = None if port is None else SinkMetrics(self.stats, self.settings.storage.root)
        sources = () if metrics is None else (metrics.collect,)
        async with serving(self.health, *sources, host=self.settings.metrics.host, port=port):
            return await self._run(stop)

    async def _run(self, stop: asyncio.Event) -> SinkStats:
        self._stop = stop
        if self.create_topics:
            wanted = [spec for spec in topic_specs(self.settings.kafka) if spec.name in self.routes]
            await ensure_topics(self.settings.kafka, wanted)
        kafka = consumer(
            self.settings.kafka,
            group_id=self.group_id,
            **{"max_poll_interval_ms": 600_000, **self.consumer_options},
        )
        kafka.subscribe(topics=self.core.topics, listener=_Listener(self))
        self._consumer = kafka
        log.info(
            "sink %s: %s -> %s (group %s)",
            ", ".join(sorted(set(self.routes.values()))),
            ", ".join(self.core.topics),
            self.storage,
            self.group_id,
        )
        await start(kafka, self.settings.kafka)
        try:
            await self._loop(kafka, stop)
            async with self._lock:  # graceful: everything buffered becomes files, then is committed
                chunks = self.core.close_all("shutdown")
                await self._write_and_commit(kafka, chunks)
                await self._settle_quiet(kafka)
        finally:
            await kafka.stop()
            self._consumer = None
        log.info("sink stopped: %s", self.stats.summary())
        return self.stats

    async def _loop(self, kafka: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        next_progress = time.monotonic() + self.progress_s
        since = self.stats.snapshot()
        heartbeat = self.health.heartbeat
        while not stop.is_set():
            heartbeat.beat()
            if self.metrics is not None:
                self.metrics.refresh_lag(kafka, self._committed)
            batches = await kafka.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_RECORDS_PER_POLL)
            # aiokafka returns nothing while a rebalance is in progress, so these records belong to the
            # assignment current now; if a rebalance starts before the lock is ours, they are dropped:
            # the new assignment resets every position to the committed offset and fetches them again.
            epoch = self._epoch
            async with self._lock:
                if epoch != self._epoch:
                    continue
                await self._recover(tp for tp in batches if not self.core.is_assigned(tp.topic, tp.partition))
                chunks = await asyncio.to_thread(self._add, batches) if batches else []
                chunks += self.core.idle()
                await self._write_and_commit(kafka, chunks)
                if not batches:
                    await self._settle_quiet(kafka)
            now = time.monotonic()
            if now >= next_progress:
                self._progress(since, now)
                since, next_progress = self.stats.snapshot(), now + self.progress_s
            if self.until_caught_up and not batches and await self._caught_up(kafka):
                log.info("caught up with every assigned partition; stopping")
                return

    def _add(self, batches: dict[TopicPartition, list[Any]]) -> list[AnyChunk]:
        return self.core.add(
            Record(r.topic, r.partition, r.offset, r.timestamp, r.value, tuple(r.headers or ()), r.key)
            for tp in sorted(batches)
            for r in batches[tp]
        )

    async def _write_and_commit(self, kafka: AIOKafkaConsumer, chunks: list[AnyChunk]) -> None:
        pending: dict[TopicPartition, OffsetAndMetadata] = {}
        for chunk in chunks:
            tp = TopicPartition(chunk.topic, chunk.partition)
            if tp in pending:  # one journal entry per partition: settle the earlier chunk first
                await self._commit(kafka, pending)
                pending = {}
            await self._write(chunk)
            log.debug("wrote %s (%s, %d units)", chunk.name.stem, chunk.reason, chunk.units)
            pending[tp] = OffsetAndMetadata(chunk.end + 1, chunk.positions)
        if pending:
            await self._commit(kafka, pending)

    async def _write(self, chunk: AnyChunk) -> None:
        """Write `chunk`; while its disk is full, or below the reserve, wait and retry.

        Nothing is committed meanwhile (the caller commits after this returns),
        and a retry converges on the same files (`SinkCore.write`), so the pause
        loses nothing: consuming resumes by itself when space returns.
        """
        pause = self.stats.disk_pause
        while True:
            self.health.heartbeat.beat()  # a pause is the loop waiting on purpose, not a stuck one
            started = time.monotonic()
            try:
                await asyncio.to_thread(self._write_with_room, chunk)
            except DiskFullError as exc:
                if self._stop.is_set():  # stopping: nothing is committed, Kafka keeps the records
                    raise StoppedOnFullDiskError(exc, chunk.units) from exc
                await pause.wait(exc, until=self._stop)
                continue
            if self.metrics is not None:
                self.metrics.flush_seconds.labels(self.routes[chunk.topic]).observe(
                    time.monotonic() - started
                )
            pause.resumed()
            return

    def _write_with_room(self, chunk: AnyChunk) -> None:
        self.storage.check_space()
        self.core.write(chunk)

    async def _settle_quiet(self, kafka: AIOKafkaConsumer) -> None:
        """Commit the position of partitions without an open chunk, when it is past our last commit.

        Everything before such a position is in committed files already; what
        lies between is transaction markers or aborted records, which a
        read_committed consumer steps over without returning. Committing them
        makes the group's lag 0 at the live edge instead of "1 marker".
        """
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp in kafka.assignment():
            if not self.core.is_assigned(tp.topic, tp.partition) or self.core.is_open(tp.topic, tp.partition):
                continue
            try:
                position = await kafka.position(tp)
            except IllegalStateError:
                continue  # no longer assigned
            if position > self._committed.get(tp, 0):
                # Only copies (dropped) or markers since the last chunk: the positions are unchanged.
                offsets[tp] = OffsetAndMetadata(position, self.core.positions(tp.topic, tp.partition))
        if offsets:
            await self._commit(kafka, offsets)

    async def _commit(
        self, kafka: AIOKafkaConsumer, offsets: dict[TopicPartition, OffsetAndMetadata]
    ) -> None:
        try:
            await kafka.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions went to another member; its recovery removes or rewrites these files.
            self.stats.commit_failures += 1
            log.warning("commit of %s failed (%s); the new owner redoes these chunks", _tps(offsets), exc)
        else:
            self.stats.commits += 1
            self._committed.update({tp: om.offset for tp, om in offsets.items()})

    async def _caught_up(self, kafka: AIOKafkaConsumer) -> bool:
        assigned = kafka.assignment()
        if not assigned or any(not self.core.is_assigned(tp.topic, tp.partition) for tp in assigned):
            return False
        try:
            ends = await kafka.end_offsets(list(assigned))  # last stable offsets (read_committed)
            for tp in assigned:
                if await kafka.position(tp) < ends[tp]:
                    return False
        except IllegalStateError:
            return False  # a rebalance took partitions meanwhile
        return True

    def _progress(self, since: SinkStats, now: float) -> None:
        written = self.stats.rates(since, now)
        parts = [f"{kind} {rate:,.0f} {UNIT_NAMES.get(kind, 'rows')}/s" for kind, rate in written.items()]
        consumed = sum(self.stats.rates(since, now, of="messages").values())
        held = self.core.buffered()
        log.info(
            "written: %s | consumed %s msgs/s | files %s | buffered %s",
            ", ".join(parts) or "nothing",
            f"{consumed:,.0f}",
            f"{self.stats.files.total():,}",
            ", ".join(f"{k} {v:,}" for k, v in sorted(held.items())) or "nothing",
        )


def _tps(tps: Iterable[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(tps))


async def serve(sink: KafkaSink) -> SinkStats:
    """Run `sink` until SIGTERM/SIGINT, then stop gracefully (write and commit what is buffered).

    A second signal, or `sink.stop_deadline_s` passing, exits at once: the
    journal undoes, on the next start, whatever the stop had written but not
    committed ("Delivery guarantees" in docs/design.md).
    """
    stop = asyncio.Event()
    with StopRequests(
        stop.set,
        deadline_s=sink.settings.sink.stop_deadline_s,
        setting="sink.stop_deadline_s",
        doing="writing and committing what is buffered",
        loop=asyncio.get_running_loop(),
    ):
        return await sink.run(stop)
