"""The engine agrees with the brute-force reference on random streams (hypothesis).

Streams are delivered out of event-time order (each event delayed at random) and run under
several allowed latenesses, so held, reordered and late events are all exercised.
"""

from __future__ import annotations

import math
from typing import Any

from fluxforge_common.config import StateConfig
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.ticks import book, run_engine, trade
from tests.support.times import T0
from tests.unit.features.reference import Trade, Update, applied_order, reference_rows

CFG = StateConfig(
    horizons=(1, 2, 5),
    bar_durations=(1, 3),
    regime_window=4,
    max_levels=4,
    ofi_levels=3,
    bands_bps=(5, 50),
    hf_emit_interval=0.5,
)
# 0 (no tolerance), less than / the default / more than the 500 ms grid interval.
LATENESSES = [0, 120, 250, 700]


# The strategies a stream is drawn from, made once: drawing from a strategy made anew for every
# value validates it again each time, which took a third of these tests' time.
EVENTS = st.integers(2, 120)
START_MS = st.integers(0, 999)
STEP_MS = st.sampled_from([0, 0, 1, 7, 40, 130, 499, 500, 501, 1200, 2600])
KIND = st.integers(0, 9)  # below 7 a book update, else a trade
MID_STEP = st.integers(-2, 2)
HALF_SPREAD = st.integers(1, 3).map(lambda k: 0.25 * k)
LEVEL_OFFSETS = st.sets(st.integers(0, 6), min_size=1, max_size=4).map(sorted)
SIZE = st.integers(1, 40).map(lambda k: k / 10)
TRADE_OFFSET = st.sampled_from([-0.75, -0.25, 0.25, 0.75])
AMOUNT = st.integers(1, 30).map(lambda k: k / 100)
SIDE = st.sampled_from(["buy", "sell"])
DELAY_MS = st.sampled_from([0, 0, 0, 0, 15, 90, 200, 260, 900])
LATENESS_MS = st.sampled_from(LATENESSES)


@st.composite
def streams(draw: st.DrawFn) -> list[Update | Trade]:
    n = draw(EVENTS)
    t = T0 + draw(START_MS)
    mid_ticks = 200_000  # mid in half-units of 0.5
    events: list[Update | Trade] = []
    for _ in range(n):
        t += draw(STEP_MS)
        if draw(KIND) < 7:
            mid_ticks += draw(MID_STEP)
            mid = mid_ticks * 0.5
            half = draw(HALF_SPREAD)
            bid_offsets = draw(LEVEL_OFFSETS)
            ask_offsets = draw(LEVEL_OFFSETS)
            bids = [(mid - half - 0.5 * o, draw(SIZE)) for o in bid_offsets]
            asks = [(mid + half + 0.5 * o, draw(SIZE)) for o in ask_offsets]
            events.append(Update(t, bids, asks))
        else:
            price = mid_ticks * 0.5 + draw(TRADE_OFFSET)
            events.append(Trade(t, price, draw(AMOUNT), draw(SIDE)))
    return events


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[Update | Trade], StateConfig]:
    """A stream in arrival order (each event delayed by up to 900 ms) and the config to run it under."""
    events = draw(streams())
    delays = [draw(DELAY_MS) for _ in events]
    order = sorted(range(len(events)), key=lambda i: (events[i].t + delays[i], i))
    lateness = draw(LATENESS_MS)
    return [events[i] for i in order], CFG.model_copy(update={"allowed_lateness_ms": lateness})


def encode(events: list[Update | Trade]) -> list[bytes]:
    return [
        book(e.t, e.bids, e.asks) if isinstance(e, Update) else trade(e.t, e.price, e.amount, e.side)
        for e in events
    ]


def assert_rows_match(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        for key, value in want.items():
            if value is None or (isinstance(value, int) and not isinstance(value, bool) and key != "sum_ofi"):
                assert got[key] == value, (key, got, want)
            else:
                assert got[key] is not None, (key, got, want)
                assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-9), (key, got[key], value)


@settings(max_examples=250, deadline=None)
@given(deliveries())
def test_hf_rows_and_bars_equal_brute_force(delivery: tuple[list[Update | Trade], StateConfig]) -> None:
    arrivals, cfg = delivery
    lines = encode(arrivals)
    out = run_engine(lines, cfg)
    applied, late = applied_order(arrivals, cfg.interval_ms, cfg.allowed_lateness_ms)
    hf, bars = reference_rows(
        applied,
        cfg.interval_ms,
        list(cfg.horizons),
        list(cfg.bar_durations),
        cfg.regime_window,
        cfg.ofi_levels,
        cfg.tight_spread_threshold,
    )
    assert [r.raw for r in out.rejected] == [lines[i] for i in late]
    assert all(r.reason.startswith("late event") for r in out.rejected)
    assert_rows_match(list(out.hf), hf)
    assert_rows_match(out.bars, bars)


@settings(max_examples=100, deadline=None)
@given(streams())
def test_imbalances_lie_in_unit_interval(events: list[Update | Trade]) -> None:
    out = run_engine(encode(events), CFG)
    for row in out.hf:
        for i in range(1, CFG.max_levels + 1):
            value = row[f"imbalance_l{i}"]
            assert value is None or -1.0 <= value <= 1.0
        for h in CFG.horizons:
            assert -1.0 <= row[f"tfi_{h}s"] <= 1.0
    for bar in out.bars:
        assert bar["mean_imbalance_l1"] is None or -1.0 <= bar["mean_imbalance_l1"] <= 1.0


@settings(max_examples=100, deadline=None)
@given(deliveries(), st.data())
def test_state_round_trip_mid_stream_changes_nothing(
    delivery: tuple[list[Update | Trade], StateConfig], data: st.DataObject
) -> None:
    from fluxforge_common.features import EngineOutput, FeatureEngine, SymbolState

    from tests.support.ticks import decoded

    arrivals, cfg = delivery
    lines = encode(arrivals)
    split = data.draw(st.integers(0, len(lines)))
    whole = run_engine(lines, cfg)
    engine = FeatureEngine(cfg)
    out = EngineOutput()
    for raw in lines[:split]:
        engine.process(decoded(raw), out)
    restored = FeatureEngine(cfg)
    for state in engine.states.values():
        restored.put_state(SymbolState.from_bytes(state.to_bytes(), cfg))
    for raw in lines[split:]:
        restored.process(decoded(raw), out)
    restored.flush(out)
    assert out.rejected == whole.rejected
    assert out.hf == whole.hf
    assert out.bars == whole.bars
    assert out.trades == whole.trades


@settings(max_examples=60, deadline=None)
@given(deliveries())
def test_state_round_trip_after_every_tick_changes_nothing(
    delivery: tuple[list[Update | Trade], StateConfig],
) -> None:
    """As a stream worker storing the state after each one-tick message does."""
    from fluxforge_common.features import EngineOutput, FeatureEngine, SymbolState

    from tests.support.ticks import decoded

    arrivals, cfg = delivery
    lines = encode(arrivals)
    whole = run_engine(lines, cfg)
    engine = FeatureEngine(cfg)
    out = EngineOutput()
    for raw in lines:
        item = decoded(raw)
        state = engine.state_for(item.tick.exchange, item.tick.symbol)
        stored = SymbolState.from_bytes(state.to_bytes(), cfg)
        engine.put_state(stored)
        engine.process(item, out)
        assert stored.to_bytes() == SymbolState.from_bytes(stored.to_bytes(), cfg).to_bytes()
    engine.flush(out)
    assert out.rejected == whole.rejected
    assert out.hf == whole.hf
    assert out.bars == whole.bars
    assert out.trades == whole.trades
