"""Prometheus metrics of a collector, read from its counters when scraped.

Nothing is updated on the hot path: a scrape reads `CollectorStats` and the
spool, so the metrics cost nothing between scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as MetricSource

from fluxforge_collector.collector import Collector
from fluxforge_collector.exchange import ExchangeSource, ExchangeStats


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
        yield counter(
            "watermarks", "Watermark records batched (quiet symbols, ends of input).", stats.watermarks
        )
        clock = self.collector.watermarks
        if clock is not None:
            lag = GaugeMetricFamily(
                "fluxforge_collector_watermark_lag_seconds",
                "Wall clock minus the symbol's watermark (its latest event time minus the allowed "
                "lateness, or the last watermark published, whichever is later).",
                labels=["source", "exchange", "symbol"],
            )
            for (exchange, symbol), ms in sorted(clock.lag_ms(int(time.time() * 1000)).items()):
                lag.add_metric([stats.source, exchange, symbol], ms / 1000)
            yield lag
        source = self.collector.source
        if isinstance(source, ExchangeSource):
            yield from exchange_metrics(source.stats, stats.source)


def exchange_metrics(stats: ExchangeStats, source: str) -> Iterator[Metric]:
    """`fluxforge_collector_exchange_*`: what a live exchange did and what the collector did about it."""
    totals = {
        "reconnects": ("Watch errors that made a watcher reconnect.", stats.reconnects),
        "stalls": ("Connections silent for stall_timeout_s, failed on purpose.", stats.stalls),
        "bad_frames": ("Frames ccxt could not decode or handle, skipped.", stats.bad_frames),
        "rate_limited": ("Requests answered 429/418 (rate limits).", stats.rate_limited),
        "books_conflated": (
            "Book updates left out while the source's queue was full.",
            stats.books_conflated,
        ),
        "trade_id_gaps": ("Trade ids skipped between two received trades.", stats.trade_id_gaps),
        "splits": ("Multi-symbol watches split into one watcher per symbol.", stats.splits),
    }
    for name, (doc, amount) in totals.items():
        family = CounterMetricFamily(f"fluxforge_collector_exchange_{name}", doc, labels=["source"])
        family.add_metric([source], amount)
        yield family
    per_symbol = {
        "resyncs": (
            "Book resynchronisations from a new snapshot (symbols actually resynced).",
            stats.resyncs,
        ),
        "gaps": ("Sequence gaps and failed checksums.", stats.gaps),
        "trades_parsed": (
            "Trades ccxt parsed and handed over (ids seen before included).",
            stats.trades_parsed,
        ),
        "trades_published": ("Trade envelopes published (each id once).", stats.trades_published),
    }
    for name, (doc, counts) in per_symbol.items():
        family = CounterMetricFamily(f"fluxforge_collector_exchange_{name}", doc, labels=["source", "symbol"])
        for symbol, amount in sorted(counts.items()):
            family.add_metric([source, symbol], amount)
        yield family
    envelopes = CounterMetricFamily(
        "fluxforge_collector_exchange_envelopes",
        "Envelopes made from the exchange's data.",
        labels=["source", "type"],
    )
    for kind, amount in (("book", stats.books), ("trade", stats.trades), ("ticker", stats.tickers)):
        envelopes.add_metric([source, kind], amount)
    yield envelopes


def serve_metrics(collector: Collector, port: int, addr: str = "0.0.0.0") -> WSGIServer:
    """Serve the collector's metrics on http://addr:port/metrics (a daemon thread); returns the server."""
    registry = CollectorRegistry()
    registry.register(CollectorMetrics(collector))
    server, _thread = start_http_server(port, addr, registry=registry)
    return server
