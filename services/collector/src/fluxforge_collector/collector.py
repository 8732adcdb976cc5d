"""The collector: source -> validation -> bounded queue -> per-symbol batches -> spool -> Kafka.

The intake reads the source and validates each tick with `decode_tick`; a full
queue makes it wait (backpressure). The publisher batches the queue into the
`Batcher` and appends each batch to the spool, which the drainer sends on; a
broker outage therefore never blocks the intake; a full disk does: the batch
waits until the spool can take it, the queue fills and the intake pauses
(`disk_pause`), resuming by itself when space returns. `stop()` (SIGTERM/SIGINT)
ends the intake only; a second `stop()` abandons the queue and open batches.
What is guaranteed, and when a tick can still be lost: docs/design.md
"Delivery guarantees" (Collector: the spool).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fluxforge_common import kafka
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.messages import Rejection, channel_of, decode_tick, event_time
from fluxforge_common.storage.space import DiskFullPause, MiB, free_bytes
from fluxforge_common.writers.ndjson import dead_letter_record

from fluxforge_collector.batcher import Batcher
from fluxforge_collector.drainer import PublishError, SpoolDrainer
from fluxforge_collector.feeds import Feeds
from fluxforge_collector.sources import TickSource
from fluxforge_collector.spool import DiskSpool, SpoolDiskFullError
from fluxforge_collector.watermarks import WatermarkClock, WatermarkMemory

log = logging.getLogger("fluxforge.collector")

DEFAULT_QUEUE_SIZE = 20_000
# Publisher checks for lingering batches at least every this many queue entries.
_DUE_CHECK_EVERY = 64
# A paced tick released up to this early is not worth a sleep (the schedule is absolute,
# so early releases never accumulate).
_PACE_SLACK_S = 0.001

# (key, raw tick, event time, whether the exchange stamped it) for an accepted tick;
# (None, dead-letter record, 0, False) for a rejected line.
Entry = tuple[bytes | None, bytes, int, bool]


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
    watermarks: int = 0  # watermark records batched
    batches_out: int = 0
    ticks_out: int = 0
    spooled: int = 0  # batches on disk waiting for Kafka's acknowledgement
    ticks_spooled: int = 0  # accepted ticks handed to the spool (in batches for the raw topic), in all
    kafka_up: bool = False
    reasons: Counter[str] = field(default_factory=Counter)
    feeds: Feeds = field(default_factory=Feeds)  # per symbol: ticks per channel, last tick's time
    disk_pause: DiskFullPause = field(
        default_factory=lambda: DiskFullPause(log, "the source is not read (its ticks wait upstream)")
    )
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
        kafka_state = "" if self.kafka_up else " | KAFKA DOWN"
        return (
            f"{self.ticks_in:,} ticks ({self.rate:,.0f}/s) | {self.ticks_out:,} published in "
            f"{self.batches_out:,} batches | dead-letter {self.dead_lettered:,} | "
            f"spooled {self.spooled:,}{kafka_state}"
        )

    def summary_line(self) -> str:
        reasons = (
            f" ({', '.join(f'{k}: {v}' for k, v in self.reasons.most_common())})" if self.reasons else ""
        )
        return (
            f"collector {self.source}: {self.ticks_in:,} ticks in, {self.batches_out:,} batches out "
            f"({self.ticks_out:,} ticks) to {self.topic}, {self.dead_lettered:,} dead-lettered to "
            f"{self.deadletter_topic}{reasons}, {self.watermarks:,} watermarks, in {self.elapsed:.1f} s "
            f"({self.rate:,.0f} ticks/s)"
            + (f"; {self.spooled:,} batches stay spooled for the next start" if self.spooled else "")
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


def stopped_on_full_spool(spool: DiskSpool, stats: CollectorStats) -> str:
    """Why a stop while the spool's disk is full ends the collector, and what it keeps and loses."""
    lost = stats.accepted - stats.ticks_spooled
    return (
        f"stopped with the spool's disk full ({spool.directory}, {free_bytes(spool.directory) / MiB:.1f} MiB "
        f"free): the {spool.records:,} batches spooled are kept and sent first at the next start; the "
        f"{lost:,} ticks read after them could not be spooled and are lost. Free space on that disk, or point "
        "collector.spool_dir at one with room, before starting again"
    )


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
        recorded: bool = False,
    ) -> None:
        """`recorded`: the source replays recorded ticks as fast as it can (a file, an archive, an
        unpaced simulation), so the wall clock says nothing about event time: no quiet watermarks,
        and the final watermark alone ends each symbol, as `fluxforge run` ends it."""
        names = kafka.TopicNames.from_config(settings.kafka)
        self.kafka = settings.kafka
        self.options = settings.collector
        self.spool_dir = settings.collector.spool_dir or (
            settings.storage.root / "spool" / spool_name(source.name)
        )
        self.max_message_bytes = settings.messages.max_bytes
        self.features = settings.features
        quiet_s = settings.collector.watermark_quiet_s
        self.watermark_quiet_s = settings.features.hf_emit_interval if quiet_s is None else quiet_s
        # Said when the run starts, once logging is set up in the configured format.
        self._quiet_s_unused = recorded and bool(quiet_s)
        if recorded:
            self.watermark_quiet_s = 0
        self.watermarks: WatermarkClock | None = None
        self._input_ended = False
        self.source = source
        self.limits = limits or Limits()
        self.pacer = None if speed is None else Pacer(speed)
        self.queue_size = queue_size
        self.on_progress = on_progress
        self.progress_interval_s = progress_interval_s
        self.stats = CollectorStats(topic or names.raw, names.deadletter, source.name)
        self.spool: DiskSpool | None = None
        self._stops = 0
        self._stopping = asyncio.Event()  # set by the first `stop()`: ends a wait for spool space
        self._intake_task: asyncio.Task[None] | None = None
        self._publish_task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """First call: stop reading, publish what was read. Second call: stop publishing too."""
        self._stops += 1
        self._stopping.set()
        if self._stops == 1:
            log.info("stopping: publishing what was read, then flushing (stop again to abandon it)")
            intake = self._intake_task
            # A live source ends its stream itself, after handing over what it received; other reads are cancelled.
            if intake is not None and (intake.done() or not self.source.request_stop()):
                intake.cancel()
        elif self._publish_task is not None:
            log.warning("stopping now: open batches and queued ticks are abandoned")
            self._publish_task.cancel()

    @property
    def abandoned(self) -> bool:
        """True when a second `stop()` gave up on queued ticks and open batches."""
        return self._stops > 1

    async def run(self, prepare: Callable[[], Awaitable[None]] | None = None) -> CollectorStats:
        """Publish until the source ends, a limit is reached, or `stop()`; returns the counts.

        `prepare` (creating the topics) runs once Kafka first answers; the
        collector reads and spools from the start, whether Kafka is up or not.
        """
        if self._quiet_s_unused:
            log.warning("collector.watermark_quiet_s is not used for a recorded input read unpaced")
        options = self.options
        spool = self.spool = DiskSpool(
            self.spool_dir,
            max_bytes=options.spool_max_mb << 20,
            segment_bytes=options.spool_segment_mb << 20,
        )
        stats = self.stats
        if spool.records:
            log.info(
                "spool %s holds %d batches from an earlier run: they go first", spool.directory, spool.records
            )
        drainer = SpoolDrainer(
            spool,
            self.kafka,
            request_timeout_s=options.send_timeout_s,
            on_delivered=self._delivered,
            on_connected=self._connected,
            prepare=prepare,
        )
        self.watermarks = WatermarkClock(
            interval_ms=self.features.interval_ms,
            lateness_ms=self.features.allowed_lateness_ms,
            memory=WatermarkMemory(spool.directory, stats.topic),
        )
        stats.started = time.monotonic()
        stats.spooled = spool.records
        queue: asyncio.Queue[Entry | None] = asyncio.Queue(self.queue_size)
        drain = asyncio.create_task(drainer.run())
        intake = self._intake_task = asyncio.create_task(self._intake(queue))
        intake.add_done_callback(functools.partial(_mark_end, queue))
        publish = self._publish_task = asyncio.create_task(self._publish(queue, spool, drainer, intake))
        progress = None if self.on_progress is None else asyncio.create_task(self._report(self.on_progress))
        if self._stops:
            intake.cancel()
        try:
            await asyncio.wait([publish, drain], return_when=asyncio.FIRST_COMPLETED)
            if not publish.done():  # the drainer failed for good: stop reading, keep what is spooled
                intake.cancel()
                publish.cancel()
                await asyncio.wait([publish])
        finally:
            await self._settle(drain, drainer)
            for task in (intake, publish, progress):
                if task is not None:
                    task.cancel()
            await asyncio.wait([intake])
            stats.spooled = spool.records
            spool.close()
            stats.finished = time.monotonic()
        if not drain.cancelled() and (error := drain.exception()) is not None:
            raise PublishError(f"{error} ({stats.summary_line()})") from error
        if not publish.cancelled() and (error := publish.exception()) is not None:
            raise error
        if not intake.cancelled() and (error := intake.exception()) is not None:
            raise SourceError(
                f"reading {self.source.name} failed: {error!r}. {stats.summary_line()}"
            ) from error
        log.info(stats.summary_line())
        return stats

    async def _settle(self, drain: asyncio.Task[None], drainer: SpoolDrainer) -> None:
        """Let the drainer empty the spool: until done when the input ended, bounded after a stop."""
        if drain.done():
            return
        drainer.close()
        while not self._stops and not drain.done():
            await asyncio.wait([drain], timeout=0.5)
        if not drain.done() and not self.abandoned:
            timeout = self.options.stop_drain_timeout_s
            log.info(
                "waiting up to %.0f s for Kafka to take %d spooled batches", timeout, drainer.spool.records
            )
            await asyncio.wait([drain], timeout=timeout)
        if not drain.done():
            drain.cancel()
            await asyncio.wait([drain])

    async def _intake(self, queue: asyncio.Queue[Entry | None]) -> None:
        """Read, validate, pace and enqueue until the source ends or a limit is reached."""
        stats, pacer = self.stats, self.pacer
        max_events, duration_s = self.limits.events, self.limits.duration_s
        max_bytes, name = self.max_message_bytes, self.source.name
        feeds, new_feed, clock = stats.feeds.by_pair, stats.feeds.get, time.monotonic
        end_ms: int | None = None
        put = queue.put
        n = 0
        async with contextlib.aclosing(self.source.lines()) as lines:
            async for raw in lines:
                n += 1
                item = decode_tick(raw, max_bytes)
                if isinstance(item, Rejection):
                    record = dead_letter_record(
                        item.reason, raw, f"{name}:{n}", int(time.time() * 1000), max_bytes=max_bytes
                    )
                    await put((None, record, 0, False))
                    stats.dead_lettered += 1
                    stats.reasons[item.reason.split(":")[0]] += 1
                    stats.ticks_in = n
                else:
                    tick = item.tick
                    if pacer is not None:
                        await pacer.wait(tick.recv_ts)
                    feed = feeds.get((tick.exchange, tick.symbol))
                    if feed is None:
                        feed = new_feed(tick.exchange, tick.symbol)
                    feed.ticks[channel_of(tick)] += 1
                    feed.last = clock()
                    t = event_time(tick)
                    await put((feed.key, raw, t, tick.ts is not None))
                    stats.accepted += 1
                    stats.ticks_in = n
                    if duration_s is not None:
                        if end_ms is None:
                            end_ms = t + int(duration_s * 1000)
                        if t >= end_ms:
                            break
                if max_events is not None and n >= max_events:
                    break
        self._input_ended = True

    async def _publish(
        self,
        queue: asyncio.Queue[Entry | None],
        spool: DiskSpool,
        drainer: SpoolDrainer,
        intake: asyncio.Task[None],
    ) -> None:
        """Drain the queue into batches and the spool until the intake is over; then flush everything."""
        topic, deadletter = self.stats.topic, self.stats.deadletter_topic
        stats = self.stats

        async def send(key: bytes | None, value: bytes, ticks: int, to: str = topic) -> None:
            while True:
                try:
                    spool.append(to, key, value, ticks)
                except SpoolDiskFullError as exc:
                    if self._stops:  # stopping: what is spooled stays, the rest cannot be kept
                        raise SpoolDiskFullError(stopped_on_full_spool(spool, stats)) from exc
                    await stats.disk_pause.wait(exc, until=self._stopping)
                    continue
                stats.disk_pause.resumed()
                break
            if to == topic:
                stats.ticks_spooled += ticks
            stats.spooled = spool.records
            drainer.wake()

        kafka_cfg = self.kafka
        batcher = Batcher(
            send, max_ticks=kafka_cfg.batch_max_ticks, linger_s=kafka_cfg.batch_linger_ms / 1000
        )
        clock = self.watermarks
        assert clock is not None
        quiet_s = self.watermark_quiet_s
        next_quiet = time.monotonic() + quiet_s if quiet_s else math.inf

        async def add_watermarks(records: list[tuple[bytes, bytes]]) -> None:
            for key, record in records:
                await batcher.add(key, record, 0)
            stats.watermarks = clock.count

        async def flush_due() -> None:
            """Lingering batches out; once per quiet period, the watermarks of the quiet symbols."""
            nonlocal next_quiet
            await batcher.flush_due()
            if time.monotonic() >= next_quiet:
                await add_watermarks(clock.quiet())
                next_quiet = time.monotonic() + quiet_s

        n = 0
        while True:
            if queue.empty():
                if intake.done():
                    break
                await flush_due()
                linger = batcher.next_due()
                due = next_quiet if linger is None else min(linger, next_quiet)
                try:
                    async with asyncio.timeout(None if due == math.inf else max(0.0, due - time.monotonic())):
                        entry = await queue.get()
                except TimeoutError:
                    continue
            else:
                entry = queue.get_nowait()
            if entry is None:
                break
            key, value, event_ms, stamped = entry
            if key is None:
                await send(None, value, 0, deadletter)
            else:
                clock.seen(key, event_ms, stamped)
                await batcher.add(key, value)
            n += 1
            if not n % _DUE_CHECK_EVERY:
                await flush_due()
        if self._input_ended and not self._stops and self.options.final_watermark:
            await add_watermarks(clock.final())
        await batcher.flush_all()

    def _delivered(self, ticks: int) -> None:
        """Drainer callback: Kafka acknowledged a batch of `ticks` ticks (0: a dead-letter record)."""
        stats = self.stats
        if ticks:
            stats.batches_out += 1
            stats.ticks_out += ticks
        if self.spool is not None:
            stats.spooled = self.spool.records

    def _connected(self, up: bool) -> None:
        self.stats.kafka_up = up

    async def _report(self, on_progress: Callable[[CollectorStats], None]) -> None:
        while True:
            await asyncio.sleep(self.progress_interval_s)
            on_progress(self.stats)


def spool_name(source: str) -> str:
    """A directory name for a source's spool ("binanceus", "simulator", "file_data_x.ndjson"); a
    long name is cut and ends with a digest of the whole, so that sources differing past the cut
    (replays of one long root, one shard each) keep spools of their own."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", source).strip("_.") or "source"
    if len(name) <= 100:
        return name
    return f"{name[:83]}-{hashlib.sha256(source.encode()).hexdigest()[:16]}"


def _mark_end(queue: asyncio.Queue[Entry | None], _: asyncio.Task[None]) -> None:
    """Wake a publisher waiting on an empty queue once the intake is over.

    A full queue needs no marker: the publisher is busy draining it and checks
    `intake.done()` when it runs empty. (The intake cannot put the marker itself:
    a task cancelled before its first step never runs its `finally`.)
    """
    if not queue.full():
        queue.put_nowait(None)
