"""What serving metrics costs the engine and the sink: their hot paths with metrics off and on.

With `engine.metrics_port` / `sink.metrics_port` unset a worker does no metrics work at all;
served, the engine observes each raw message's output lag and position and each batch's
duration, and the sink each chunk's write duration (counters are read from the stats when
scraped). Measured in one process, off and on alternately (best of three each):

- engine: `MessageProcessor.process` of the raw topic's per-symbol batches of 100 ticks, as
  the worker calls it, plus `WorkerStats.add`, plus (on) `EngineMetrics.processed` and a
  batch-duration observation every 64 messages (the worker's batch);
- sink: HF rows through `SinkCore` (decode, chunk, Parquet, fsync), plus (on) the
  flush-duration observation per chunk the runner makes, with a scrape of the families
  every second as Prometheus would.

The overhead is the time the on-runs spent in that metrics work (timed around each call, and
each scrape in its thread) over the time of the rest of the same runs. The off/on rates of
separate runs differ by 10-20 % on a shared machine either way, far more than the work
they would measure.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.kafka import TopicNames
from fluxforge_common.storage.local import LocalStorage
from fluxforge_feature_engine.metrics import EngineMetrics
from fluxforge_feature_engine.processor import MessageProcessor
from fluxforge_feature_engine.worker import WorkerStats
from fluxforge_parquet_sink.chunks import Record
from fluxforge_parquet_sink.core import SinkCore
from fluxforge_parquet_sink.metrics import SinkMetrics
from fluxforge_parquet_sink.policy import FlushPolicy
from prometheus_client import CollectorRegistry, generate_latest

from bench import sink as sink_bench
from bench.table import Row
from tests.support.feature_engine import per_symbol_batches, simulated_ticks

ROUNDS = 3
BATCH_EVENTS = 64


class MetricsWork:
    """What a run with metrics on spends on them: the hot path's calls (wall clock, timed around each)
    and the scrapes, every second in a thread of their own (that thread's CPU time: waiting for the
    GIL is not work, and a scrape while Parquet or fsync release the GIL does not slow the hot path,
    so this overstates the cost rather than hides it)."""

    def __init__(self, collect: Callable[[], object]) -> None:
        self.calls_s = 0.0
        self.scrapes_s = 0.0

        class Source:
            def collect(self) -> object:
                return collect()

        self._registry = CollectorRegistry()
        self._registry.register(Source())  # type: ignore[arg-type]
        self._done = threading.Event()
        self._scraper = threading.Thread(target=self._scrape, daemon=True)
        self._scraper.start()

    def timed(self, call: Callable[[], object]) -> None:
        started = time.perf_counter()
        call()
        self.calls_s += time.perf_counter() - started

    def _scrape(self) -> None:
        while not self._done.wait(1.0):
            started = time.thread_time()
            generate_latest(self._registry)
            self.scrapes_s += time.thread_time() - started

    def stop(self) -> float:
        """Stop scraping; the seconds of metrics work in all."""
        self._done.set()
        self._scraper.join()
        return self.calls_s + self.scrapes_s


@dataclass(frozen=True)
class Measured:
    """One run: its rate, and its metrics work over the rest of its time (0 with metrics off)."""

    rate: float
    overhead: float


def _measured(units: int, elapsed: float, work: MetricsWork | None) -> Measured:
    if work is None:
        return Measured(units / elapsed, 0.0)
    spent = work.stop()
    return Measured(units / elapsed, spent / (elapsed - spent))


def engine_rate(messages: list[tuple[bytes, bytes]], ticks: int, *, metrics: bool) -> Measured:
    settings = FluxForgeSettings()
    processor = MessageProcessor(settings.features, TopicNames.from_config(settings.kafka))
    stats = WorkerStats()
    served: tuple[EngineMetrics, MetricsWork] | None = None
    if metrics:
        engine_metrics = EngineMetrics()
        served = engine_metrics, MetricsWork(lambda: engine_metrics.collect(stats))
    states: dict[bytes, bytes] = {}
    start = time.perf_counter()
    batch_start = start
    for offset, (key, value) in enumerate(messages):
        result = processor.process(key, value, 0, offset, states.get(key))
        if result.table_value is not None:
            states[key] = result.table_value
        stats.add(0, result)
        if served is not None:
            observed, work = served
            work.timed(lambda: observed.processed(0, offset, result))  # noqa: B023 (called at once)
            if offset % BATCH_EVENTS == BATCH_EVENTS - 1:
                now = time.perf_counter()
                work.timed(lambda: observed.batch_seconds.observe(now - batch_start))  # noqa: B023
                batch_start = now
    elapsed = time.perf_counter() - start
    return _measured(ticks, elapsed, None if served is None else served[1])


def sink_rate(hf: list[tuple[str, bytes]], root: Path, *, metrics: bool) -> Measured:
    topic = "bench.features.hf"
    core = SinkCore(LocalStorage(root), FlushPolicy(), FluxForgeSettings().features, {topic: "hf"})
    core.assign(topic, 0, None)
    served: tuple[SinkMetrics, MetricsWork] | None = None
    if metrics:
        sink_metrics = SinkMetrics(core.stats, root)
        served = sink_metrics, MetricsWork(sink_metrics.collect)
    records = [Record(topic, 0, offset, 0, value) for offset, (_, value) in enumerate(hf)]

    def write(chunk: object) -> None:
        started = time.perf_counter()
        core.write(chunk)  # type: ignore[arg-type]
        if served is not None:
            observed, work = served
            took = time.perf_counter() - started
            work.timed(lambda: observed.flush_seconds.labels("hf").observe(took))

    start = time.perf_counter()
    for i in range(0, len(records), 2_000):
        for chunk in core.add(records[i : i + 2_000]):
            write(chunk)
    for chunk in core.close_all():
        write(chunk)
    elapsed = time.perf_counter() - start
    return _measured(len(hf), elapsed, None if served is None else served[1])


def _off_and_on(measure: Callable[[bool], Measured]) -> tuple[float, float, float]:
    """Runs off and on alternately: the best rate of each, and the median overhead of the on-runs."""
    off: list[Measured] = []
    on: list[Measured] = []
    for _ in range(ROUNDS):
        off.append(measure(False))
        on.append(measure(True))
    overheads = sorted(m.overhead for m in on)
    return max(m.rate for m in off), max(m.rate for m in on), overheads[len(overheads) // 2]


def run(n: int = 200_000) -> list[Row]:
    lines = simulated_ticks(n, seed=99)
    messages = per_symbol_batches(lines, 100)
    engine = _off_and_on(lambda on: engine_rate(messages, n, metrics=on))
    hf = sink_bench.hf_messages(max(n // 4, 1))
    tmp = Path(tempfile.mkdtemp(prefix="ffbench-metrics-"))
    runs = iter(range(2 * ROUNDS))
    try:
        sink = _off_and_on(lambda on: sink_rate(hf, tmp / f"run-{next(runs)}", metrics=on))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows: list[Row] = []
    for what, unit, (off, on, overhead) in (
        ("engine worker hot path (process + stats), batches of 100", "ticks/s, one core", engine),
        ("sink core, hf rows (decode + Parquet + fsync)", "rows/s, one core", sink),
    ):
        rows.append((f"{what}, metrics off", f"{off:,.0f}", unit))
        rows.append(("  the same, metrics served and scraped every 1 s", f"{on:,.0f}", unit))
        rows.append(
            (
                "  metrics overhead",
                f"{overhead * 100:.2f} %",
                "time in metrics work over the rest, same runs (target < 3 %)",
            )
        )
    return rows


if __name__ == "__main__":
    import sys

    from bench.table import print_table

    print_table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
