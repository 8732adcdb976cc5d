"""Information-driven bars (docs/features.md "ibars/"): hand-computed bars of each kind, the
brute-force reference on random out-of-order streams, watermarks, state round-trips, the
configuration's refusals, and nothing changed while they are off."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import pytest
from fluxforge_common.config import FluxForgeSettings, StateConfig
from fluxforge_common.config.state import IbarsConfig, TickImbalanceConfig
from fluxforge_common.features import EngineOutput, FeatureEngine, SymbolState, output_tables
from fluxforge_common.features.ibars import TickImbalanceBar
from fluxforge_common.features.symbol_state import config_fingerprint
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.support.ticks import book, decoded, run_engine, trade
from tests.support.times import T0
from tests.unit.features.reference import Trade, Update, applied_order, reference_ibars
from tests.unit.features.test_reference_equivalence import deliveries, encode
from tests.unit.features.test_watermarks import Script, everything, run_script, with_watermarks

KEYS = ("ts", "end_ts", "kind", "threshold", "expected_ticks", "expected_imbalance")


def with_ibars(cfg: StateConfig | None = None, **ibars: Any) -> StateConfig:
    base = (cfg or StateConfig(allowed_lateness_ms=0)).model_dump()
    return StateConfig(**{**base, "ibars": ibars})


def bars_of(trades: list[tuple[int, float, float, str]], cfg: StateConfig) -> list[dict[str, Any]]:
    return run_engine([trade(t, p, a, s) for t, p, a, s in trades], cfg).ibars


def test_tick_bars_close_after_every_n_trades_and_the_open_one_is_not_written() -> None:
    trades = [
        (T0 + 10, 100.0, 1.0, "buy"),
        (T0 + 20, 101.0, 2.0, "sell"),
        (T0 + 20, 99.5, 0.5, "buy"),
        (T0 + 900, 100.5, 4.0, "sell"),
        (T0 + 1500, 102.0, 1.0, "sell"),
        (T0 + 1600, 101.0, 3.0, "buy"),
        (T0 + 1700, 100.0, 1.0, "buy"),  # opens the third bar: never closed, never written
    ]
    rows = bars_of(trades, with_ibars(tick=[3]))
    assert rows == [
        {
            "exchange": "ex", "symbol": "BTC/USDT", "ts": T0 + 10, "end_ts": T0 + 20, "kind": "tick",
            "threshold": 3.0, "expected_ticks": None, "expected_imbalance": None,
            "open": 100.0, "high": 101.0, "low": 99.5, "close": 99.5, "tick_count": 3,
            "volume": 3.5, "dollar_value": 100.0 + 202.0 + 49.75, "buy_volume": 1.5, "sell_volume": 2.0,
            "imbalance": 1, "vwap": (100.0 + 202.0 + 49.75) / 3.5,
        },
        {
            "exchange": "ex", "symbol": "BTC/USDT", "ts": T0 + 900, "end_ts": T0 + 1600, "kind": "tick",
            "threshold": 3.0, "expected_ticks": None, "expected_imbalance": None,
            "open": 100.5, "high": 102.0, "low": 100.5, "close": 101.0, "tick_count": 3,
            "volume": 8.0, "dollar_value": 402.0 + 102.0 + 303.0, "buy_volume": 3.0, "sell_volume": 5.0,
            "imbalance": -1, "vwap": (402.0 + 102.0 + 303.0) / 8.0,
        },
    ]  # fmt: skip


def test_volume_and_dollar_bars_take_the_trade_that_crosses_the_threshold_whole() -> None:
    trades = [
        (T0 + 1, 10.0, 0.5, "buy"),
        (T0 + 2, 12.0, 1.0, "sell"),
        (T0 + 3, 11.0, 0.75, "buy"),  # volume 2.25 >= 2: closes the first volume bar
        (T0 + 4, 10.0, 2.5, "sell"),  # 2.5 alone >= 2: a bar of one trade
        (T0 + 5, 9.0, 0.25, "buy"),
    ]
    rows = bars_of(trades, with_ibars(volume=[2.0], dollar=[25.0, 17.0]))
    summary = [(r["kind"], r["threshold"], r["ts"], r["end_ts"], r["tick_count"], r["volume"], r["dollar_value"])
               for r in rows]  # fmt: skip
    assert summary == [
        # dollar 5 + 12 = 17 closes the 17 bar at the second trade, 8.25 + 25 the next one at the fourth;
        # the fourth trade (10 * 2.5 = 25) closes a bar of every series. Series in config order.
        ("dollar", 17.0, T0 + 1, T0 + 2, 2, 1.5, 17.0),
        ("volume", 2.0, T0 + 1, T0 + 3, 3, 2.25, 25.25),
        ("dollar", 25.0, T0 + 1, T0 + 3, 3, 2.25, 25.25),
        ("volume", 2.0, T0 + 4, T0 + 4, 1, 2.5, 25.0),
        ("dollar", 17.0, T0 + 3, T0 + 4, 2, 3.25, 33.25),
        ("dollar", 25.0, T0 + 4, T0 + 4, 1, 2.5, 25.0),
    ]
    assert [(r["high"], r["low"], r["buy_volume"], r["sell_volume"]) for r in rows[:2]] == [
        (12.0, 10.0, 0.5, 1.0),
        (12.0, 10.0, 1.25, 1.0),
    ]


def test_amounts_that_sum_to_the_threshold_exactly_close_the_bar() -> None:
    """Eight trades of 0.1 reach 0.8 (the exact sum of the doubles rounds to 0.8); added up one by
    one in floats they make 0.7999999999999999, and the bar would take a ninth trade."""
    trades = [(T0 + n, 100.0, 0.1, "buy") for n in range(20)]
    rows = bars_of(trades, with_ibars(volume=[0.8], dollar=[80.0]))
    assert [(r["kind"], r["tick_count"], r["volume"], r["dollar_value"]) for r in rows] == [
        ("volume", 8, 0.8, 80.0),
        ("dollar", 8, 0.8, 80.0),
        ("volume", 8, 0.8, 80.0),
        ("dollar", 8, 0.8, 80.0),
    ]
    assert [r["vwap"] for r in rows] == [100.0] * 4


def test_tick_imbalance_bars_follow_the_expected_imbalance_threshold() -> None:
    """E0[T] starts at 4, weights 2/(3+1) = 0.5 for both averages (worked by hand below)."""
    tib = {"expected_ticks_init": 4, "expected_ticks_min": 1, "expected_ticks_max": 100,
           "bars_span": 3, "ticks_span": 3}  # fmt: skip
    sides = [*("buy", "buy", "sell", "buy"), *("buy", "buy"), *("sell", "sell", "sell"), "buy", "sell"]
    trades = [(T0 + 10 * i, 100.0 + i, 1.0, side) for i, side in enumerate(sides)]
    rows = bars_of(trades, with_ibars(tick_imbalance=tib))
    assert [(*(r[k] for k in KEYS), r["tick_count"], r["imbalance"]) for r in rows] == [
        # The first bar: 4 trades, mean sign (1 + 1 - 1 + 1) / 4 = 0.5; no threshold yet.
        (T0, T0 + 30, "tick_imbalance", None, 4.0, None, 4, 2),
        # E0[T] = 4 + 0.5 * (4 - 4) = 4, E0[b] = 0.5: threshold 2, reached by two buys.
        # The sign average moves per trade: 0.5 -> 0.75 -> 0.875.
        (T0 + 40, T0 + 50, "tick_imbalance", 2.0, 4.0, 0.5, 2, 2),
        # E0[T] = 4 + 0.5 * (2 - 4) = 3, E0[b] = 0.875: threshold 2.625, reached by three sells.
        (T0 + 60, T0 + 80, "tick_imbalance", 2.625, 3.0, 0.875, 3, -3),
    ]
    # Open bar: E0[b] after the sells = -0.765625, E0[T] = 3: threshold 2.296875, not reached.
    engine, out = FeatureEngine(with_ibars(tick_imbalance=tib)), EngineOutput()
    for t, p, a, s in trades:
        engine.process(decoded(trade(t, p, a, s)), out)
    (bar,) = engine.state_for("ex", "BTC/USDT").ibars
    assert isinstance(bar, TickImbalanceBar)
    assert (bar.threshold, bar.expected_ticks, bar.expected_imbalance) == (2.296875, 3.0, -0.765625)


def test_expected_ticks_is_clamped() -> None:
    tib = {"expected_ticks_init": 2, "expected_ticks_min": 2, "expected_ticks_max": 3, "bars_span": 1}
    trades = [(T0 + i, 100.0, 1.0, "buy") for i in range(12)]
    rows = bars_of(trades, with_ibars(tick_imbalance=tib))
    # span 1: E0[T] = the last bar's length, held within [2, 3]; all buys: E0[b] = 1 throughout.
    assert [(r["expected_ticks"], r["threshold"], r["tick_count"]) for r in rows] == [
        (2.0, None, 2),
        *[(2.0, 2.0, 2)] * 5,
    ]


def test_books_and_tickers_do_not_move_bars_and_a_trade_before_any_book_still_counts() -> None:
    cfg = with_ibars(tick=[2])
    lines = [
        trade(T0 + 1, 100.0, 1.0),
        book(T0 + 2, [(99.0, 1.0)], [(101.0, 1.0)]),
        trade(T0 + 3, 100.5, 1.0),
    ]
    assert [r["tick_count"] for r in run_engine(lines, cfg).ibars] == [2]


@st.composite
def ibars_configs(draw: st.DrawFn) -> IbarsConfig:
    return IbarsConfig(
        tick=tuple(draw(st.sets(st.integers(1, 9), max_size=2))),
        volume=tuple(draw(st.sets(st.sampled_from([0.05, 0.3, 0.7, 1.5]), max_size=2))),
        dollar=tuple(draw(st.sets(st.sampled_from([5000.0, 40_000.0]), max_size=1))),
        tick_imbalance=draw(
            st.one_of(
                st.none(),
                st.builds(
                    TickImbalanceConfig,
                    expected_ticks_init=st.integers(1, 6),
                    expected_ticks_min=st.just(1),
                    expected_ticks_max=st.sampled_from([6, 20]),
                    bars_span=st.sampled_from([1.0, 3.0, 10.0]),
                    ticks_span=st.sampled_from([1.0, 4.0, 30.0]),
                ),
            )
        ),
    )


@settings(max_examples=200, deadline=None)
@given(deliveries(), ibars_configs())
def test_ibars_equal_brute_force(
    delivery: tuple[list[Update | Trade], StateConfig], ibars: IbarsConfig
) -> None:
    """Out-of-order delivery under several latenesses: bars follow the trades in the order applied."""
    arrivals, base = delivery
    cfg = base.model_copy(update={"ibars": ibars})
    out = run_engine(encode(arrivals), cfg)
    applied, _ = applied_order(arrivals, cfg.interval_ms, cfg.allowed_lateness_ms)
    assert out.ibars == reference_ibars([e for e in applied if isinstance(e, Trade)], ibars)


IBARS = IbarsConfig(tick=(3,), volume=(0.4,), tick_imbalance=TickImbalanceConfig(expected_ticks_init=3,
                    expected_ticks_min=1, bars_span=3, ticks_span=5))  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(with_watermarks())
def test_true_watermarks_change_no_bar(case: tuple[list[bytes], Script, StateConfig]) -> None:
    lines, script, base = case
    cfg = base.model_copy(update={"ibars": IBARS})
    assert everything(run_script(script, cfg)) == everything(run_engine(lines, cfg))


@settings(max_examples=60, deadline=None)
@given(deliveries())
def test_state_round_trip_after_every_tick_changes_no_bar(
    delivery: tuple[list[Update | Trade], StateConfig],
) -> None:
    arrivals, base = delivery
    cfg = base.model_copy(update={"ibars": IBARS})
    lines = encode(arrivals)
    whole = run_engine(lines, cfg)
    engine, out = FeatureEngine(cfg), EngineOutput()
    for raw in lines:
        item = decoded(raw)
        key = (item.tick.exchange, item.tick.symbol)
        data = engine.state_for(*key).to_bytes()
        engine.put_state(SymbolState.from_bytes(data, cfg))
        assert engine.states[key].to_bytes() == data
        engine.process(item, out)
    engine.flush(out)
    assert out.tables() == whole.tables()


def test_state_formats_with_and_without_ibars() -> None:
    lines = [trade(T0 + i, 100.0, 1.0, "buy" if i % 3 else "sell") for i in range(7)]
    on, off = with_ibars(tick=[2], tick_imbalance={}), StateConfig(allowed_lateness_ms=0)
    states = {}
    for name, cfg in (("on", on), ("off", off)):
        engine = FeatureEngine(cfg)
        for raw in lines:
            engine.process(decoded(raw), EngineOutput())
        states[name] = engine.state_for("ex", "BTC/USDT").to_bytes()
    assert [msgspec.msgpack.decode(states[name])[0] for name in ("on", "off")] == [7, 5]
    assert SymbolState.from_bytes(states["on"], on).to_bytes() == states["on"]
    # Format 6, written before the bars carried their rounding errors, loads with none.
    values = msgspec.msgpack.decode(states["on"])
    bars = values[-1]
    older = msgspec.msgpack.encode([6, *values[1:-1], [bar[:-2] for bar in bars]])
    again = msgspec.msgpack.decode(SymbolState.from_bytes(older, on).to_bytes())
    assert again[-1] == [[*bar[:-2], 0.0, 0.0] for bar in bars] and again[:-1] == [7, *values[1:-1]]
    with pytest.raises(ValueError, match="reprocess under a new application id"):
        SymbolState.from_bytes(states["off"], on)
    with pytest.raises(ValueError, match="reprocess under a new application id"):
        SymbolState.from_bytes(states["on"], off)


def test_off_by_default_and_unchanged_when_off() -> None:
    cfg = StateConfig()
    assert not cfg.ibars.enabled and output_tables(cfg) == ("hf", "bars", "trades", "ticker")
    assert output_tables(with_ibars(volume=[1.0]))[-1] == "ibars"
    # The fingerprint of a configuration without ibars is the one it had before ibars existed.
    before = cfg.model_dump_json(exclude={"ibars"})
    assert (
        '"ibars"' not in before
        and config_fingerprint(cfg) == hashlib.sha256(before.encode()).hexdigest()[:16]
    )
    assert config_fingerprint(cfg) == "17bde2390a732b7f"  # the defaults before ibars existed


def test_inconsistent_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="expected_ticks_min"):
        TickImbalanceConfig(expected_ticks_init=5, expected_ticks_min=10)
    with pytest.raises(ValidationError, match="expected_ticks_max"):
        TickImbalanceConfig(expected_ticks_init=500, expected_ticks_max=100)
    with pytest.raises(ValidationError, match="unique"):
        IbarsConfig(tick=(100, 100))
    with pytest.raises(ValidationError, match="greater than 0"):
        IbarsConfig(volume=(0.0,))
    with pytest.raises(ValidationError, match="Extra inputs"):
        IbarsConfig.model_validate({"ticks": [100]})
    with pytest.raises(ValidationError, match=r"sink\.tables lists ibars"):
        FluxForgeSettings(sink={"tables": ["hf", "ibars"]})
    assert FluxForgeSettings().sink.tables == ["hf", "bars", "trades", "ticker"]
    on = {"ibars": {"dollar": [1e6]}}
    assert FluxForgeSettings(features=on).sink.tables == ["hf", "bars", "trades", "ticker", "ibars"]
    assert FluxForgeSettings(features=on, sink={"tables": ["ibars"]}).sink.tables == ["ibars"]
    everything_listed = ["hf", "bars", "trades", "ticker", "ibars"]  # `--tables all`
    assert FluxForgeSettings(sink={"tables": everything_listed}).sink.tables == [
        "hf",
        "bars",
        "trades",
        "ticker",
    ]
