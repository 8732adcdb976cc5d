"""SymbolMarket on its own: its level changes replay to its book, which stays sound."""

from __future__ import annotations

import itertools

import pytest
from fluxforge_common.messages import BookTick, DecodedTick, decode_tick
from fluxforge_common.simulator import (
    FairValue,
    LevelChange,
    MarketSimulator,
    SimulatorConfig,
    SymbolMarket,
    build_markets,
    symbol_spec,
)
from fluxforge_common.simulator.specs import asset_spec, decimal_units
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError


def market(exchange: str = "binanceus", symbol: str = "BTC/USDT", **config: object) -> SymbolMarket:
    cfg = SimulatorConfig(**config)
    fair = FairValue(cfg.seed, symbol.split("/")[0], asset_spec(symbol.split("/")[0]), cfg.start_ms)
    return SymbolMarket(cfg, exchange, symbol, fair)


def full_book(m: SymbolMarket) -> tuple[dict[float, float], dict[float, float]]:
    bids, asks = m.book(10_000)
    return dict(bids), dict(asks)


def apply(book: tuple[dict[float, float], dict[float, float]], changes: list[LevelChange]) -> None:
    for change in changes:
        side = book[0] if change.side == "bid" else book[1]
        if change.size:
            side[change.price] = change.size
        else:
            del side[change.price]


@pytest.mark.parametrize(("exchange", "symbol"), [("binanceus", "BTC/USDT"), ("kraken", "ETH/USD")])
def test_level_changes_replay_to_the_book(exchange: str, symbol: str) -> None:
    m = market(exchange, symbol)
    replayed = full_book(m)
    depth = SimulatorConfig().depth
    update_id = m.update_id
    ts = m.ts
    for _ in range(20_000):
        before = m.book(20)
        kind = m.step()
        assert m.ts >= ts
        ts = m.ts
        changes = m.level_changes()
        apply(replayed, changes)
        bids, asks = m.book(10_000)
        assert len(bids) >= depth and len(asks) >= depth
        assert all(a[0] > b[0] for a, b in itertools.pairwise(bids))
        assert all(a[0] < b[0] for a, b in itertools.pairwise(asks))
        assert bids[0][0] < asks[0][0]
        assert all(size > 0 for _, size in bids + asks)
        if kind == "ticker":
            assert not changes
            assert m.update_id == update_id
            continue
        assert changes
        update_id += 1
        assert m.update_id == update_id
        fills = m.fills()
        assert bool(fills) == (kind == "trade")
        if fills:
            # Fills take the touch first and whole levels until the last one.
            taken = before[1] if fills[0].side == "buy" else before[0]
            assert [f.price for f in fills] == [p for p, _ in taken[: len(fills)]]
            assert all(f.amount == s for f, (_, s) in zip(fills[:-1], taken, strict=False))
            assert 0 < fills[-1].amount <= taken[len(fills) - 1][1]
            assert [f.id for f in fills] == list(range(fills[0].id, fills[0].id + len(fills)))
            assert m.last_price == fills[-1].price
    assert replayed == full_book(m)


def test_markets_of_one_asset_track_one_fair_price() -> None:
    markets = {(m.exchange, m.symbol): m for m in build_markets(SimulatorConfig())}
    usdt, usd = markets["binanceus", "BTC/USDT"], markets["kraken", "BTC/USD"]
    for _ in range(30_000):
        m = min(markets.values(), key=lambda m: m.next_ts)
        m.step()
    mid_usdt = (usdt.touch()[0][0] + usdt.touch()[1][0]) / 2
    mid_usd = (usd.touch()[0][0] + usd.touch()[1][0]) / 2
    assert mid_usd / mid_usdt - 1 == pytest.approx(1.5e-4, abs=2e-4)


def test_grid_units_are_exact() -> None:
    assert decimal_units("0.01") == (1, 100)
    assert decimal_units("0.05") == (5, 100)
    assert decimal_units("1") == (1, 1)
    assert decimal_units("0.00000001") == (1, 100_000_000)
    assert symbol_spec("kraken", "BTC/USD").tick == "0.1"
    assert symbol_spec("okx", "DOGE/USDT:USDT").tick == "0.0001"


@pytest.mark.parametrize(
    "bad",
    [
        {"unknown": 1},
        {"exchanges": {}},
        {"exchanges": {"kraken": []}},
        {"exchanges": {"kraken": ["BTC/USD", "BTC/USD"]}},
        {"exchanges": {"kraken": ["BTCUSD"]}},
        {"trade_share": 0.4, "ticker_share": 0.3},
        {"levels": 0},
        {"start_ms": 1_765_497_600},  # seconds, not ms
        {"mean_events_per_second_per_symbol": 0},
    ],
)
def test_config_rejects(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SimulatorConfig(**bad)


@st.composite
def configs(draw: st.DrawFn) -> SimulatorConfig:
    trade_share = draw(st.floats(0.0, 0.45))
    return SimulatorConfig(
        seed=draw(st.integers(-(2**63), 2**63)),
        exchanges=draw(
            st.sampled_from(
                [
                    {"binanceus": ["SOL/USDT"]},
                    {"kraken": ["BTC/USD", "SOL/USD"], "okx": ["DOGE/USDT:USDT"]},
                    {"binanceus": ["BTC/USDT", "ETH/USDT"], "kraken": ["BTC/USD"]},
                ]
            )
        ),
        levels=draw(st.integers(1, 60)),
        trade_share=trade_share,
        ticker_share=draw(st.floats(0.0, 0.95 * (1.0 - 2 * trade_share))),
        mean_events_per_second_per_symbol=draw(st.floats(0.5, 5_000.0)),
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_any_config_gives_valid_ordered_envelopes(config: SimulatorConfig) -> None:
    recv = 0
    seqs: dict[tuple[str, str], int] = {}
    for raw in itertools.islice(MarketSimulator(config).ticks(), 1_500):
        decoded = decode_tick(raw)
        assert isinstance(decoded, DecodedTick), (decoded, raw)
        tick = decoded.tick
        assert tick.recv_ts >= recv
        recv = tick.recv_ts
        if isinstance(tick, BookTick):
            assert tick.seq is not None
            key = (tick.exchange, tick.symbol)
            assert tick.seq == seqs.get(key, tick.seq - 1) + 1
            seqs[key] = tick.seq
            assert len(tick.bids) == len(tick.asks) == config.levels
