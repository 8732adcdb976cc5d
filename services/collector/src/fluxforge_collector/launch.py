"""Starting a collector from command-line options: behind `fluxforge collect` (the service) and `replay`.

`fluxforge collect` parses its flags into `CollectOptions` (help texts in
`option_help`) and hands over to `build_source` and `publish`.
`publish` creates the topics, wires SIGTERM/SIGINT to a graceful stop and
turns broker trouble into a `CollectorError` with a readable message.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import uvloop
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from fluxforge_common import kafka
from fluxforge_common.config import FluxForgeSettings, KafkaConfig
from fluxforge_common.health import serving
from fluxforge_common.kafka import TopicNames, TopicSpec, ensure_topics, topic_specs
from fluxforge_common.pipeline.lines import date_range
from fluxforge_common.stopping import StopRequests

from fluxforge_collector.collector import Collector, CollectorStats, Limits, SourceError
from fluxforge_collector.drainer import PublishError
from fluxforge_collector.exchange import exchange_source
from fluxforge_collector.metrics import CollectorMetrics, collector_health
from fluxforge_collector.option_help import SourceKind
from fluxforge_collector.sources import TickSource, file_source, simulator_source
from fluxforge_collector.spool import SpoolError

log = logging.getLogger("fluxforge.collector")

# Longest wait for new topics' partitions to get leaders; past it the run ends with an error.
LEADER_WAIT_S = 30.0


class CollectorError(Exception):
    """A collector run that could not start or finish; the message says why, for the user."""


@dataclass(frozen=True)
class CollectOptions:
    """The options every collector front end offers."""

    source: SourceKind | None = None
    input: str | None = None
    date: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    events: int | None = None
    duration_s: float | None = None
    realtime: bool = False
    speed: float | None = None
    bootstrap: str | None = None
    exchange: str | None = None

    @property
    def kind(self) -> SourceKind:
        """The source asked for, or implied: an exchange or a file when named, else the simulator."""
        if self.source is not None:
            return self.source
        if self.exchange is not None:
            return "exchange"
        return "simulator" if self.input is None else "file"

    @property
    def limits(self) -> Limits:
        return Limits(events=self.events, duration_s=self.duration_s)

    @property
    def pacing(self) -> float | None:
        """Speed factor of real-time pacing, or None to publish as fast as possible."""
        if self.speed is not None:
            return self.speed
        return 1.0 if self.realtime else None


def settings_overrides(bootstrap: str | None) -> dict[str, Any]:
    """Settings overrides (for `load_settings`) from the flags that override config keys."""
    return {} if bootstrap is None else {"kafka": {"bootstrap_servers": bootstrap}}


def selected_dates(date: str | None, start_date: str | None, end_date: str | None) -> list[str] | None:
    """The archive dates `--date` or `--start-date/--end-date` select; None for all. ValueError if malformed."""
    if date is not None and (start_date is not None or end_date is not None):
        raise ValueError("give either --date or --start-date/--end-date, not both")
    if date is not None:
        return date_range(date, date)
    if start_date is None and end_date is None:
        return None
    if start_date is None or end_date is None:
        raise ValueError("a date range needs both --start-date and --end-date")
    return date_range(start_date, end_date)


def build_source(settings: FluxForgeSettings, options: CollectOptions) -> TickSource:
    """The source the options describe; ValueError names a bad combination of options."""
    if options.speed is not None and not options.speed > 0:
        raise ValueError(f"--speed must be positive, got {options.speed}")
    dates = selected_dates(options.date, options.start_date, options.end_date)
    if options.kind == "exchange":
        if options.input is not None or dates is not None:
            raise ValueError("--input and --date/--start-date/--end-date do not go with --source exchange")
        if options.exchange is None:
            raise ValueError(
                f"--source exchange needs --exchange NAME (configured: {', '.join(settings.exchanges)})"
            )
        return exchange_source(settings, options.exchange)
    if options.exchange is not None:
        raise ValueError(f"--exchange needs --source exchange, not --source {options.kind}")
    if options.kind == "simulator":
        if options.input is not None or dates is not None:
            raise ValueError("--input and --date/--start-date/--end-date need --source file")
        return simulator_source(settings.simulator)
    if options.input is None:
        raise ValueError("--source file needs --input PATH")
    return file_source(options.input, dates)


def start_line(collector: Collector, settings: FluxForgeSettings) -> str:
    """Where a collector publishes, printed before it starts."""
    cfg = settings.kafka
    return (
        f"publishing {collector.source.name} -> {collector.stats.topic} "
        f"(dead-letter {collector.stats.deadletter_topic}) on {kafka.describe(cfg)}, "
        f"per-symbol batches of <= {cfg.batch_max_ticks} ticks / {cfg.batch_linger_ms} ms, "
        f"{cfg.compression} compression"
    )


def make_collector(
    settings: FluxForgeSettings,
    options: CollectOptions,
    *,
    source: TickSource | None = None,
    topic: str | None = None,
    on_progress: Callable[[CollectorStats], None] | None = None,
) -> Collector:
    """A collector for the options (or for `source`, when the caller built its own)."""
    return Collector(
        settings,
        source if source is not None else build_source(settings, options),
        topic=topic,
        limits=options.limits,
        speed=options.pacing,
        on_progress=on_progress,
        recorded=options.pacing is None and options.kind != "exchange" and options.input != "-",
    )


def publish(collector: Collector, settings: FluxForgeSettings) -> CollectorStats:
    """Create the topics, run the collector until done or signalled, and return its counts.

    SIGTERM/SIGINT stop it gracefully (everything read is spooled, and Kafka
    gets `collector.stop_drain_timeout_s` to take it); a second signal, or
    `collector.stop_deadline_s` passing, abandons what is still queued. A
    send refused for good, a full spool and a failing source raise
    `CollectorError`; a broker that is away only makes the spool grow.
    """
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_publish(collector, settings))
    except (PublishError, SourceError, SpoolError) as exc:
        raise CollectorError(str(exc)) from exc
    except (KafkaError, OSError) as exc:
        raise CollectorError(
            f"Kafka at {kafka.describe(settings.kafka)} failed: {exc!r} "
            "(is the broker up? `make kafka-up` starts a local one; --bootstrap points elsewhere)"
        ) from exc


async def _publish(collector: Collector, settings: FluxForgeSettings) -> CollectorStats:
    loop = asyncio.get_running_loop()
    # Installed first, so a signal while topics are being created stops the run cleanly too.
    stops = StopRequests(
        collector.stop,
        force=lambda: loop.call_soon_threadsafe(collector.stop),  # a second stop abandons the queue
        deadline_s=settings.collector.stop_deadline_s,
        setting="collector.stop_deadline_s",
        doing="spooling and publishing what was read",
        loop=loop,
    )
    port = settings.collector.metrics_port
    health = collector_health(collector, settings)
    async with serving(health, CollectorMetrics(collector).collect, host=settings.metrics.host, port=port):
        beating = None if port is None else asyncio.create_task(health.heartbeat.beat_forever())
        try:
            with stops:
                log.info(
                    "started: publishing to %s; a stop signal now ends the run cleanly", collector.stats.topic
                )
                return await collector.run(prepare=functools.partial(_prepare_topics, collector, settings))
        finally:
            if beating is not None:
                beating.cancel()


async def _prepare_topics(collector: Collector, settings: FluxForgeSettings) -> None:
    """Create the topics the collector publishes to and wait until their leaders answer."""
    specs = topic_specs(settings.kafka)
    raw_topic = TopicNames.from_config(settings.kafka).raw
    if collector.stats.topic != raw_topic:
        raw_spec: TopicSpec = next(spec for spec in specs if spec.name == raw_topic)
        specs.append(replace(raw_spec, name=collector.stats.topic))
    created = set(await ensure_topics(settings.kafka, specs))
    publishing = (collector.stats.topic, collector.stats.deadletter_topic)
    await _until_leaders_answer(
        settings.kafka, [s for s in specs if s.name in created and s.name in publishing]
    )


async def _until_leaders_answer(cfg: KafkaConfig, specs: list[TopicSpec]) -> None:
    """Wait until every partition of freshly created topics answers as a leader.

    Right after creation the broker's metadata may not list a topic yet, then
    names leaders before they have taken their partitions on; sending then
    works (the producer retries) but fills a fresh stack's log with
    "not found in cluster metadata" errors and NotLeaderForPartition warnings.
    So: poll the admin's metadata (which logs nothing) until every partition
    has a leader, then ask each leader for its end offset (ListOffsets, which
    the client retries until the leader really answers).
    """
    if not specs:
        return
    admin = await kafka.start(kafka.admin(cfg), cfg)
    try:
        async with asyncio.timeout(LEADER_WAIT_S):
            while not _all_led(await admin.describe_topics([s.name for s in specs]), specs):
                await asyncio.sleep(0.05)
    finally:
        await admin.close()
    consumer = await kafka.start(kafka.plain_consumer(cfg), cfg)
    try:
        await consumer.end_offsets([TopicPartition(s.name, p) for s in specs for p in range(s.partitions)])
    finally:
        await consumer.stop()


def _all_led(described: list[dict[str, Any]], specs: list[TopicSpec]) -> bool:
    """Every partition the topics have is led (a topic someone else created may have other counts)."""
    led = {
        t["topic"]: bool(t["partitions"]) and all(p["leader"] >= 0 for p in t["partitions"])
        for t in described
        if t["error_code"] == 0
    }
    return all(led.get(s.name, False) for s in specs)
