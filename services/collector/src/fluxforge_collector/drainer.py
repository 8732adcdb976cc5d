"""Sends the spool to Kafka in order, through outages, without sending a batch twice.

The drainer is a collector's only producer. How it detects an outage, backs
off, and skips what already landed after a failure (the `ff-spool` header) is
in docs/design.md "Delivery guarantees" (Collector: the spool). At most
`window` records are in flight beyond the acknowledged mark on disk. A refusal
that retrying cannot cure raises `PublishError`: the collector stops and the
spool keeps the batch and everything after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, OutOfOrderSequenceNumber
from aiokafka.partitioner import murmur2
from aiokafka.protocol.metadata import MetadataRequest
from fluxforge_common import kafka
from fluxforge_common.config import KafkaConfig

from fluxforge_collector.backoff import Backoff
from fluxforge_collector.spool import DiskSpool, SpoolRecord

log = logging.getLogger("fluxforge.collector.drainer")

SPOOL_HEADER = "ff-spool"
# Records read from the spool per step.
_READ_CHUNK = 256
# Messages read per step when looking for our last landed record in a partition.
_SCAN_STEP = 2_000
# Acknowledgements missing this long while sends are in flight: ask whether a broker answers.
PROBE_AFTER_S = 2.0
# How long a broker gets to answer that question (a metadata request for no topic).
PROBE_REPLY_S = 3.0


class PublishError(Exception):
    """The broker refused a batch for good: the collector stopped instead of leaving a gap."""


def retriable(error: BaseException) -> bool:
    """Whether a Kafka failure may pass by itself (broker away, timeouts, leadership moving)."""
    return (
        isinstance(error, KafkaTimeoutError | OutOfOrderSequenceNumber | OSError)
        or bool(getattr(error, "retriable", False))
        or (isinstance(error, KafkaError) and "Unable to bootstrap" in str(error))
    )


def partition_for(record: SpoolRecord, partitions: int) -> int:
    """The partition a record goes to: the key's murmur2 hash, like Kafka's default partitioner."""
    if record.key is None:
        return record.seq % partitions
    return (int(murmur2(record.key)) & 0x7FFFFFFF) % partitions


class SpoolDrainer:
    """Moves spooled records to Kafka; `run()` returns once `close()` was called and the spool is empty."""

    def __init__(
        self,
        spool: DiskSpool,
        cfg: KafkaConfig,
        *,
        window: int = 2_048,
        request_timeout_s: float = 30.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 15.0,
        max_scan: int = 200_000,
        on_delivered: Callable[[int], None] | None = None,
        on_connected: Callable[[bool], None] | None = None,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.spool = spool
        self.cfg = cfg
        self.window = window
        self.request_timeout_s = request_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_scan = max_scan
        self.on_delivered = on_delivered
        self.on_connected = on_connected
        self._prepare = prepare
        self.connected = False
        self.outages = 0
        self._closing = False
        self._wake = asyncio.Event()
        # Highest record an earlier producer (or process) may have handed to Kafka.
        self._maybe_sent = min(spool.last_seq, spool.acked + window) if spool.records else spool.acked
        self._done: set[int] = set()
        self._sent = spool.acked  # highest record handed to the current producer

    def wake(self) -> None:
        """New records were appended."""
        self._wake.set()

    def close(self) -> None:
        """Finish once everything spooled is acknowledged."""
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(self.backoff_initial_s, self.backoff_max_s)
        while True:
            if self._closing and not self.spool.records:  # nothing to send: no need to reach Kafka
                return
            producer: AIOKafkaProducer | None = None
            try:
                producer = await self._connect()
                backoff.reset()
                await self._skip_landed(producer)
                await self._send(producer)
                return
            except kafka.KafkaAccessError as exc:
                raise PublishError(
                    f"{exc}. The collector stopped; the spool {self.spool.directory} keeps every batch "
                    "for the next start"
                ) from None
            except Exception as exc:
                if not retriable(exc):
                    raise PublishError(
                        f"Kafka refused a batch for good ({exc!r}); the collector stopped. The batch and "
                        f"all after it stay in the spool {self.spool.directory} and go first on the next "
                        "start, once the cause is fixed"
                    ) from exc
                if self.connected or not self.outages:
                    self.outages += 1
                    log.warning(
                        "Kafka at %s unreachable (%r): spooling to %s (%d batches waiting)",
                        self.cfg.bootstrap_servers,
                        exc,
                        self.spool.directory,
                        self.spool.records,
                    )
                self._set_connected(False)
            finally:
                if producer is not None:
                    await self._stop(producer)
            await asyncio.sleep(backoff.next())

    def _set_connected(self, value: bool) -> None:
        if value != self.connected:
            self.connected = value
            if self.on_connected is not None:
                self.on_connected(value)

    async def _connect(self) -> AIOKafkaProducer:
        producer = kafka.producer(self.cfg, request_timeout_ms=int(self.request_timeout_s * 1000))
        try:
            if self._prepare is not None:
                await self._prepare()  # the topics, once Kafka answers
                self._prepare = None
            await kafka.start(producer, self.cfg)
        except BaseException:
            await self._stop(producer)
            raise
        if self.outages:
            log.info(
                "Kafka at %s answers again: draining %d spooled batches",
                self.cfg.bootstrap_servers,
                self.spool.records,
            )
        self._set_connected(True)
        return producer

    async def _stop(self, producer: AIOKafkaProducer) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.request_timeout_s):
                await producer.stop()

    async def _skip_landed(self, producer: AIOKafkaProducer) -> None:
        """Acknowledge the records an earlier producer delivered whose acknowledgement we lost."""
        spool = self.spool
        first, last = spool.acked + 1, self._maybe_sent
        if last < first:
            return
        records = spool.read(spool.acked, last - spool.acked)
        counts = {topic: len(await producer.partitions_for(topic)) for topic in {r.topic for r in records}}
        placed = [
            (record, TopicPartition(record.topic, partition_for(record, counts[record.topic])))
            for record in records
        ]
        wanted: dict[TopicPartition, set[int]] = {}
        for record, tp in placed:
            wanted.setdefault(tp, set()).add(record.seq)
        landed = await self._landed(wanted, first)
        skipped = 0
        for record, tp in placed:
            if record.seq in landed.get(tp, ()):
                self._acknowledge(record.seq, record.ticks)
                skipped += 1
        if skipped:
            log.info(
                "%d spooled batches had reached Kafka before the outage or crash: not sent again", skipped
            )

    async def _landed(
        self, wanted: dict[TopicPartition, set[int]], first: int
    ) -> dict[TopicPartition, set[int]]:
        """Per partition, which of its `wanted` sequences (all from `first` on) are at its end.

        Each one found, not every one up to the highest: a batch refused for good can be followed
        by a later batch of its partition that landed. The scan goes back until it has found them
        all or meets one of ours from before `first` (what lies before that was sent before it)."""
        tps = set(wanted)
        consumer = await kafka.start(
            kafka.plain_consumer(self.cfg, request_timeout_ms=int(self.request_timeout_s * 1000)), self.cfg
        )
        try:
            consumer.assign(sorted(tps))
            begins = await consumer.beginning_offsets(list(tps))
            ends = await consumer.end_offsets(list(tps))
            found: dict[TopicPartition, set[int]] = {}
            for tp in tps:
                end, scanned, ours = ends[tp], 0, set[int]()
                while end > begins[tp] and scanned < self.max_scan:
                    start = max(begins[tp], end - _SCAN_STEP)
                    step = await self._ours_in(consumer, tp, start, end)
                    ours |= step
                    scanned += end - start
                    end = start
                    if ours >= wanted[tp] or any(seq < first for seq in step):
                        break
                if not ours and scanned >= self.max_scan:
                    log.warning(
                        "no batch of this spool in the last %d messages of %s: assuming none landed",
                        scanned,
                        tp,
                    )
                found[tp] = {seq for seq in ours if seq >= first}
            return found
        finally:
            await consumer.stop()

    async def _ours_in(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int
    ) -> set[int]:
        """The sequences of this spool among offsets [start, end) of a partition."""
        prefix = f"{self.spool.ident}:".encode()
        consumer.seek(tp, start)
        ours: set[int] = set()
        idle = 0
        while await consumer.position(tp) < end and idle < 3:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            idle = 0 if batch else idle + 1
            for message in batch.get(tp, []):
                if message.offset >= end:
                    break
                for name, value in message.headers:
                    if name == SPOOL_HEADER and value.startswith(prefix):
                        ours.add(int(value[len(prefix) :]))
        return ours

    async def _send(self, producer: AIOKafkaProducer) -> None:
        """Send the spool until closed, while a watchdog fails the sending when the brokers stop answering.

        The watchdog is a task of its own: with a broker that does not answer, the sending
        soon waits inside `producer.send` for room in aiokafka's buffer.
        """
        self._sent = self.spool.acked
        sender = asyncio.ensure_future(self._send_records(producer))
        watchdog = asyncio.ensure_future(self._watch_acknowledgements(producer))
        try:
            await asyncio.wait({sender, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            if watchdog.done():
                watchdog.result()
            sender.result()
        finally:
            for task in (sender, watchdog):
                task.cancel()
            await asyncio.gather(sender, watchdog, return_exceptions=True)

    async def _watch_acknowledgements(self, producer: AIOKafkaProducer) -> None:
        watched = (self.spool.acked, time.monotonic())  # acknowledged mark, and since when it has not moved
        while True:
            await asyncio.sleep(PROBE_AFTER_S / 4)
            watched = await self._probe_if_stalled(producer, watched, in_flight=self._sent > self.spool.acked)

    async def _send_records(self, producer: AIOKafkaProducer) -> None:
        spool = self.spool
        failures: list[BaseException] = []
        progress = asyncio.Event()
        partitions: dict[str, int] = {}
        header = f"{spool.ident}:".encode()
        sent = spool.acked

        def delivered(seq: int, ticks: int, future: asyncio.Future[object]) -> None:
            error = asyncio.CancelledError() if future.cancelled() else future.exception()
            if error is not None:
                failures.append(error)
            else:
                self._acknowledge(seq, ticks)
            progress.set()

        while True:
            if failures:
                raise failures[0]
            room = self.window - (sent - spool.acked)
            records = spool.read(sent, min(_READ_CHUNK, room)) if room > 0 else []
            if not records:
                if self._closing and spool.acked >= spool.last_seq:
                    return
                progress.clear()
                self._wake.clear()
                waits = [asyncio.ensure_future(progress.wait()), asyncio.ensure_future(self._wake.wait())]
                await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waits:
                    waiter.cancel()
                continue
            for record in records:
                sent = record.seq
                if sent in self._done:
                    continue  # delivered by an earlier producer, or found landed
                if record.seq > spool.acked + self.window - spool.unpersisted:
                    spool.persist()  # keep a crash's resends within the window that `_skip_landed` checks
                count = partitions.get(record.topic)
                if count is None:
                    count = partitions[record.topic] = len(await producer.partitions_for(record.topic))
                future = await producer.send(
                    record.topic,
                    record.value,
                    key=record.key,
                    partition=partition_for(record, count),
                    headers=[(SPOOL_HEADER, header + str(record.seq).encode())],
                )
                future.add_done_callback(functools.partial(delivered, record.seq, record.ticks))
                self._sent = sent
                self._maybe_sent = max(self._maybe_sent, sent)

    async def _probe_if_stalled(
        self, producer: AIOKafkaProducer, watched: tuple[int, float], *, in_flight: bool
    ) -> tuple[int, float]:
        """Raise KafkaConnectionError when acknowledgements stalled and no broker answers."""
        acked, since = watched
        now = time.monotonic()
        if not in_flight or self.spool.acked != acked:
            return self.spool.acked, now
        if now - since < PROBE_AFTER_S:
            return watched
        client = producer.client
        for broker in client.cluster.brokers():
            if await client.ready(broker.nodeId) and await _answers(client, broker.nodeId):
                return acked, now
        raise KafkaConnectionError(
            f"no broker of {self.cfg.bootstrap_servers} answers (connection refused, "
            f"or no reply within {PROBE_REPLY_S} s)"
        )

    def _acknowledge(self, seq: int, ticks: int) -> None:
        """Record one delivered record; move the spool's mark over every contiguous one."""
        spool = self.spool
        if self.on_delivered is not None:
            self.on_delivered(ticks)
        if seq != spool.acked + 1:
            self._done.add(seq)
            return
        while seq + 1 in self._done:
            self._done.discard(seq + 1)
            seq += 1
        spool.ack(seq, persist_every=self.window // 2)


async def _answers(client: AIOKafkaClient, node_id: int) -> bool:
    """Whether a broker replies to a metadata request for no topic (an open connection is not a live broker)."""
    try:
        await asyncio.wait_for(client.send(node_id, MetadataRequest([])), PROBE_REPLY_S)
    except (TimeoutError, KafkaError):
        return False
    return True
