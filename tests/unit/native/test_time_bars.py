"""Time bars folded natively: the same rows and states as the Python fold they replaced.

`Bar` below is that fold, kept as the oracle: every sum in its order, Python's `max`/`min`
(a tie keeps the bar's value), an empty bar carrying the previous close.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from fluxforge_native import IntervalFlows, TimeBars
from hypothesis import given, settings
from hypothesis import strategies as st

STATE = (
    "close",
    "high",
    "low",
    "max_spread",
    "min_spread",
    "n",
    "n_trades",
    "notional",
    "open",
    "r2",
    "sum_imb",
    "sum_ofi",
    "sum_rel",
    "sum_spread",
    "volume",
)


class Bar:
    def __init__(self, duration_ms: int) -> None:
        self.duration_ms = duration_ms
        self.reset()

    def reset(self) -> None:
        self.n = self.n_trades = 0
        self.open = self.close = 0.0
        self.high, self.low = -math.inf, math.inf
        self.sum_spread = self.sum_rel = self.sum_imb = self.sum_ofi = self.r2 = 0.0
        self.min_spread, self.max_spread = math.inf, -math.inf
        self.volume = self.notional = 0.0

    def fold(self, f: IntervalFlows) -> None:
        if f.n:
            if self.n:
                self.r2 += f.r2_in + f.r2_cross
                self.high, self.low = max(self.high, f.high), min(self.low, f.low)
                self.min_spread = min(self.min_spread, f.min_spread)
                self.max_spread = max(self.max_spread, f.max_spread)
            else:
                self.open, self.r2, self.high, self.low = f.first_mid, f.r2_in, f.high, f.low
                self.min_spread, self.max_spread = f.min_spread, f.max_spread
            self.close = f.last_mid
            self.n += f.n
            self.sum_spread += f.sum_spread
            self.sum_rel += f.sum_rel
            self.sum_imb += f.sum_imb
            self.sum_ofi += f.ofi[0]
        if f.n_trades:
            self.n_trades += f.n_trades
            self.volume += f.buy_qty + f.sell_qty
            self.notional += f.notional

    def row(self, exchange: str, symbol: str, end_ms: int, prev_close: float | None) -> dict[str, Any]:
        n = self.n
        o, h, lo, c = (self.open, self.high, self.low, self.close) if n else (prev_close,) * 4
        return {
            "exchange": exchange,
            "symbol": symbol,
            "ts": end_ms - self.duration_ms,
            "duration_s": self.duration_ms // 1000,
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "count": n,
            "mean_spread": self.sum_spread / n if n else None,
            "min_spread": self.min_spread if n else None,
            "max_spread": self.max_spread if n else None,
            "mean_rel_spread": self.sum_rel / n if n else None,
            "mean_imbalance_l1": self.sum_imb / n if n else None,
            "sum_ofi": self.sum_ofi,
            "realized_var": self.r2,
            "trade_count": self.n_trades,
            "trade_volume": self.volume,
            "vwap": self.notional / self.volume if self.n_trades else None,
        }

    def state(self) -> list[Any]:
        return [getattr(self, name) for name in STATE]


# Prices, spreads and sums near each other, so that ties (and -0.0 against 0.0) come up.
VALUE = st.sampled_from([0.0, -0.0, 1.0, 2.5, 100.0, 100.5, 1e-30, 1e29]) | st.floats(-1e6, 1e6)
POSITIVE = st.floats(1e-3, 1e6)


@st.composite
def flows(draw: st.DrawFn) -> IntervalFlows:
    """An interval: without book updates, trades, either or both; its values drawn freely."""
    f = IntervalFlows(2)
    n, n_trades = draw(st.sampled_from([0, 1, 3])), draw(st.sampled_from([0, 1, 4]))
    if n:
        f.n, f.first_mid, f.last_mid = n, draw(VALUE), draw(VALUE)
        f.high, f.low, f.min_spread, f.max_spread = (draw(VALUE) for _ in range(4))
        f.r2_in, f.r2_cross, f.sum_spread, f.sum_rel, f.sum_imb = (draw(VALUE) for _ in range(5))
        f.load_state([*f.to_state()[:13], [draw(VALUE), 0.0], *f.to_state()[14:]])
    if n_trades:
        f.n_trades, f.buy_qty, f.sell_qty, f.notional = n_trades, draw(POSITIVE), draw(POSITIVE), draw(VALUE)
    return f


@settings(max_examples=300, deadline=None)
@given(st.lists(flows(), max_size=25), st.integers(0, 25), st.none() | VALUE)
def test_rows_and_states_are_those_of_the_python_fold(
    intervals: list[IntervalFlows], restore_at: int, prev_close: float | None
) -> None:
    durations = [1000, 2000, 5000]
    bars, oracle = TimeBars(durations), [Bar(ms) for ms in durations]
    rows: list[dict[str, Any]] = []
    expected: list[dict[str, Any]] = []
    for k, f in enumerate(intervals, 1):
        end_ms = 1_700_000_000_000 + k * 1000
        if k == restore_at:  # a state restored mid-stream goes on as the one it was taken from
            restored = TimeBars(durations)
            restored.load_state(bars.to_state())
            bars = restored
        bars.close_interval(f, "binance", "BTC/USDT", end_ms, prev_close, rows)
        for bar in oracle:
            bar.fold(f)
            if end_ms % bar.duration_ms == 0:
                expected.append(bar.row("binance", "BTC/USDT", end_ms, prev_close))
                bar.reset()
        # repr tells -0.0 from 0.0 and compares nan with itself
        assert repr(bars.to_state()) == repr([bar.state() for bar in oracle])
    assert repr(rows) == repr(expected)


def test_a_state_of_other_durations_or_values_is_refused() -> None:
    bars = TimeBars([1000, 5000])
    with pytest.raises(ValueError, match="holds 1 bars, expected 2"):
        bars.load_state(bars.to_state()[:1])
    with pytest.raises(ValueError, match="state of the 1 s bar: bar state has 14 values, expected 15"):
        bars.load_state([state[:-1] for state in bars.to_state()])
    with pytest.raises(ValueError, match="positive"):
        TimeBars([0])
