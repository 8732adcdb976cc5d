"""The feature engine service over a real Kafka broker: throughput of one worker and end-to-end latency.

Needs a broker: `FLUXFORGE_KAFKA_BOOTSTRAP` (default 127.0.0.1:9092, `make kafka-up`); without one
the rows say so. Every run uses its own topic prefix and app id, deleted afterwards.

- Throughput: N simulated ticks are first published in per-symbol batches of 100, then one
  worker (`fluxforge engine`, a child process) is started and timed from its
  first output message to the last HF row the in-process engine says it must produce; then
  again with the 2-tick messages a live market's symbols make, of 200 symbols (docs/capacity.md
  "Messages bound a worker"); and with the 1,000-tick messages of a replay that fills them.
- Latency: the simulated market is replayed in real time (timestamps moved to now) through a
  collector-like batcher (a symbol's batch goes out at 100 ticks or when its oldest tick is
  50 ms old); for every HF row, latency = when a read_committed consumer received it minus the
  `recv_ts` of the tick that closed its interval (the symbol's first tick at or after the row's ts).
  The engine holds that row until the symbol's event time passes its end by the allowed lateness
  (docs/design.md "Time and emission"), so the latency after it is also reported: from the
  symbol's first tick at or after the row's ts plus `allowed_lateness_ms`. A second replay runs
  a worker with `allowed_lateness_ms: 0`, which applies stamped ticks as they arrive.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.config.state import StateConfig
from fluxforge_common.kafka import TopicNames, producer
from fluxforge_feature_engine.processor import MessageProcessor
from fluxforge_feature_engine.topics import EngineTopics, prepare_topics

from tests.support.feature_engine import (
    OutputReader,
    count_rows,
    expected_rows,
    key_of,
    per_symbol_batches,
    publish,
    simulated_ticks,
)
from tests.support.processes import ServiceProcess

Row = tuple[str, str, str]
BATCH_TICKS = 100
LINGER_MS = 50
# A live market's messages: at ~12 ticks/s a symbol (docs/capacity.md "Sizing"), a batch that
# goes out 50 ms after its first tick holds 1 + 12 x 0.05 = ~1.6 ticks; at 4x that, ~3.4. Of
# many symbols, so that a flush writes a state for most messages, as it does in such a market.
MARKET_BATCH_TICKS = 2
MARKET_TICKS = 20_000
MARKET_SYMBOLS = {f"venue{n}": [f"C{k:02d}/USDT" for k in range(25)] for n in range(8)}
# A replay configured with `kafka.batch_max_ticks: 1000` fills messages this large (docs/capacity.md
# "Reprocessing one month"); enough of them that the worker's start and its last commit weigh little.
REPLAY_BATCH_TICKS = 1_000
REPLAY_TICKS = 1_000_000
LATENCY_SECONDS = 30.0
LATENCY_TICKS_PER_S = 2_000
# Ten symbols: ten HF rows per second of market to measure.
MARKET = {
    "binanceus": ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT"],
    "kraken": ["BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD", "ADA/USD"],
}
SYMBOLS = sum(len(symbols) for symbols in MARKET.values())


class _Run:
    """One prefix, app id, config file and its workers; topics deleted on close."""

    def __init__(self, bootstrap: str, root: Path) -> None:
        self.bootstrap = bootstrap
        self.prefix = f"ffbench-fe-{uuid.uuid4().hex[:8]}"
        self.root = root
        self.kafka = KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=self.prefix)
        self.workers: list[ServiceProcess] = []

    async def topics(self) -> EngineTopics:
        return await prepare_topics(self.kafka, None, f"{self.prefix}-app")

    def start_worker(self, lateness_ms: int | None = None) -> ServiceProcess:
        """One more worker of the app (each with its own data directory and log); `lateness_ms`
        replaces the default `features.allowed_lateness_ms`."""
        n = len(self.workers)
        config = self.root / f"{self.prefix}.yaml"
        features = "" if lateness_ms is None else f"features:\n  allowed_lateness_ms: {lateness_ms}\n"
        config.write_text(
            f"kafka:\n  bootstrap_servers: '{self.bootstrap}'\n  topic_prefix: '{self.prefix}'\n" + features
        )
        args = [
            "--config",
            str(config),
            "--app-id",
            f"{self.prefix}-app",
            "--data-dir",
            str(self.root / f"faust-{n}"),
        ]
        log = self.root / f"{self.prefix}-{n}.log"
        worker = ServiceProcess(f"worker-{n}", "engine", args, dict(os.environ), log).start()
        self.workers.append(worker)
        return worker

    async def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(self.prefix)]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()


async def _reachable(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        await admin.close()
        return True
    except (TimeoutError, KafkaError, OSError):
        return False


@dataclass(frozen=True)
class Throughput:
    """One throughput run: how long publishing took and when the outputs came."""

    ticks: int
    publish_s: float
    busy_s: float  # first output message to the last HF row
    from_start_s: float  # worker start to the last HF row
    cpu_s: float  # CPU seconds the workers used from start to the last HF row
    messages: list[tuple[bytes, bytes]]  # what was published: the processor alone runs on the same


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used (Linux `/proc/<pid>/stat`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processor_rate(messages: list[tuple[bytes, bytes]], n: int) -> float:
    """Ticks/s of `MessageProcessor.process` alone, in this process, on the messages the worker reads:
    what a worker would reach if consuming, producing and committing cost nothing."""
    processor = MessageProcessor(StateConfig(), TopicNames.from_config(KafkaConfig()))
    table: dict[bytes, bytes] = {}
    start = time.perf_counter()
    for offset, (key, value) in enumerate(messages):
        result = processor.process(key, value, 0, offset, table.get(key))
        if result.table_value is not None:
            table[key] = result.table_value
    return n / (time.perf_counter() - start)


async def measure_throughput(
    bootstrap: str,
    root: Path,
    n: int,
    workers: int = 1,
    batch_ticks: int = BATCH_TICKS,
    exchanges: dict[str, list[str]] | None = None,
) -> Throughput | str:
    """`n` simulated ticks (of the simulator's symbols, or of `exchanges`) published first, in
    per-symbol messages of up to `batch_ticks`, then `workers` workers of one app started together;
    the timings, or why the run failed."""
    lines = simulated_ticks(n, seed=99, **({} if exchanges is None else {"exchanges": exchanges}))
    expected, _ = expected_rows(lines, StateConfig())
    want_hf = count_rows(expected)["hf"]
    messages = per_symbol_batches(lines, batch_ticks)
    run = _Run(bootstrap, root)
    try:
        topics = await run.topics()
        started = time.perf_counter()
        await publish(run.kafka, topics.raw, messages)
        publish_s = time.perf_counter() - started
        async with OutputReader(run.kafka, topics.outputs) as reader:
            start = time.time()
            for _ in range(workers):
                run.start_worker()
            got = await reader.read_until(lambda g: g.count("hf") >= want_hf, timeout_s=600)
        if got.count("hf") < want_hf or got.first_arrival is None or got.last_arrival is None:
            return f"{got.count('hf')}/{want_hf} HF rows in 600 s"
        cpu_s = sum(cpu_seconds(worker.proc.pid) for worker in run.workers if worker.proc is not None)
        busy_s, from_start_s = got.last_arrival - got.first_arrival, got.last_arrival - start
        return Throughput(n, publish_s, busy_s, from_start_s, cpu_s, messages)
    finally:
        await run.close()


def _worker_rows(
    label: str, batch_ticks: int, measured: Throughput | str, detail: Callable[[Throughput], str]
) -> list[Row]:
    """A worker's rate (`detail` of the run after its ticks/s) and its processor's alone on the same
    messages; one failed row if the run failed."""
    if isinstance(measured, str):
        return [(label, "failed", measured)]
    messages_per_tick = len(measured.messages) / measured.ticks
    alone = processor_rate(measured.messages, measured.ticks)
    return [
        (label, f"{measured.ticks / measured.busy_s:,.0f}", f"ticks/s {detail(measured)}"),
        (
            f"  its MessageProcessor.process alone, batches of {batch_ticks:,}",
            f"{alone:,.0f}",
            f"ticks/s ({messages_per_tick * alone:,.0f} messages/s), in process",
        ),
    ]


async def _throughput(bootstrap: str, root: Path, n: int) -> list[Row]:
    measured = await measure_throughput(bootstrap, root, n)
    if isinstance(measured, str):
        return [("feature engine worker throughput", "failed", measured)]
    worker = n / measured.busy_s
    alone = processor_rate(measured.messages, n)
    market = await measure_throughput(
        bootstrap, root, MARKET_TICKS, batch_ticks=MARKET_BATCH_TICKS, exchanges=MARKET_SYMBOLS
    )
    replay = await measure_throughput(bootstrap, root, REPLAY_TICKS, batch_ticks=REPLAY_BATCH_TICKS)
    return [
        (
            f"raw publish, batches of {BATCH_TICKS} (aiokafka, acks=all, zstd)",
            f"{n / measured.publish_s:,.0f}",
            "ticks/s, one producer",
        ),
        (
            f"feature engine worker, batches of {BATCH_TICKS}",
            f"{worker:,.0f}",
            f"ticks/s, one worker (before: 37,000-55,000); {n:,} ticks, first output to last HF row",
        ),
        (
            "  the same, from worker start",
            f"{n / measured.from_start_s:,.0f}",
            "ticks/s (includes start-up, group join and table recovery)",
        ),
        (
            "  the same per CPU second of the worker",
            f"{n / measured.cpu_s:,.0f}",
            f"ticks per CPU second, start-up included ({measured.cpu_s:.1f} s of CPU; the broker "
            "shares the machine's cores)",
        ),
        (
            "  its MessageProcessor.process alone, in process, the same messages",
            f"{alone:,.0f}",
            f"ticks/s; its time alone / the worker's CPU (start-up included) = {n / alone / measured.cpu_s:.0%}",
        ),
        *_worker_rows(
            f"feature engine worker, batches of {MARKET_BATCH_TICKS} (a live market's messages)",
            MARKET_BATCH_TICKS,
            market,
            lambda run: (
                f"({len(run.messages) / run.busy_s:,.0f} messages/s); {MARKET_TICKS:,} ticks of "
                f"{sum(map(len, MARKET_SYMBOLS.values()))} symbols, first output to last HF row (~1.6 ticks a "
                "message at 12 ticks/s a symbol and kafka.batch_linger_ms 50: docs/capacity.md)"
            ),
        ),
        *_worker_rows(
            f"feature engine worker, batches of {REPLAY_BATCH_TICKS:,} (a replay's messages)",
            REPLAY_BATCH_TICKS,
            replay,
            lambda run: (
                f"(target >= 150,000); {REPLAY_TICKS:,} ticks, first output to last HF row; "
                f"{REPLAY_TICKS / run.cpu_s:,.0f} per CPU second, start-up included (`fluxforge replay` with "
                "kafka.batch_max_ticks 1000: docs/capacity.md)"
            ),
        ),
    ]


def _shift(line: bytes, offset_ms: int) -> bytes:
    envelope = orjson.loads(line)
    if envelope.get("ts") is not None:
        envelope["ts"] += offset_ms
    envelope["recv_ts"] += offset_ms
    return orjson.dumps(envelope)


async def _pace(kafka: KafkaConfig, topic: str, lines: list[bytes]) -> None:
    """Publish `lines` like the collector: at wall time recv_ts, per-symbol batches of 100 / 50 ms."""
    client = producer(kafka)
    await client.start()
    pending: dict[bytes, list[bytes]] = {}
    opened: dict[bytes, float] = {}
    futures = []

    async def flush(key: bytes) -> None:
        batch = pending.pop(key)
        opened.pop(key)
        futures.append(await client.send(topic, b"[" + b",".join(batch) + b"]", key=key))

    try:
        for line in lines:
            recv_ms = orjson.loads(line)["recv_ts"]
            while (now := time.time() * 1000) < recv_ms:
                for key in [k for k, t in opened.items() if now - t >= LINGER_MS]:
                    await flush(key)
                await asyncio.sleep(min(0.005, (recv_ms - now) / 1000))
            key = key_of(line)
            pending.setdefault(key, []).append(line)
            opened.setdefault(key, recv_ms)
            if len(pending[key]) >= BATCH_TICKS:
                await flush(key)
        for key in list(pending):
            await flush(key)
        await asyncio.gather(*futures)
    finally:
        await client.stop()


@dataclass(frozen=True)
class Latencies:
    """Per HF row, ms from the collector's receive time to the row's arrival, sorted."""

    closing: list[float]  # from the tick that closed the row's interval
    released: list[float]  # from the tick that let the row out (its ts plus the allowed lateness)

    def pct(self, q: float, released: bool = False) -> float:
        values = self.released if released else self.closing
        return values[min(len(values) - 1, int(q * len(values)))]


async def measure_latency(bootstrap: str, root: Path, lateness_ms: int) -> Latencies | str:
    """The simulated market replayed live through one worker whose allowed lateness is
    `lateness_ms`; the latencies, or why the run failed."""
    n = int(LATENCY_SECONDS * LATENCY_TICKS_PER_S)
    raw = simulated_ticks(
        n, seed=5, exchanges=MARKET, mean_events_per_second_per_symbol=LATENCY_TICKS_PER_S / SYMBOLS
    )
    run = _Run(bootstrap, root)
    try:
        topics = await run.topics()
        async with OutputReader(run.kafka, topics.outputs) as reader:
            worker = run.start_worker(lateness_ms)
            # Ready when the group is joined and the table recovered: its first log line after that.
            deadline = time.monotonic() + 60
            while "Worker ready" not in worker.log_text() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            offset_ms = int(time.time() * 1000) + 500 - orjson.loads(raw[0])["recv_ts"]
            lines = [_shift(line, offset_ms) for line in raw]
            pacing = asyncio.create_task(_pace(run.kafka, topics.raw, lines))
            while not pacing.done():
                await reader.poll(50)
            await pacing
            expected, _ = expected_rows(lines, StateConfig(allowed_lateness_ms=lateness_ms))
            want_hf = count_rows(expected)["hf"]
            got = await reader.read_until(lambda g: g.count("hf") >= want_hf, timeout_s=30)
        # The tick that closed each HF interval: the symbol's first tick with event time >= row ts.
        closers: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
        for line in lines:
            envelope = orjson.loads(line)
            times, recvs = closers[f"{envelope['exchange']}:{envelope['symbol']}"]
            event_ms = envelope["ts"] if envelope.get("ts") is not None else envelope["recv_ts"]
            times.append(event_ms)
            recvs.append(envelope["recv_ts"])

        def latencies_after(delay_ms: int) -> list[float]:
            """Per HF row, arrival minus the recv_ts of the symbol's first tick at or after ts + delay_ms."""
            out = []
            for row_ts, key, arrived in got.hf_arrivals:
                times, recvs = closers[key]
                i = bisect.bisect_left(times, row_ts + delay_ms)
                if i < len(times):
                    out.append(arrived * 1000 - recvs[i])
            return sorted(out)

        measured = Latencies(latencies_after(0), latencies_after(lateness_ms))
        if not measured.closing or not measured.released:
            return "no HF row arrived"
        return measured
    finally:
        await run.close()


async def _latency(bootstrap: str, root: Path) -> list[Row]:
    lateness_ms = StateConfig().allowed_lateness_ms
    default = await measure_latency(bootstrap, root, lateness_ms)
    if isinstance(default, str):
        return [("end-to-end latency", "failed", default)]
    unit = (
        f"ms, {len(default.closing):,} HF rows at {LATENCY_TICKS_PER_S:,} ticks/s live "
        f"(collector recv_ts -> row read, batches {BATCH_TICKS} / {LINGER_MS} ms)"
    )
    rows = [
        ("end-to-end latency p50", f"{default.pct(0.50):,.0f}", unit),
        ("end-to-end latency p99", f"{default.pct(0.99):,.0f}", "ms (target < 250)"),
        ("end-to-end latency max", f"{default.closing[-1]:,.0f}", "ms"),
        (
            f"  the same after the allowed lateness ({lateness_ms} ms), p50 / p99",
            f"{default.pct(0.50, released=True):,.0f} / {default.pct(0.99, released=True):,.0f}",
            "ms: the path's own latency (from the tick that lets the row out)",
        ),
    ]
    # A deployment that takes its ticks in arrival order (no cross-channel skew to wait for).
    prompt = await measure_latency(bootstrap, root, 0)
    rows.append(
        (
            "  the same with features.allowed_lateness_ms: 0, p50 / p99",
            "failed" if isinstance(prompt, str) else f"{prompt.pct(0.50):,.0f} / {prompt.pct(0.99):,.0f}",
            prompt if isinstance(prompt, str) else "ms (stamped ticks applied on arrival; target < 250)",
        )
    )
    return rows


async def _run(n: int, bootstrap: str) -> list[Row]:
    if not await _reachable(bootstrap):
        return [
            (
                "feature engine over Kafka",
                "skipped",
                f"no broker at {bootstrap} (make kafka-up, or set FLUXFORGE_KAFKA_BOOTSTRAP)",
            )
        ]
    root = Path(tempfile.mkdtemp(prefix="ffbench-fe-"))
    try:
        return await _throughput(bootstrap, root, n) + await _latency(bootstrap, root)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(root)


def run(n: int = 200_000, bootstrap: str | None = None) -> list[Row]:
    """(measure, value, unit) rows for the bench table."""
    address = bootstrap or os.environ.get("FLUXFORGE_KAFKA_BOOTSTRAP") or "127.0.0.1:9092"
    return asyncio.run(_run(n, address))


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:<60} {value:>10}  {unit}")
