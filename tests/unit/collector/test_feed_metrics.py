"""Per-symbol feed metrics of every source: ticks per channel and seconds since the symbol's last
tick; an exchange's subscribed symbols have their series (at zero) before anything happened to them."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter

import orjson
from fluxforge_collector.collector import Collector
from fluxforge_collector.exchange import ExchangeStats
from fluxforge_collector.feeds import Feeds
from fluxforge_collector.metrics import CollectorMetrics, exchange_metrics
from fluxforge_common.config import FluxForgeSettings, KafkaConfig
from fluxforge_common.pipeline.lines import simulator_lines
from fluxforge_common.simulator import SimulatorConfig
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from tests.support.collector import FakeProducer, ListSource


def test_every_symbol_of_a_source_has_its_ticks_per_channel_and_its_staleness(fake: FakeProducer) -> None:
    lines = list(itertools.islice(simulator_lines(SimulatorConfig(seed=5)), 2_000))
    expected = Counter((t["exchange"], t["symbol"], t["type"]) for t in map(orjson.loads, lines))
    collector = Collector(FluxForgeSettings(kafka=KafkaConfig(topic_prefix="unit")), ListSource(lines))
    asyncio.run(collector.run())
    time.sleep(0.2)

    registry = CollectorRegistry()
    registry.register(CollectorMetrics(collector))
    pairs = {(exchange, symbol) for exchange, symbol, _ in expected}
    assert len(pairs) == 5
    for exchange, symbol in pairs:
        labels = {"source": "list", "exchange": exchange, "symbol": symbol}
        for channel in ("book", "trade", "ticker"):
            ticks = registry.get_sample_value(
                "fluxforge_collector_feed_ticks_total", {**labels, "channel": channel}
            )
            assert ticks == expected[(exchange, symbol, channel)], (exchange, symbol, channel)
        stale = registry.get_sample_value("fluxforge_collector_feed_staleness_seconds", labels)
        assert stale is not None and 0.2 <= stale < 30, stale


def scrape(metrics: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in metrics for s in m.samples}


def test_subscribed_symbols_have_their_series_at_zero_and_go_stale_from_the_subscription() -> None:
    stats = ExchangeStats()
    stats.subscribed = {"BTC/USDT": time.monotonic() - 40, "ETH/USDT": time.monotonic() - 40}
    stats.gaps["BTC/USDT"] += 2
    exchange = scrape(list(exchange_metrics(stats, "binanceus")))
    for name in ("book_gaps", "book_resyncs", "trades_parsed", "trades_published"):
        key = f"fluxforge_collector_exchange_{name}_total"
        assert exchange[(key, (("source", "binanceus"), ("symbol", "ETH/USDT")))] == 0
    assert (
        exchange[
            (
                "fluxforge_collector_exchange_book_gaps_total",
                (("source", "binanceus"), ("symbol", "BTC/USDT")),
            )
        ]
        == 2
    )

    feeds = Feeds()
    feeds.get("binanceus", "BTC/USDT").ticks["book"] += 3
    shown = {
        (f.symbol, f.ticks["book"], round(time.monotonic() - f.last))
        for f in feeds.with_subscribed("binanceus", stats.subscribed)
    }
    assert shown == {("BTC/USDT", 3, 0), ("ETH/USDT", 0, 40)}
