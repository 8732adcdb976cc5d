"""The engine agrees with the brute-force reference on random streams (hypothesis)."""

from __future__ import annotations

import math
from typing import Any

from fluxforge_common.config import StateConfig
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.ticks import book, run_engine, trade
from tests.support.times import T0
from tests.unit.features.reference import Trade, Update, reference_rows

CFG = StateConfig(
    horizons=(1, 2, 5),
    bar_durations=(1, 3),
    regime_window=4,
    max_levels=4,
    ofi_levels=3,
    bands_bps=(5, 50),
    hf_emit_interval=0.5,
)


@st.composite
def streams(draw: st.DrawFn) -> list[Update | Trade]:
    n = draw(st.integers(2, 120))
    t = T0 + draw(st.integers(0, 999))
    mid_ticks = 200_000  # mid in half-units of 0.5
    events: list[Update | Trade] = []
    for _ in range(n):
        t += draw(st.sampled_from([0, 0, 1, 7, 40, 130, 499, 500, 501, 1200, 2600]))
        if draw(st.integers(0, 9)) < 7:
            mid_ticks += draw(st.integers(-2, 2))
            mid = mid_ticks * 0.5
            half = 0.25 * draw(st.integers(1, 3))
            bid_offsets = sorted(draw(st.sets(st.integers(0, 6), min_size=1, max_size=4)))
            ask_offsets = sorted(draw(st.sets(st.integers(0, 6), min_size=1, max_size=4)))
            size = st.integers(1, 40).map(lambda k: k / 10)
            bids = [(mid - half - 0.5 * o, draw(size)) for o in bid_offsets]
            asks = [(mid + half + 0.5 * o, draw(size)) for o in ask_offsets]
            events.append(Update(t, bids, asks))
        else:
            price = mid_ticks * 0.5 + draw(st.sampled_from([-0.75, -0.25, 0.25, 0.75]))
            events.append(
                Trade(t, price, draw(st.integers(1, 30)) / 100, draw(st.sampled_from(["buy", "sell"])))
            )
    return events


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


@settings(max_examples=150, deadline=None)
@given(streams())
def test_hf_rows_and_bars_equal_brute_force(events: list[Update | Trade]) -> None:
    out = run_engine(encode(events), CFG)
    hf, bars = reference_rows(
        events,
        CFG.interval_ms,
        list(CFG.horizons),
        list(CFG.bar_durations),
        CFG.regime_window,
        CFG.ofi_levels,
        CFG.tight_spread_threshold,
    )
    assert out.rejected == []
    assert_rows_match(out.hf, hf)
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


@settings(max_examples=60, deadline=None)
@given(streams(), st.data())
def test_state_round_trip_mid_stream_changes_nothing(
    events: list[Update | Trade], data: st.DataObject
) -> None:
    from fluxforge_common.features import EngineOutput, FeatureEngine, SymbolState

    from tests.support.ticks import decoded

    lines = encode(events)
    split = data.draw(st.integers(0, len(lines)))
    whole = run_engine(lines, CFG)
    engine = FeatureEngine(CFG)
    out = EngineOutput()
    for raw in lines[:split]:
        engine.process(decoded(raw), out)
    restored = FeatureEngine(CFG)
    for key, state in engine.states.items():
        restored.states[key] = SymbolState.from_bytes(state.to_bytes(), CFG)
    for raw in lines[split:]:
        restored.process(decoded(raw), out)
    restored.flush(out)
    assert out.hf == whole.hf
    assert out.bars == whole.bars
    assert out.trades == whole.trades
