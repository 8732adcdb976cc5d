"""Prometheus metrics of a sink (`fluxforge_sink_*`, docs/metrics.md).

Counters are read from `SinkStats` when scraped, so they cost nothing between
scrapes; the flush-duration histogram is observed once per chunk written, and
the consumer lag is refreshed by the sink's loop about once a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from fluxforge_common.storage.space import free_bytes
from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from fluxforge_parquet_sink.stats import SinkStats

FLUSH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LAG_REFRESH_S = 1.0


class SinkMetrics:
    """What a sink's /metrics shows besides the process and health gauges."""

    def __init__(self, stats: SinkStats, root: Path) -> None:
        self.stats = stats
        self.root = root  # the local dataset root, whose disk's free space is shown
        self.flush_seconds = Histogram(
            "fluxforge_sink_flush_duration_seconds",
            "Time to write (and fsync) one chunk's files.",
            ["table"],
            registry=None,
            buckets=FLUSH_BUCKETS,
        )
        self.lag: dict[tuple[str, int], int] = {}
        self._lag_due = 0.0

    def refresh_lag(self, kafka: AIOKafkaConsumer, committed: dict[TopicPartition, int]) -> None:
        """Last stable offset minus committed position of each assigned partition (at most once a second)."""
        now = time.monotonic()
        if now < self._lag_due:
            return
        self._lag_due = now + LAG_REFRESH_S
        lag = {}
        for tp in kafka.assignment():
            end = kafka.last_stable_offset(tp)
            if end is not None:
                lag[(tp.topic, tp.partition)] = max(0, end - committed.get(tp, 0))
        self.lag = lag

    def collect(self) -> Iterator[Metric]:
        stats = self.stats

        per_table: list[tuple[str, str, dict[str, int] | dict[str, float], type[Any]]] = [
            ("messages", "Kafka messages consumed.", stats.messages, CounterMetricFamily),
            (
                "rows_written",
                "Rows (raw: ticks, deadletter: records) in durable files.",
                stats.units,
                CounterMetricFamily,
            ),
            ("files_written", "Files made durable.", stats.files, CounterMetricFamily),
            ("bytes_written", "Bytes of the files made durable.", stats.bytes, CounterMetricFamily),
            (
                "last_write_timestamp_seconds",
                "Unix time the table's last file became durable.",
                stats.last_write,
                GaugeMetricFamily,
            ),
        ]
        for name, doc, counts, kind in per_table:
            family = kind(f"fluxforge_sink_{name}", doc, labels=["table"])
            for table, amount in sorted(counts.items()):
                family.add_metric([table], amount)
            yield family
        yield from self.flush_seconds.collect()
        chunks = CounterMetricFamily(
            "fluxforge_sink_chunks_closed", "Chunks closed, by reason.", labels=["reason"]
        )
        for reason, amount in sorted(stats.chunks.items()):
            chunks.add_metric([reason], amount)
        yield chunks
        rejected = CounterMetricFamily(
            "fluxforge_sink_rejected",
            "Raw ticks not archived (raw_rejected) and bad messages dead-lettered (bad_message).",
            labels=["reason"],
        )
        rejected.add_metric(["raw_rejected"], stats.raw_rejected)
        rejected.add_metric(["bad_message"], stats.bad_messages)
        yield rejected
        for name, doc, amount in (
            ("commits", "Offset commits.", stats.commits),
            (
                "commit_failures",
                "Offset commits that failed (the new owner redoes the files).",
                stats.commit_failures,
            ),
            (
                "duplicates_dropped",
                "Re-sent engine outputs dropped by their ff-src header.",
                stats.duplicates,
            ),
            ("rebalances", "Partition revocations (rebalances) seen.", stats.rebalances),
            ("disk_pauses", "Times writing paused on a full disk.", stats.disk_pause.pauses),
        ):
            yield CounterMetricFamily(f"fluxforge_sink_{name}", doc, value=amount)
        yield GaugeMetricFamily(
            "fluxforge_sink_disk_paused",
            "1 while writing is paused on a full disk or below storage.min_free_mb.",
            value=float(stats.disk_pause.paused),
        )
        if self.root.exists():
            yield GaugeMetricFamily(
                "fluxforge_sink_disk_free_bytes",
                "Free bytes on the dataset root's filesystem.",
                value=free_bytes(self.root),
            )
        lag = GaugeMetricFamily(
            "fluxforge_sink_consumer_lag_messages",
            "Last stable offset minus committed position, per assigned partition.",
            labels=["topic", "partition"],
        )
        for (topic, partition), amount in sorted(self.lag.items()):
            lag.add_metric([topic, str(partition)], amount)
        yield lag
