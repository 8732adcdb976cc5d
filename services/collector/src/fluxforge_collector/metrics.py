"""Prometheus metrics of a collector (`fluxforge_collector_*`, docs/metrics.md), read when scraped.

Nothing is updated on the hot path: a scrape reads `CollectorStats`, the
exchange source's counters and the spool, so the metrics cost nothing
between scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.health import Heartbeat, KafkaProbe, ServiceHealth
from fluxforge_common.storage.space import free_bytes
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from fluxforge_collector.collector import Collector
from fluxforge_collector.exchange import ExchangeSource, ExchangeStats


def collector_health(collector: Collector, settings: FluxForgeSettings) -> ServiceHealth:
    """Alive while its event loop turns; ready while Kafka answers and the spool's disk takes batches."""
    return ServiceHealth(
        "collector",
        Heartbeat(settings.metrics.heartbeat_timeout_s),
        checks=[collector.stats.disk_pause.problem, lambda: _producer_problem(collector)],
        kafka=KafkaProbe(settings.kafka),
    )


def _producer_problem(collector: Collector) -> str | None:
    if collector.stats.kafka_up:
        return None
    return f"the producer gets no acknowledgements from Kafka ({collector.stats.spooled:,} batches spooled)"


def source_label(name: str) -> str:
    """The `source` label of a source's name: the exchange for a live one, else the kind (no paths).

    `exchange:binanceus` -> `binanceus`; `file:/data/x.ndjson` -> `file`; `simulator(seed=7)` -> `simulator`.
    """
    kind, _, rest = name.partition(":")
    return rest if kind == "exchange" and rest else kind.split("(")[0].split("[")[0]


class CollectorMetrics:
    """`fluxforge_collector_*` metrics of one collector, labelled with its source."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        stats, spool = self.collector.stats, self.collector.spool
        source = source_label(stats.source)

        def family(
            kind: type[CounterMetricFamily] | type[GaugeMetricFamily], name: str, doc: str, amount: float
        ) -> Metric:
            metric = kind(f"fluxforge_collector_{name}", doc, labels=["source"])
            metric.add_metric([source], amount)
            return metric

        yield family(
            CounterMetricFamily,
            "ticks_received",
            "Ticks read from the source (accepted or dead-lettered).",
            stats.ticks_in,
        )
        yield family(CounterMetricFamily, "ticks_published", "Ticks Kafka acknowledged.", stats.ticks_out)
        yield family(
            CounterMetricFamily, "batches_published", "Batch messages Kafka acknowledged.", stats.batches_out
        )
        rejected = CounterMetricFamily(
            "fluxforge_collector_ticks_rejected",
            "Input lines sent to dead-letter, by validation reason.",
            labels=["source", "reason"],
        )
        for reason, amount in sorted(stats.reasons.items()):
            rejected.add_metric([source, reason], amount)
        yield rejected
        yield family(
            GaugeMetricFamily,
            "spool_batches",
            "Batches in the on-disk spool waiting for Kafka.",
            0 if spool is None else spool.records,
        )
        yield family(
            GaugeMetricFamily,
            "producer_connected",
            "1 while the producer gets acknowledgements from Kafka (a silent broker counts as down).",
            float(stats.kafka_up),
        )
        yield family(
            GaugeMetricFamily,
            "spool_bytes",
            "Disk used by the spool.",
            0 if spool is None else spool.size_bytes,
        )
        pause = stats.disk_pause
        yield family(
            GaugeMetricFamily,
            "disk_paused",
            "1 while intake is paused because the spool's disk is full.",
            float(pause.paused),
        )
        yield family(CounterMetricFamily, "disk_pauses", "Times intake paused on a full disk.", pause.pauses)
        if spool is not None and spool.directory.exists():
            yield family(
                GaugeMetricFamily,
                "disk_free_bytes",
                "Free bytes on the spool's filesystem.",
                free_bytes(spool.directory),
            )
        yield family(
            CounterMetricFamily,
            "watermarks",
            "Watermark records batched (quiet symbols, ends of input).",
            stats.watermarks,
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
                lag.add_metric([source, exchange, symbol], ms / 1000)
            yield lag
        source_object = self.collector.source
        if isinstance(source_object, ExchangeSource):
            yield from exchange_metrics(source_object.stats, source)


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
        "trade_id_gaps": ("Trade ids skipped in what was published (all symbols).", stats.trade_id_gaps),
        "splits": ("Multi-symbol watches split into one watcher per symbol.", stats.splits),
    }
    for name, (doc, amount) in totals.items():
        family = CounterMetricFamily(f"fluxforge_collector_exchange_{name}", doc, labels=["source"])
        family.add_metric([source], amount)
        yield family
    per_symbol = {
        "book_resyncs": (
            "Book resynchronisations from a new snapshot (symbols actually resynced).",
            stats.resyncs,
        ),
        "book_gaps": ("Sequence gaps and failed checksums.", stats.gaps),
        "trades_parsed": (
            "Trades ccxt parsed and handed over (ids seen before included).",
            stats.trades_parsed,
        ),
        "trades_published": (
            "Trade envelopes published (each id once, backfilled ones included).",
            stats.trades_published,
        ),
        "trades_backfilled": (
            "Missed trades fetched over REST and published, marked backfilled.",
            stats.trades_backfilled,
        ),
        "trades_unrecoverable": (
            "Trade ids skipped in what was published: neither received nor fetched.",
            stats.trades_unrecoverable,
        ),
    }
    for name, (doc, counts) in per_symbol.items():
        family = CounterMetricFamily(f"fluxforge_collector_exchange_{name}", doc, labels=["source", "symbol"])
        for symbol, amount in sorted(counts.items()):
            family.add_metric([source, symbol], amount)
        yield family
    skews = {
        "channel_skew_seconds": (
            "The symbol's latest book event time minus its latest live trade's, as that trade arrived.",
            stats.channel_skew_ms,
        ),
        "channel_skew_max_seconds": ("Largest absolute channel skew seen.", stats.channel_skew_max_ms),
    }
    for name, (doc, values) in skews.items():
        gauge = GaugeMetricFamily(f"fluxforge_collector_exchange_{name}", doc, labels=["source", "symbol"])
        for symbol, ms in sorted(values.items()):
            gauge.add_metric([source, symbol], ms / 1000)
        yield gauge
    envelopes = CounterMetricFamily(
        "fluxforge_collector_exchange_envelopes",
        "Envelopes made from the exchange's data, by channel.",
        labels=["source", "channel"],
    )
    for channel, amount in (("book", stats.books), ("trade", stats.trades), ("ticker", stats.tickers)):
        envelopes.add_metric([source, channel], amount)
    yield envelopes
