"""The Faust app: one agent over the raw topic, per-symbol state in a changelog-backed table.

Per raw message, in the agent (one event at a time, in partition order):

1. read the symbol's table value and run `MessageProcessor.process`;
2. send its output messages (features, dead-letter) and wait until Kafka has
   acknowledged every one of them;
3. only then write the symbol's new table value (one changelog record).

Faust acknowledges the event when the agent asks for the next one, and commits
offsets of acknowledged events only after flushing the producer (changelog
records included). Why this order makes crashes harmless is in the package
docstring.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import faust
from fluxforge_common.config import FluxForgeSettings
from mode import CrashingSupervisor
from mode.types.signals import BaseSignalT

from fluxforge_feature_engine.processor import MessageProcessor, MessageResult
from fluxforge_feature_engine.topics import TABLE_NAME, EngineTopics, changelog_topic

log = logging.getLogger("fluxforge.feature_engine")

PROGRESS_INTERVAL_S = 10.0
MAX_REQUEST_BYTES = 8 << 20


@dataclass
class WorkerStats:
    """Counts since the worker started, for the progress log line."""

    started: float = field(default_factory=time.monotonic)
    messages: int = 0
    elements: int = 0
    applied: int = 0
    rejected: int = 0
    skipped: int = 0
    rows: int = 0
    sent: int = 0
    partitions: Counter[int] = field(default_factory=Counter)

    def add(self, partition: int, result: MessageResult) -> None:
        self.messages += 1
        self.partitions[partition] += 1
        self.elements += result.elements
        self.applied += result.applied
        self.rejected += result.rejected
        self.rows += result.rows
        self.sent += len(result.outgoing)
        self.skipped += result.skipped

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (
            f"{self.messages:,} raw messages ({self.elements:,} ticks, {self.elements / elapsed:,.0f}/s): "
            f"{self.applied:,} applied, {self.rejected:,} to dead-letter, {self.skipped:,} messages "
            f"already applied; {self.rows:,} rows in {self.sent:,} messages"
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


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


def build_app(
    settings: FluxForgeSettings, config: WorkerConfig, topics: EngineTopics
) -> tuple[faust.App, WorkerStats]:
    """The Faust app of one feature-engine worker (not started)."""
    kafka = settings.kafka
    app = faust.App(
        config.app_id,
        broker=broker_urls(kafka.bootstrap_servers),
        store="memory://",
        # Not "exactly_once": faust-streaming 0.15.3 sends to topics the app does not consume
        # outside the transaction (see the package docstring). Outputs-before-state plus the
        # applied offset in the state give the same end result with at-least-once commits.
        processing_guarantee="at_least_once",
        autodiscover=False,
        datadir=str(config.data_dir),
        web_enabled=config.web_port is not None,
        web_port=config.web_port or 6066,
        web_host="127.0.0.1",
        topic_partitions=topics.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_disable_leader=True,
        table_standby_replicas=0,
        broker_commit_interval=config.commit_interval_s,
        producer_compression_type=None if kafka.compression == "none" else kafka.compression,
        producer_max_request_size=MAX_REQUEST_BYTES,
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
        settings.features, topics.outputs, max_message_bytes=settings.sink.max_message_bytes
    )
    stats = WorkerStats()

    async def feature_engine(stream: faust.StreamT[bytes]) -> None:
        producer = await app.maybe_start_producer()
        send = producer.send
        get = table.get
        data = table.data
        # Faust acknowledges a batch's events after this loop body returns.
        batches = cast(faust.Stream[bytes], stream).take_events(
            config.batch_events, within=config.batch_within_s
        )
        async for events in batches:
            latest: dict[bytes, tuple[int, bytes]] = {}  # key -> (raw partition, newest table value)
            futures = []
            for event in events:
                message = event.message
                key, partition = message.key, message.partition
                if key is None:
                    stored = None
                else:
                    newest = latest.get(key)
                    stored = get(key) if newest is None else newest[1]
                result = processor.process(key, message.value, partition, message.offset, stored)
                for o in result.outgoing:
                    futures.append(await send(o.topic, o.key, o.value, None, None, o.headers))
                if result.table_value is not None and key is not None:
                    latest[key] = (partition, result.table_value)
                stats.add(partition, result)
            # Outputs first: a state is made durable only once every output computed from it is.
            if futures:
                await asyncio.gather(*futures)
            for key, (partition, value) in latest.items():
                # `table[key] = value` with the partition named: the batch spans partitions.
                table.send_changelog(partition, key, value)
                data[key] = value

    app.agent(raw_topic, name="fluxforge-feature-engine")(feature_engine)

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
