"""Prometheus metrics of a collector, read from its counters when scraped.

Nothing is updated on the hot path: a scrape reads `CollectorStats` and the
spool, so the metrics cost nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as MetricSource

from fluxforge_collector.collector import Collector


class CollectorMetrics(MetricSource):
    """`fluxforge_collector_*` metrics of one collector, labelled with its source."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        stats, spool = self.collector.stats, self.collector.spool
        labels = ["source"]
        value = [stats.source]

        def counter(name: str, doc: str, amount: float) -> CounterMetricFamily:
            family = CounterMetricFamily(f"fluxforge_collector_{name}", doc, labels=labels)
            family.add_metric(value, amount)
            return family

        def gauge(name: str, doc: str, amount: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(f"fluxforge_collector_{name}", doc, labels=labels)
            family.add_metric(value, amount)
            return family

        yield counter("ticks_in", "Ticks read from the source (accepted or dead-lettered).", stats.ticks_in)
        yield counter("ticks_published", "Ticks Kafka acknowledged.", stats.ticks_out)
        yield counter("batches_published", "Batch messages Kafka acknowledged.", stats.batches_out)
        yield counter("dead_lettered", "Input lines sent to dead-letter.", stats.dead_lettered)
        yield gauge(
            "spool_batches",
            "Batches in the on-disk spool waiting for Kafka.",
            0 if spool is None else spool.records,
        )
        yield gauge("spool_bytes", "Disk used by the spool.", 0 if spool is None else spool.size_bytes)
        yield gauge(
            "kafka_up", "1 while the collector's producer is connected to Kafka.", float(stats.kafka_up)
        )


def serve_metrics(collector: Collector, port: int, addr: str = "0.0.0.0") -> WSGIServer:
    """Serve the collector's metrics on http://addr:port/metrics (a daemon thread); returns the server."""
    registry = CollectorRegistry()
    registry.register(CollectorMetrics(collector))
    server, _thread = start_http_server(port, addr, registry=registry)
    return server
