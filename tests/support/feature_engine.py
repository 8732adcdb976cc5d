"""Driving feature-engine workers from tests and benchmarks: raw batches in, deduplicated rows out.

- `per_symbol_batches` groups raw ticks into `<exchange>:<symbol>` messages the way the
  collector does (per-symbol order kept, at most `batch_size` ticks per message);
- `expected_rows` runs the same ticks through the in-process `FeatureEngine` (with or without
  the final flush, which a stream reaches only through the watermarks that end it,
  `final_watermarks`) for comparison;
- `publish` sends raw messages; `OutputReader` reads the feature and dead-letter topics
  (read_committed, from the beginning, each engine output once: `Deduplicator`);
- `EngineStack` is one test's topics, config and workers (`fluxforge engine`
  as `ServiceProcess` children, so a test can `kill -9` them).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson
from aiokafka import AIOKafkaConsumer
from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.config.state import StateConfig
from fluxforge_common.features import TABLES, EngineOutput, FeatureEngine, closing_watermark
from fluxforge_common.kafka import TopicNames, producer
from fluxforge_common.kafka.lineage import Deduplicator, parse_source
from fluxforge_common.messages import DecodedTick, Rejection, Watermark, decode_tick
from fluxforge_common.messages.rows import decode_rows, encode_rows
from fluxforge_common.simulator import MarketSimulator, SimulatorConfig
from fluxforge_feature_engine.topics import EngineTopics, prepare_topics

from tests.support.processes import ServiceProcess

Row = dict[str, Any]
RowsByKey = dict[str, dict[str, list[Row]]]  # table -> "<exchange>:<symbol>" -> rows in emission order
READ_TIMEOUT_S = 90.0
# `features.ibars` with every kind, at thresholds the simulated market closes several bars of per symbol
# within a minute (its BTC pairs trade ~0.1 BTC a second, its SOL pair ~10 SOL).
IBARS: dict[str, Any] = {
    "tick": [10],
    "volume": [5.0],
    "dollar": [50_000.0],
    "tick_imbalance": {"expected_ticks_init": 10, "expected_ticks_min": 3, "expected_ticks_max": 200},
}


def simulated_ticks(n: int, seed: int = 7, **overrides: Any) -> list[bytes]:
    """The first `n` raw envelopes of the simulated market."""
    return list(itertools.islice(MarketSimulator(SimulatorConfig(seed=seed, **overrides)).ticks(), n))


def key_of(line: bytes) -> bytes:
    envelope = orjson.loads(line)
    return f"{envelope['exchange']}:{envelope['symbol']}".encode()


def per_symbol_batches(lines: Iterable[bytes], batch_size: int) -> list[tuple[bytes, bytes]]:
    """(key, JSON array value) messages of at most `batch_size` ticks of one symbol, per-symbol order kept.

    A batch is cut when it is full; what remains is flushed at the end, in first-seen key order.
    """
    pending: dict[bytes, list[bytes]] = {}
    messages: list[tuple[bytes, bytes]] = []
    for line in lines:
        key = key_of(line)
        batch = pending.setdefault(key, [])
        batch.append(line)
        if len(batch) >= batch_size:
            messages.append((key, b"[" + b",".join(batch) + b"]"))
            pending[key] = []
    messages += [(key, b"[" + b",".join(batch) + b"]") for key, batch in pending.items() if batch]
    return messages


def watermark_message(key: bytes, ms: int) -> tuple[bytes, bytes]:
    """A raw message holding one watermark record for `key`, as the collector makes it."""
    exchange, _, symbol = key.decode().partition(":")
    return key, msgspec.json.encode(Watermark(exchange, symbol, ts=ms, recv_ts=ms))


def with_watermarks(batches: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`batches` with a true watermark after each one: its key's earliest event time still to come.

    Every later tick of the key is at or after it, so the rows must not change; ticks held for
    the lateness and intervals the next ticks would close are emitted a message early.
    """
    still_to_come: dict[bytes, list[int]] = defaultdict(list)
    for key, value in reversed(batches):
        times = [t["ts"] if t["ts"] is not None else t["recv_ts"] for t in orjson.loads(value)]
        still_to_come[key].append(min(times + still_to_come[key][-1:]))
    messages: list[tuple[bytes, bytes]] = []
    for key, value in batches:
        still_to_come[key].pop()
        messages.append((key, value))
        if still_to_come[key]:
            messages.append(watermark_message(key, still_to_come[key][-1]))
    return messages


