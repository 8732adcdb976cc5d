"""The collector: source -> validation -> bounded queue -> per-symbol batches -> Kafka.

Two tasks share a bounded queue. The intake reads the source, paces it when
asked, validates every tick with `decode_tick` and enqueues either
`(key, raw)` for an accepted tick or `(None, dead-letter record)` for a
rejected one; when the queue is full it waits, so a source can never run
ahead of the broker by more than the queue (backpressure). The publisher
drains the queue into the `Batcher` and the producer (idempotent, acks=all:
`fluxforge_common.kafka.producer`), and is the only task that sends, so a
symbol's batches are sent in order.

Stopping (`stop()`, wired to SIGTERM/SIGINT by `launch`) cancels only the
intake; everything it enqueued is still batched, sent and acknowledged
before `run()` returns, so a graceful stop loses nothing it counted. A second
`stop()` abandons the queue and open batches (what the producer already holds
is still delivered).

Nothing is dropped silently: every rejected line becomes a dead-letter
message with its reason and original bytes, and a send the broker finally
refuses stops the collector with a `PublishError` rather than leaving a hole
in a symbol's sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from fluxforge_common import kafka
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.messages import Rejection, decode_tick, event_time
from fluxforge_common.writers.ndjson import dead_letter_record

from fluxforge_collector.batcher import Batcher
from fluxforge_collector.sources import TickSource

log = logging.getLogger("fluxforge.collector")

DEFAULT_QUEUE_SIZE = 20_000
# Publisher checks for lingering batches at least every this many queue entries.
_DUE_CHECK_EVERY = 64
# A paced tick released up to this early is not worth a sleep (the schedule is absolute,
# so early releases never accumulate).
_PACE_SLACK_S = 0.001

# (key, raw tick) for an accepted tick; (None, dead-letter record) for a rejected line.
Entry = tuple[bytes | None, bytes]


class PublishError(Exception):
    """The broker refused a batch for good: the collector stopped instead of leaving a gap."""


class SourceError(Exception):
    """Reading the source failed; everything read before the failure was published."""


@dataclass(frozen=True)
class Limits:
    """When a finite run ends, counted like `fluxforge run` so both read the same input.

    `events`: lines read (accepted or not). `duration_s`: event time, from the
    first accepted tick; the first tick at or past the end is the last one read.
    """

    events: int | None = None
    duration_s: float | None = None


@dataclass
class CollectorStats:
    """What a run read and published; the progress line and the closing summary come from it."""

    topic: str
    deadletter_topic: str
    source: str
    ticks_in: int = 0
    accepted: int = 0
    dead_lettered: int = 0
    batches_out: int = 0
    ticks_out: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        return (time.monotonic() if self.finished is None else self.finished) - self.started

    @property
    def rate(self) -> float:
        """Ticks read per second of wall time."""
        return self.ticks_in / max(self.elapsed, 1e-9)

    def progress_line(self) -> str:
        return (
            f"{self.ticks_in:,} ticks ({self.rate:,.0f}/s) | {self.ticks_out:,} published in "
            f"{self.batches_out:,} batches | dead-letter {self.dead_lettered:,}"
        )

    def summary_line(self) -> str:
        reasons = (
            f" ({', '.join(f'{k}: {v}' for k, v in self.reasons.most_common())})" if self.reasons else ""
        )
        return (
            f"collector {self.source}: {self.ticks_in:,} ticks in, {self.batches_out:,} batches out "
            f"({self.ticks_out:,} ticks) to {self.topic}, {self.dead_lettered:,} dead-lettered to "
            f"{self.deadletter_topic}{reasons}, in {self.elapsed:.1f} s ({self.rate:,.0f} ticks/s)"
        )


class Pacer:
    """Releases ticks when the wall clock reaches their `recv_ts` offset from the first, scaled by `speed`."""

    def __init__(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self._first_ms: int | None = None
        self._start = 0.0

    async def wait(self, recv_ts: int) -> None:
        if self._first_ms is None:
            self._first_ms, self._start = recv_ts, time.monotonic()
            return
        delay = self._start + (recv_ts - self._first_ms) / 1000 / self.speed - time.monotonic()
        if delay > _PACE_SLACK_S:
            await asyncio.sleep(delay)


class Collector:
    """Publishes one source's ticks to the raw topic (or `topic`) in per-symbol batches."""

    def __init__(
        self,
        settings: FluxForgeSettings,
        source: TickSource,
        *,
        topic: str | None = None,
        limits: Limits | None = None,
        speed: float | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        on_progress: Callable[[CollectorStats], None] | None = None,
        progress_interval_s: float = 1.0,
    ) -> None:
        names = kafka.TopicNames.from_config(settings.kafka)
        self.kafka = settings.kafka
        self.max_message_bytes = settings.sink.max_message_bytes
        self.source = source
        self.limits = limits or Limits()
        self.pacer = None if speed is None else Pacer(speed)
        self.queue_size = queue_size
        self.on_progress = on_progress
        self.progress_interval_s = progress_interval_s
        self.stats = CollectorStats(topic or names.raw, names.deadletter, source.name)
        self._stops = 0
        self._intake_task: asyncio.Task[None] | None = None
        self._publish_task: asyncio.Task[None] | None = None
        self._errors: list[BaseException] = []

    def stop(self) -> None:
        """First call: stop reading, publish what was read. Second call: stop publishing too."""
        self._stops += 1
        if self._stops == 1:
            log.info("stopping: publishing what was read, then flushing (stop again to abandon it)")
            request_stop = getattr(self.source, "request_stop", None)
            if request_stop is not None and self._intake_task is not None and not self._intake_task.done():
                # A live source ends its stream itself, after handing over what it received.
                request_stop()
            elif self._intake_task is not None:
                self._intake_task.cancel()
        elif self._publish_task is not None:
            log.warning("stopping now: open batches and queued ticks are abandoned")
            self._publish_task.cancel()

    @property
    def abandoned(self) -> bool:
        """True when a second `stop()` gave up on queued ticks and open batches."""
        return self._stops > 1

    async def run(self) -> CollectorStats:
        """Publish until the source ends, a limit is reached, or `stop()`; returns the counts."""
        producer = kafka.producer(self.kafka)
        await producer.start()
        stats = self.stats
        stats.started = time.monotonic()
        queue: asyncio.Queue[Entry | None] = asyncio.Queue(self.queue_size)
        intake = self._intake_task = asyncio.create_task(self._intake(queue))
        intake.add_done_callback(functools.partial(_mark_end, queue))
        publish = self._publish_task = asyncio.create_task(self._publish(queue, producer, intake))
        progress = None if self.on_progress is None else asyncio.create_task(self._report(self.on_progress))
        if self._stops:
            intake.cancel()
        try:
            await asyncio.wait([publish])
        finally:
            for task in (intake, publish, progress):
                if task is not None:
                    task.cancel()
            await asyncio.wait([intake])
            await producer.stop()  # delivers whatever the producer still holds
            stats.finished = time.monotonic()
        if not publish.cancelled() and (error := publish.exception()) is not None:
            raise error
        if not intake.cancelled() and (error := intake.exception()) is not None:
            raise SourceError(
                f"reading {self.source.name} failed: {error!r}. {stats.summary_line()}"
            ) from error
        if self._errors:
            raise PublishError(
                f"Kafka refused {len(self._errors)} send(s) to {stats.topic}/{stats.deadletter_topic}; "
                f"first: {self._errors[0]!r}. {stats.summary_line()}"
            ) from self._errors[0]
        log.info(stats.summary_line())
        return stats

    async def _intake(self, queue: asyncio.Queue[Entry | None]) -> None:
        """Read, validate, pace and enqueue until the source ends or a limit is reached."""
        stats, pacer = self.stats, self.pacer
        max_events, duration_s = self.limits.events, self.limits.duration_s
        max_bytes, name = self.max_message_bytes, self.source.name
        keys: dict[tuple[str, str], bytes] = {}
        end_ms: int | None = None
        put = queue.put
        n = 0
        async with contextlib.aclosing(self.source.lines()) as lines:
            async for raw in lines:
                n += 1
                item = decode_tick(raw, max_bytes)
                if isinstance(item, Rejection):
                    record = dead_letter_record(item.reason, raw, f"{name}:{n}", int(time.time() * 1000))
                    await put((None, record))
                    stats.dead_lettered += 1
                    stats.reasons[item.reason.split(":")[0]] += 1
                    stats.ticks_in = n
                else:
                    tick = item.tick
                    if pacer is not None:
                        await pacer.wait(tick.recv_ts)
                    pair = (tick.exchange, tick.symbol)
                    key = keys.get(pair)
                    if key is None:
                        key = keys[pair] = f"{tick.exchange}:{tick.symbol}".encode()
                    await put((key, raw))
                    stats.accepted += 1
                    stats.ticks_in = n
                    if duration_s is not None:
                        t = event_time(tick)
                        if end_ms is None:
                            end_ms = t + int(duration_s * 1000)
                        if t >= end_ms:
                            break
                if max_events is not None and n >= max_events:
                    break

    async def _publish(
        self, queue: asyncio.Queue[Entry | None], producer: AIOKafkaProducer, intake: asyncio.Task[None]
    ) -> None:
        """Drain the queue into batches and the producer until the intake is over; then flush everything."""
        topic, deadletter = self.stats.topic, self.stats.deadletter_topic

        async def send(key: bytes | None, value: bytes, ticks: int, to: str = topic) -> None:
            future = await producer.send(to, value, key=key)
            future.add_done_callback(functools.partial(self._delivered, ticks))

        kafka_cfg = self.kafka
        batcher = Batcher(
            send, max_ticks=kafka_cfg.batch_max_ticks, linger_s=kafka_cfg.batch_linger_ms / 1000
        )
        n = 0
        while True:
            if queue.empty():
                if intake.done():
                    break
                await batcher.flush_due()
                due = batcher.next_due()
                try:
                    async with asyncio.timeout(None if due is None else max(0.0, due - time.monotonic())):
                        entry = await queue.get()
                except TimeoutError:
                    continue
            else:
                entry = queue.get_nowait()
            if entry is None:
                break
            key, value = entry
            if key is None:
                await send(None, value, 0, deadletter)
            else:
                await batcher.add(key, value)
            n += 1
            if not n % _DUE_CHECK_EVERY:
                await batcher.flush_due()
        await batcher.flush_all()
        await producer.flush()

    def _delivered(self, ticks: int, future: asyncio.Future[object]) -> None:
        """Producer callback: count an acknowledged batch, or record the failure and stop."""
        error = asyncio.CancelledError("send cancelled") if future.cancelled() else future.exception()
        if error is None:
            if ticks:
                self.stats.batches_out += 1
                self.stats.ticks_out += ticks
            return
        self._errors.append(error)
        if len(self._errors) == 1:
            log.error("Kafka refused a send (%r): stopping the collector", error)
            self.stop()

    async def _report(self, on_progress: Callable[[CollectorStats], None]) -> None:
        while True:
            await asyncio.sleep(self.progress_interval_s)
            on_progress(self.stats)


def _mark_end(queue: asyncio.Queue[Entry | None], _: asyncio.Task[None]) -> None:
    """Wake a publisher waiting on an empty queue once the intake is over.

    A full queue needs no marker: the publisher is busy draining it and checks
    `intake.done()` when it runs empty. (The intake cannot put the marker itself:
    a task cancelled before its first step never runs its `finally`.)
    """
    if not queue.full():
        queue.put_nowait(None)
