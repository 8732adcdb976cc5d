"""The exchange counters a collector exposes to Prometheus, as the text format a scrape reads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from fluxforge_collector.exchange import ExchangeStats
from fluxforge_collector.metrics import exchange_metrics, source_label
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric


def scrape(stats: ExchangeStats) -> dict[str, float]:
    class Source:
        def collect(self) -> Iterator[Metric]:
            return exchange_metrics(stats, "exchange:binanceus")

    registry = CollectorRegistry()
    registry.register(Source())
    lines = generate_latest(registry).decode().splitlines()
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in lines if not line.startswith("#"))}


def test_exchange_counters_are_exposed_per_source_and_per_symbol() -> None:
    stats = ExchangeStats(books=7, trades=3, reconnects=2, books_conflated=5)
    stats.trades_unrecoverable = Counter({"ETH/USDT": 1})
    stats.trades_backfilled = Counter({"BTC/USDT": 40})
    stats.record_skew("BTC/USDT", 1_000_150, 1_000_000)
    stats.record_skew("BTC/USDT", 1_000_000, 1_000_020)
    stats.resyncs = Counter({"BTC/USDT": 4, "ETH/USDT": 1})
    stats.gaps = Counter({"BTC/USDT": 3})
    stats.trades_parsed = Counter({"BTC/USDT": 12})
    stats.trades_published = Counter({"BTC/USDT": 10})
    m = scrape(stats)
    assert m['fluxforge_collector_exchange_reconnects_total{source="exchange:binanceus"}'] == 2
    assert m['fluxforge_collector_exchange_books_conflated_total{source="exchange:binanceus"}'] == 5
    assert m['fluxforge_collector_exchange_trade_id_gaps_total{source="exchange:binanceus"}'] == 1
    assert (
        m['fluxforge_collector_exchange_book_resyncs_total{source="exchange:binanceus",symbol="BTC/USDT"}']
        == 4
    )
    assert (
        m['fluxforge_collector_exchange_book_resyncs_total{source="exchange:binanceus",symbol="ETH/USDT"}']
        == 1
    )
    assert (
        m['fluxforge_collector_exchange_book_gaps_total{source="exchange:binanceus",symbol="BTC/USDT"}'] == 3
    )
    assert (
        m['fluxforge_collector_exchange_trades_parsed_total{source="exchange:binanceus",symbol="BTC/USDT"}']
        == 12
    )
    assert (
        m[
            'fluxforge_collector_exchange_trades_published_total{source="exchange:binanceus",symbol="BTC/USDT"}'
        ]
        == 10
    )
    per_symbol = 'exchange_{}{{source="exchange:binanceus",symbol="{}"}}'
    assert m["fluxforge_collector_" + per_symbol.format("trades_backfilled_total", "BTC/USDT")] == 40
    assert m["fluxforge_collector_" + per_symbol.format("trades_unrecoverable_total", "ETH/USDT")] == 1
    assert m["fluxforge_collector_" + per_symbol.format("channel_skew_seconds", "BTC/USDT")] == -0.02
    assert m["fluxforge_collector_" + per_symbol.format("channel_skew_max_seconds", "BTC/USDT")] == 0.15
    assert m['fluxforge_collector_exchange_envelopes_total{channel="book",source="exchange:binanceus"}'] == 7
    assert (
        m['fluxforge_collector_exchange_envelopes_total{channel="ticker",source="exchange:binanceus"}'] == 0
    )


def test_the_source_label_is_bounded() -> None:
    assert source_label("exchange:binanceus") == "binanceus"
    assert source_label("file:/data/in.ndjson") == "file"
    assert source_label("simulator(seed=7)") == "simulator"
    assert source_label("archive:/data[2025-12-12]") == "archive"
    assert source_label("stdin") == "stdin"