def final_watermarks(lines: Iterable[bytes], cfg: StateConfig) -> list[tuple[bytes, bytes]]:
    """The collector's end of a finite input: per key, the watermark after its latest event time."""
    latest: dict[bytes, int] = {}
    for line in lines:
        tick = orjson.loads(line)
        key, ms = key_of(line), tick["recv_ts"] if tick["ts"] is None else tick["ts"]
        latest[key] = max(latest.get(key, ms), ms)
    return [watermark_message(key, closing_watermark(ms, cfg.interval_ms)) for key, ms in latest.items()]


def expected_rows(
    lines: Iterable[bytes], cfg: StateConfig, *, flush: bool = False
) -> tuple[RowsByKey, list[Rejection]]:
    """Rows of the in-process engine on `lines` (with the final flush, or without, as a stream without
    watermarks gives them), through the wire codec, and its refusals."""
    engine = FeatureEngine(cfg)
    out = EngineOutput()
    rejected: list[Rejection] = []
    for line in lines:
        item = decode_tick(line)
        if isinstance(item, DecodedTick):
            engine.process(item, out)
        else:
            rejected.append(item)
    if flush:
        engine.flush(out)
    rejected += out.rejected
    rows: RowsByKey = {table: defaultdict(list) for table in TABLES}
    for table, table_rows in out.tables().items():
        for row in decode_rows(encode_rows(list(table_rows))) if table_rows else []:
            rows[table][f"{row['exchange']}:{row['symbol']}"].append(row)
    return {table: dict(by_key) for table, by_key in rows.items()}, rejected


def count_rows(rows: RowsByKey) -> dict[str, int]:
    return {table: sum(len(r) for r in by_key.values()) for table, by_key in rows.items()}


