"""The Faust app: one agent over the raw topic, per-symbol state in a changelog-backed table.

`EventFlusher` makes each batch durable in the order docs/design.md "Delivery
guarantees" needs: outputs acknowledged, then one table write per symbol,
then the events acknowledged to Faust. Faust's `take_events` is not used: its
private buffer hands over events of the previous generation after a
rebalance, which let a recovery overwrite newer states (seen in testing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import faust
from faust.auth import Credentials, SASLCredentials, SSLCredentials
from fluxforge_common.config import FluxForgeSettings, KafkaConfig
from fluxforge_common.health import ServiceHealth
from fluxforge_common.kafka import connection_options
from fluxforge_common.kafka.clients import MAX_BATCH_BYTES, MAX_REQUEST_BYTES
from mode import CrashingSupervisor
from mode.types.signals import BaseSignalT

from fluxforge_feature_engine.metrics import EngineMetrics
from fluxforge_feature_engine.processor import MessageProcessor, MessageResult
from fluxforge_feature_engine.topics import TABLE_NAME, EngineTopics, changelog_topic

log = logging.getLogger("fluxforge.feature_engine")

PROGRESS_INTERVAL_S = 10.0
# Longer than the other producers' `LINGER_MS`: a flush waits for its outputs anyway, and fuller requests
# made the worker ~1.4x faster for ~25 ms more latency (README "The worker's outputs in fuller requests").
OUTPUT_LINGER_S = 0.02
SESSION_TIMEOUT_S = 10.0
HEARTBEAT_INTERVAL_S = 1.0
HEARTBEAT_S = 1.0  # the worker's own heartbeat (/healthz), not Kafka's group heartbeat


@dataclass
class WorkerStats:
    """Counts since the worker started, for the progress log line."""

    started: float = field(default_factory=time.monotonic)
    messages: int = 0
    elements: int = 0
    applied: int = 0
    rejected: int = 0
    skipped: int = 0
    watermarks: int = 0
    watermark_rows: int = 0  # carried-forward HF rows that watermarks closed
    rows: int = 0
    sent: int = 0
    partitions: Counter[int] = field(default_factory=Counter)
    tables: Counter[str] = field(default_factory=Counter)  # feature rows emitted per table

    def add(self, partition: int, result: MessageResult) -> None:
        self.messages += 1
        self.partitions[partition] += 1
        self.elements += result.elements
        self.applied += result.applied
        self.rejected += result.rejected
        self.rows += result.rows
        self.sent += len(result.outgoing)
        self.skipped += result.skipped
        for table, rows, _ in result.tables:
            self.tables[table] += rows
        self.watermarks += result.watermarks
        self.watermark_rows += result.watermark_rows

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (
            f"{self.messages:,} raw messages ({self.elements:,} ticks, {self.elements / elapsed:,.0f}/s): "
            f"{self.applied:,} applied, {self.rejected:,} to dead-letter, {self.skipped:,} messages "
            f"already applied; {self.rows:,} rows in {self.sent:,} messages; {self.watermarks:,} watermarks "
            f"closed {self.watermark_rows:,} HF rows"
        )


@dataclass(frozen=True)
class WorkerConfig:
    """Everything `build_app` needs besides the settings."""

    app_id: str
    data_dir: Path
    web_port: int | None = None
    commit_interval_s: float = 1.0
    batch_events: int = 64  # raw messages handled per round trip to Kafka
    batch_within_s: float = 0.01  # longest a raw message waits for its batch to fill


class EventFlusher:
    """Runs the engine on each event as it comes and makes events durable in batches, outputs before state.

    `add` runs the engine on one event at once and hands its outputs to the
    producer, keeping the symbol's new table value in `latest` (what the next
    event of that symbol starts from). A flush (when `batch_events` events wait,
    when the oldest has waited `batch_within_s`, and before partitions are
    revoked) takes everything added so far, waits until Kafka has acknowledged
    all of its outputs, then writes each symbol's newest value to the table (one
    changelog record per symbol), then acknowledges the events, in that order.
    Flushes run one at a time, in order. After a failed flush nothing more is
    written: the worker crashes and its successor re-runs from the committed offsets.
    """

    def __init__(
        self,
        app: faust.App,
        table: Any,
        processor: MessageProcessor,
        stats: WorkerStats,
        config: WorkerConfig,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.table = table
        self.processor = processor
        self.stats = stats
        self.max_events = config.batch_events
        self.within_s = config.batch_within_s
        self.latest: dict[bytes, bytes] = {}  # key -> newest table value not written yet
        self._events: list[Any] = []
        self._futures: list[Any] = []
        self._states: dict[bytes, tuple[int, bytes]] = {}  # key -> (raw partition, value)
        self._oldest = 0.0
        self._lock = asyncio.Lock()
        self._not_adding = asyncio.Event()
        self._not_adding.set()
        self._failed: BaseException | None = None
        self._stream: Any = None
        self._send: Any = None

    async def start(self, stream: Any) -> None:
        self._stream = stream
        self._send = (await self.app.maybe_start_producer()).send

    async def add(self, event: Any) -> None:
        self._not_adding.clear()
        try:
            message = event.message
            key, partition = message.key, message.partition
            stored = None
            if key is not None:
                stored = self.latest.get(key)
                if stored is None:
                    stored = self.table.get(key)
            if not self.processor.completeness.knows(partition):
                # Taken over (start, rebalance): every symbol of the partition counts, quiet ones too.
                self.processor.load_completeness(partition, list(self.table.data.items()))
            result = self.processor.process(key, message.value, partition, message.offset, stored)
            send = self._send
            futures = [await send(o.topic, o.key, o.value, None, None, o.headers) for o in result.outgoing]
            # From here on no await: a flush sees the whole event (outputs, state) or none of it.
            if not self._events:
                self._oldest = time.monotonic()
            self._events.append(event)
            self._futures += futures
            if result.table_value is not None and key is not None:
                self.latest[key] = result.table_value
                self._states[key] = (partition, result.table_value)
            self.stats.add(partition, result)
            if self.metrics is not None:
                self.metrics.processed(partition, message.offset, result)
        finally:
            self._not_adding.set()
        if len(self._events) >= self.max_events:
            await self.flush()

    @property
    def holds_events(self) -> bool:
        """Events were added that no flush has taken yet."""
        return bool(self._events)

    async def flush_if_due(self) -> None:
        if self._events and time.monotonic() - self._oldest >= self.within_s:
            await self.flush()

    async def drain(self) -> None:
        """Flush what was added, then wait until the producer has sent everything (changelog included)."""
        await self._not_adding.wait()
        await self.flush()
        await self.app.producer.flush()

    def forget(self) -> None:
        """Drop the unwritten-state overlay: after a rebalance the table is the truth again."""
        self.latest.clear()
        self.processor.completeness.forget()

    async def flush(self) -> None:
        async with self._lock:
            if self._failed is not None:
                raise RuntimeError("an earlier flush failed; nothing more is written") from self._failed
            events, futures, states = self._events, self._futures, self._states
            if not events:
                return
            self._events, self._futures, self._states = [], [], {}
            started = time.monotonic()
            try:
                # Outputs first: a state is written only once every output computed before it is in Kafka.
                if futures:
                    await asyncio.gather(*futures)
            except BaseException as exc:
                self._failed = exc
                log.error(
                    "Kafka refused an output (%r): stopping; a restart re-runs from the committed offsets",
                    exc,
                )
                await self.app.crash(exc)
                raise
            table, data, latest = self.table, self.table.data, self.latest
            for key, (partition, value) in states.items():
                # `table[key] = value`, with the partition named: the batch spans partitions.
                table.send_changelog(partition, key, value)
                data[key] = value
                if latest.get(key) is value:
                    del latest[key]
            ack = self._stream.ack
            for event in events:
                await ack(event)
            if self.metrics is not None:
                self.metrics.batch_seconds.observe(time.monotonic() - started)


def _watch(app: faust.App, health: ServiceHealth, raw_topic: str, metrics: EngineMetrics | None) -> None:
    """Heartbeat and consumer lag once a second on the worker's loop, and the Kafka probe."""

    async def every_second() -> None:
        health.heartbeat.beat()
        if metrics is not None:
            metrics.raw_topic = raw_topic
            highwaters = {}
            for tp in app.consumer.assignment():
                if tp.topic == raw_topic:
                    with contextlib.suppress(Exception):  # not fetched yet
                        highwaters[tp.partition] = app.consumer.highwater(tp)
            metrics.refresh_lag(highwaters)

    app.timer(HEARTBEAT_S)(every_second)
    if health.kafka is not None:
        app.task(health.kafka.run)


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


