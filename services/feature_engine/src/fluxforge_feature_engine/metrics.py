"""Prometheus metrics of a feature-engine worker (`fluxforge_engine_*`, docs/metrics.md).

Counters are read from `WorkerStats` when scraped. Only while the worker
serves its metrics (`engine.metrics_port`) does it observe, per raw message,
the end-to-end lag of what it emits and its read position (for the consumer
lag), and per flushed batch the batch's duration: with metrics off none of
that work is done.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from fluxforge_common.features import TABLES
from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from fluxforge_feature_engine.processor import MessageResult

if TYPE_CHECKING:
    from fluxforge_feature_engine.worker import WorkerStats

LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class EngineMetrics:
    """The histograms and positions a worker keeps while it serves metrics."""

    def __init__(self) -> None:
        self.event_lag = Histogram(
            "fluxforge_engine_event_lag_seconds",
            "Wall clock at emission minus the event time (ts) of the newest row of each emitted message "
            "(bars and ibars: ts is the bar's start).",
            ["table"],
            registry=None,
            buckets=LAG_BUCKETS,
        )
        self.batch_seconds = Histogram(
            "fluxforge_engine_batch_duration_seconds",
            "Time to make one batch of raw messages durable: outputs acknowledged, state written, acked.",
            registry=None,
            buckets=BATCH_BUCKETS,
        )
        self._lag_children = {table: self.event_lag.labels(table) for table in TABLES}
        self.positions: dict[int, int] = {}  # raw partition -> next offset to process
        self.lag: dict[int, int] = {}  # raw partition -> messages behind its high watermark
        self.assigned = 0
        self.raw_topic = ""

    def processed(self, partition: int, offset: int, result: MessageResult) -> None:
        """One raw message was processed: its outputs' lag and the partition's position."""
        self.positions[partition] = offset + 1
        if result.tables:
            now_ms = time.time() * 1000
            for table, _, newest_ms in result.tables:
                self._lag_children[table].observe(max(0.0, now_ms - newest_ms) / 1000)

    def refresh_lag(self, highwaters: dict[int, int]) -> None:
        """Consumer lag of the assigned partitions from their high watermarks."""
        self.positions = {p: o for p, o in self.positions.items() if p in highwaters}
        self.lag = {
            partition: max(0, end - self.positions[partition])
            for partition, end in highwaters.items()
            if partition in self.positions
        }
        self.assigned = len(highwaters)

    def collect(self, stats: WorkerStats) -> Iterator[Metric]:
        for name, doc, amount in (
            ("messages", "Raw batch messages consumed.", stats.messages),
            (
                "messages_skipped",
                "Raw messages already applied (re-read after a restart), skipped.",
                stats.skipped,
            ),
            ("ticks_applied", "Ticks applied to symbol state.", stats.applied),
            ("ticks_rejected", "Ticks sent to dead-letter.", stats.rejected),
            ("watermarks", "Watermark records applied (quiet symbols, ends of input).", stats.watermarks),
            ("watermark_rows", "HF rows the watermarks closed.", stats.watermark_rows),
        ):
            yield CounterMetricFamily(f"fluxforge_engine_{name}", doc, value=amount)
        rows = CounterMetricFamily("fluxforge_engine_rows_emitted", "Feature rows emitted.", labels=["table"])
        for table, amount in sorted(stats.tables.items()):
            rows.add_metric([table], amount)
        yield rows
        yield from self.event_lag.collect()
        yield from self.batch_seconds.collect()
        lag = GaugeMetricFamily(
            "fluxforge_engine_consumer_lag_messages",
            "Raw-topic high watermark minus this worker's position, per assigned partition.",
            labels=["topic", "partition"],
        )
        for partition, amount in sorted(self.lag.items()):
            lag.add_metric([self.raw_topic, str(partition)], amount)
        yield lag
        yield GaugeMetricFamily(
            "fluxforge_engine_assigned_partitions",
            "Raw-topic partitions assigned to this worker.",
            value=self.assigned,
        )