async def publish(kafka: KafkaConfig, topic: str, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
    """Send `messages` (key, value) in order and wait until Kafka acknowledged every one."""
    client = producer(kafka)
    await client.start()
    try:
        futures = [await client.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await client.stop()


@dataclass
class Received:
    """What an `OutputReader` collected (duplicates dropped, and counted)."""

    rows: RowsByKey = field(default_factory=lambda: {table: {} for table in TABLES})
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    messages: int = 0
    # Wall-clock receive time (s) of every HF row: (row ts, symbol key, time.time()).
    hf_arrivals: list[tuple[int, str, float]] = field(default_factory=list)
    first_arrival: float | None = None
    last_arrival: float | None = None

    def count(self, table: str) -> int:
        return sum(len(rows) for rows in self.rows[table].values())


class OutputReader:
    """Reads an engine's output topics from the beginning, read_committed, each output once."""

    def __init__(self, kafka: KafkaConfig, outputs: TopicNames) -> None:
        self.kafka = kafka
        self.outputs = outputs
        self.received = Received()
        self._dedupe = Deduplicator()
        self._tables = {topic: table for table, topic in outputs.features.items()}
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> OutputReader:
        self._consumer = AIOKafkaConsumer(
            *self._tables,
            self.outputs.deadletter,
            bootstrap_servers=self.kafka.bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 << 20,
            fetch_max_bytes=64 << 20,
            metadata_max_age_ms=2_000,
        )
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> int:
        """Take what has arrived; returns the number of new (not duplicate) messages."""
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        now = time.time()
        got = self.received
        new = 0
        for tp, records in batches.items():
            for record in records:
                headers = [(name, bytes(value)) for name, value in record.headers or ()]
                if not self._dedupe.accept(tp.topic, tp.partition, headers):
                    got.duplicates += 1
                    continue
                new += 1
                got.messages += 1
                if got.first_arrival is None:
                    got.first_arrival = now
                got.last_arrival = now
                value = bytes(record.value)
                table = self._tables.get(tp.topic)
                if table is None:
                    record_json = orjson.loads(value)
                    record_json["_source"] = parse_source(headers)
                    got.dead_letters.append(record_json)
                    continue
                key = bytes(record.key).decode()
                rows = decode_rows(value)
                got.rows[table].setdefault(key, []).extend(rows)
                if table == "hf":
                    got.hf_arrivals += [(row["ts"], key, now) for row in rows]
        return new

    async def read_until(
        self, done: Callable[[Received], bool], timeout_s: float, settle_s: float = 0.0
    ) -> Received:
        """Poll until `done(received)` holds (then `settle_s` more, to catch late duplicates) or timeout."""
        deadline = time.monotonic() + timeout_s
        while not done(self.received) and time.monotonic() < deadline:
            await self.poll()
        settle_end = time.monotonic() + settle_s
        while time.monotonic() < settle_end:
            await self.poll()
        return self.received


@dataclass
class EngineStack:
    """One test's topics, config and workers."""

    bootstrap: str
    prefix: str
    root: Path
    partitions: int = 3
    workers: list[ServiceProcess] = field(default_factory=list)

    @property
    def app_id(self) -> str:
        return f"{self.prefix}-app"

    @property
    def kafka(self) -> KafkaConfig:
        return KafkaConfig(
            bootstrap_servers=self.bootstrap, topic_prefix=self.prefix, partitions=self.partitions
        )

    @property
    def outputs(self) -> TopicNames:
        return TopicNames.from_config(self.kafka)

    def config_file(self) -> Path:
        path = self.root / "config.yaml"
        path.write_text(
            "kafka:\n"
            f"  bootstrap_servers: '{self.bootstrap}'\n"
            f"  topic_prefix: '{self.prefix}'\n"
            f"  partitions: {self.partitions}\n"
        )
        return path

    def prepare(self) -> EngineTopics:
        """Create the topics now (the worker would), so a test can publish before any worker runs."""
        return asyncio.run(prepare_topics(self.kafka, None, self.app_id))

    def worker(self, name: str, *extra: str) -> ServiceProcess:
        """Start `fluxforge engine` for this stack; its log is <root>/<name>.log."""
        args = [
            "--config",
            str(self.config_file()),
            "--app-id",
            self.app_id,
            "--data-dir",
            str(self.root / f"faust-{name}"),
            *extra,
        ]
        process = ServiceProcess(name, "engine", args, dict(os.environ), self.root / f"{name}.log").start()
        self.workers.append(process)
        return process

    def publish(self, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        asyncio.run(publish(self.kafka, self.outputs.raw, messages))

    async def publish_paced(self, messages: Sequence[tuple[bytes | None, bytes]], duration_s: float) -> None:
        """Publish in ~20 slices spread over `duration_s`: a stream that is still arriving."""
        slices = 20
        size = max(1, -(-len(messages) // slices))
        for start in range(0, len(messages), size):
            await publish(self.kafka, self.outputs.raw, messages[start : start + size])
            await asyncio.sleep(duration_s / slices)

    def read(
        self,
        done: Callable[[Received], bool],
        *,
        timeout_s: float = READ_TIMEOUT_S,
        settle_s: float = 2.0,
        during: Callable[[OutputReader], Coroutine[Any, Any, None]] | None = None,
    ) -> Received:
        """Read the outputs until `done` (then `settle_s` more); `during` runs alongside the reading."""

        async def go() -> Received:
            async with OutputReader(self.kafka, self.outputs) as reader:
                task = asyncio.create_task(during(reader)) if during is not None else None
                try:
                    got = await reader.read_until(done, timeout_s, settle_s)
                    if task is not None:
                        await task
                    return got
                finally:
                    if task is not None and not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task

        return asyncio.run(go())

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.log_text()[-6000:]}" for w in self.workers)