def broker_credentials(kafka: KafkaConfig) -> Credentials | None:
    """Faust's form of the connection settings every other client uses (`fluxforge_common.kafka.connection_options`)."""
    options = connection_options(kafka)
    context = options.get("ssl_context")
    if "sasl_mechanism" in options:
        return SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            mechanism=options["sasl_mechanism"],
            ssl_context=context,  # with a context: SASL_SSL
        )
    return None if context is None else SSLCredentials(context)


def build_app(
    settings: FluxForgeSettings,
    config: WorkerConfig,
    topics: EngineTopics,
    health: ServiceHealth | None = None,
    metrics: EngineMetrics | None = None,
) -> tuple[faust.App, WorkerStats]:
    """The Faust app of one feature-engine worker (not started; `run_engine` applies `compat` first).

    With `health` (served by `run_engine`) a timer beats its heartbeat and a
    task probes Kafka; with `metrics` the worker observes lag and batch times.
    """
    kafka = settings.kafka
    app = faust.App(
        config.app_id,
        broker=broker_urls(kafka.bootstrap_servers),
        broker_credentials=broker_credentials(kafka),
        store="memory://",
        # Not "exactly_once": faust-streaming 0.15.3 sends to topics the app does not consume
        # outside the transaction (see the package docstring). Outputs-before-state plus the
        # applied offset in the state give the same end result with at-least-once commits.
        processing_guarantee="at_least_once",
        autodiscover=False,
        datadir=str(config.data_dir),
        web_enabled=config.web_port is not None,
        web_port=6066 if config.web_port is None else config.web_port,
        web_host="127.0.0.1",
        topic_partitions=topics.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_disable_leader=True,
        table_standby_replicas=0,
        broker_commit_interval=config.commit_interval_s,
        # A killed worker's partitions move on (to the others, or to its restart) once the broker
        # has missed its heartbeats this long; Faust's default is 60 s.
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_S,
        producer_compression_type=None if kafka.compression == "none" else kafka.compression,
        producer_max_request_size=MAX_REQUEST_BYTES,
        producer_max_batch_size=MAX_BATCH_BYTES,
        producer_linger=OUTPUT_LINGER_S,
        consumer_max_fetch_size=MAX_REQUEST_BYTES,
        # An agent that cannot send must not go on to the next event with a stale state:
        # crash the worker; its successor re-runs from the last committed offset.
        agent_supervisor=CrashingSupervisor,
    )
    # Raw bytes both ways. (Not via one shared faust.Schema: Faust fills a shared instance's
    # serializers from its JSON defaults, and a Table given `schema=` ignores its serializers.)
    raw_topic = app.topic(
        topics.raw, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    table = app.Table(TABLE_NAME, key_type=bytes, value_type=bytes, partitions=topics.partitions)
    assert table.changelog_topic.get_topic_name() == changelog_topic(config.app_id)
    processor = MessageProcessor(
        settings.features, topics.outputs, max_message_bytes=settings.messages.max_bytes
    )
    stats = WorkerStats()

    flusher = EventFlusher(app, table, processor, stats, config, metrics)
    if health is not None:
        _watch(app, health, topics.raw, metrics)

    async def feature_engine(stream: faust.StreamT[bytes]) -> None:
        # Manual acks: an event is acknowledged only once its outputs and its state are written.
        manual = cast(faust.Stream[bytes], stream).noack()
        await flusher.start(manual)
        async for event in manual.events():
            await flusher.add(event)

    app.agent(raw_topic, name="fluxforge-feature-engine")(feature_engine)

    async def flush_when_due() -> None:
        # A plain loop, not app.timer: a flush waits for Kafka longer than the interval. It goes on
        # while the app stops, until every event held is flushed and acknowledged: the consumer waits
        # for those acknowledgements before its last commit (a graceful stop hung there otherwise).
        while not app.should_stop or flusher.holds_events:
            await asyncio.sleep(config.batch_within_s)
            await flusher.flush_if_due()

    app.task(flush_when_due)

    async def on_revoked(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
        # Before the partitions move: finish everything computed, make it durable, forget it.
        await flusher.drain()
        flusher.forget()

    app.on_partitions_revoked.connect(on_revoked)

    last_line = [""]

    async def progress() -> None:
        line = stats.line()
        if line != last_line[0]:
            log.info("%s", line)
            last_line[0] = line

    app.timer(PROGRESS_INTERVAL_S)(progress)

    async def on_assigned(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", ())
        mine = sorted(tp.partition for tp in assigned if tp.topic == topics.raw)
        log.info("assigned partitions of %s: %s", topics.raw, mine)

    app.on_partitions_assigned.connect(on_assigned)
    return app, stats
