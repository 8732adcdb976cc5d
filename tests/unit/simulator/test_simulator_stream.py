"""The envelope stream: valid, deterministic, ordered, with the configured mix and quiet gaps."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from fluxforge_common.messages import BookTick, DecodedTick, Tick, TickerTick, TradeTick, decode_tick
from fluxforge_common.simulator import MarketSimulator, SimulatorConfig, symbol_spec

LONG_RUN = 200_000


def take(config: SimulatorConfig, n: int) -> list[bytes]:
    return list(itertools.islice(MarketSimulator(config).ticks(), n))


def decode_all(raws: list[bytes]) -> list[Tick]:
    ticks = []
    for raw in raws:
        decoded = decode_tick(raw)
        assert isinstance(decoded, DecodedTick), (decoded, raw)
        ticks.append(decoded.tick)
    return ticks


@pytest.fixture(scope="module")
def long_run() -> tuple[list[bytes], list[Tick]]:
    raws = take(SimulatorConfig(), LONG_RUN)
    return raws, decode_all(raws)


def by_symbol(ticks: list[Tick]) -> dict[tuple[str, str], list[Tick]]:
    groups: dict[tuple[str, str], list[Tick]] = defaultdict(list)
    for tick in ticks:
        groups[tick.exchange, tick.symbol].append(tick)
    return groups


def test_same_seed_same_bytes_and_other_seed_differs() -> None:
    config = SimulatorConfig(seed=7)
    first = take(config, 20_000)
    assert take(SimulatorConfig(seed=7), 20_000) == first
    sim = MarketSimulator(config)
    assert list(itertools.islice(sim.ticks(), 1_000)) == list(itertools.islice(sim.ticks(), 1_000))
    other = take(SimulatorConfig(seed=8), 20_000)
    assert other != first
    assert len(set(first) & set(other)) < 100


def test_a_symbol_is_the_same_market_whatever_runs_beside_it() -> None:
    alone = take(SimulatorConfig(exchanges={"kraken": ["BTC/USD"]}), 3_000)
    full = (r for r in MarketSimulator(SimulatorConfig()).ticks() if b'"symbol":"BTC/USD"' in r)
    assert list(itertools.islice(full, 3_000)) == alone


def test_long_run_is_valid_and_sane(long_run: tuple[list[bytes], list[Tick]]) -> None:
    _, ticks = long_run  # the fixture already decoded (and so validated) every envelope
    assert {(t.exchange, t.symbol) for t in ticks} == {
        ("binanceus", "BTC/USDT"),
        ("binanceus", "ETH/USDT"),
        ("binanceus", "SOL/USDT"),
        ("kraken", "BTC/USD"),
        ("kraken", "ETH/USD"),
    }
    for tick in ticks:
        if isinstance(tick, BookTick):
            assert len(tick.bids) == len(tick.asks) == 10
            assert tick.bids[0][0] < tick.asks[0][0]


def test_recv_ts_order_and_latency(long_run: tuple[list[bytes], list[Tick]]) -> None:
    _, ticks = long_run
    recv = [t.recv_ts for t in ticks]
    assert recv == sorted(recv)
    latencies = [t.recv_ts - t.ts for t in ticks if t.ts is not None]
    assert min(latencies) >= 2
    assert max(latencies) <= 80
    assert ticks[0].recv_ts >= SimulatorConfig().start_ms


def test_per_symbol_time_seq_and_ids_monotone(long_run: tuple[list[bytes], list[Tick]]) -> None:
    _, ticks = long_run
    for key, group in by_symbol(ticks).items():
        times = [t.ts for t in group if t.ts is not None]
        assert times == sorted(times), key
        seqs = [t.seq or 0 for t in group if isinstance(t, BookTick)]
        assert all(b == a + 1 for a, b in itertools.pairwise(seqs)), key
        ids = [int(t.id or "") for t in group if isinstance(t, TradeTick)]
        assert all(b > a for a, b in itertools.pairwise(ids)), key


def test_channel_shares_and_rate_near_config(long_run: tuple[list[bytes], list[Tick]]) -> None:
    _, ticks = long_run
    config = SimulatorConfig()
    counts = Counter(type(t) for t in ticks)
    assert counts[TradeTick] / len(ticks) == pytest.approx(config.trade_share, abs=0.01)
    assert counts[TickerTick] / len(ticks) == pytest.approx(config.ticker_share, abs=0.01)
    seconds = (ticks[-1].recv_ts - ticks[0].recv_ts) / 1000
    rate = len(ticks) / seconds / 5
    assert rate == pytest.approx(config.mean_events_per_second_per_symbol, rel=0.1)


def test_other_shares_and_rate_are_followed() -> None:
    config = SimulatorConfig(
        exchanges={"binanceus": ["ETH/USDT"]},
        trade_share=0.3,
        ticker_share=0.1,
        mean_events_per_second_per_symbol=200.0,
        levels=3,
    )
    ticks = decode_all(take(config, 60_000))
    counts = Counter(type(t) for t in ticks)
    assert counts[TradeTick] / len(ticks) == pytest.approx(0.3, abs=0.02)
    assert counts[TickerTick] / len(ticks) == pytest.approx(0.1, abs=0.02)
    assert all(len(t.bids) == 3 for t in ticks if isinstance(t, BookTick))
    seconds = (ticks[-1].recv_ts - ticks[0].recv_ts) / 1000
    assert len(ticks) / seconds == pytest.approx(200.0, rel=0.2)


def test_quiet_gaps_leave_empty_seconds(long_run: tuple[list[bytes], list[Tick]]) -> None:
    _, ticks = long_run
    for key, group in by_symbol(ticks).items():
        times = [t.ts for t in group if t.ts is not None]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert sum(g >= 3_000 for g in gaps) >= 3, key
        seconds = {t // 1000 for t in times}
        empty = (times[-1] // 1000 - times[0] // 1000 + 1) - len(seconds)
        assert empty >= 10, key


def test_some_kraken_tickers_lack_ts(long_run: tuple[list[bytes], list[Tick]]) -> None:
    _, ticks = long_run
    tickers = [t for t in ticks if isinstance(t, TickerTick)]
    kraken = [t for t in tickers if t.exchange == "kraken"]
    share = sum(t.ts is None for t in kraken) / len(kraken)
    assert 0.005 < share < 0.05
    assert all(t.ts is not None for t in tickers if t.exchange != "kraken")
    assert all(t.bid is not None and t.ask is not None and t.bid < t.ask for t in tickers)


def test_trades_hit_the_published_touch(long_run: tuple[list[bytes], list[Tick]]) -> None:
    _, ticks = long_run
    for group in by_symbol(ticks).values():
        book: BookTick | None = None
        walk: list[TradeTick] = []
        for tick in group:
            if isinstance(tick, TradeTick):
                walk.append(tick)
            elif isinstance(tick, BookTick):
                if walk and book is not None:
                    # A market order's fills start at the touch and walk away from it.
                    levels = book.asks if walk[0].side == "buy" else book.bids
                    assert walk[0].price == levels[0][0]
                    prices = [t.price for t in walk]
                    assert prices == sorted(prices, reverse=walk[0].side == "sell")
                    assert len({t.side for t in walk}) == 1
                book, walk = tick, []


def test_numbers_are_exact_on_the_grid(long_run: tuple[list[bytes], list[Tick]]) -> None:
    # JSON carries each float's shortest repr, so on-grid reprs mean no 100000.50000000001.
    _, ticks = long_run
    for tick in ticks[:20_000]:
        spec = symbol_spec(tick.exchange, tick.symbol)
        tick_size, lot = Decimal(spec.tick), Decimal(spec.lot)
        if isinstance(tick, BookTick):
            pairs = [*tick.bids, *tick.asks]
        elif isinstance(tick, TradeTick):
            pairs = [(tick.price, tick.amount)]
        else:
            continue
        for price, size in pairs:
            assert Decimal(repr(price)) % tick_size == 0, (tick, price)
            assert Decimal(repr(size)) % lot == 0, (tick, size)
