"""Rolling windows' exact sums: the native sum is `math.fsum` bit for bit; the state round-trips."""

from __future__ import annotations

import math
import struct

import pytest
from fluxforge_native import IntervalFlows, RollingWindows
from hypothesis import given, settings
from hypothesis import strategies as st

# Magnitudes far apart, cancelling pairs and half-way cases: where a naive sum rounds differently.
VALUES = st.lists(
    st.floats(-1e300, 1e300) | st.sampled_from([1e16, -1e16, 1.0, 0.5, 2.0**-53, -(2.0**-53), 1e-300]),
    max_size=40,
)


def _flows(ofi: list[float], **fields: float) -> IntervalFlows:
    """Flows holding `ofi` (levels) and the given fields, the others as a new interval has them."""
    flows = IntervalFlows(max(len(ofi), 1))
    state = flows.to_state()
    names = ["buy_qty", "depth_m2", "depth_mean", "first_mid", "high", "last_mid", "low", "max_spread", "min_spread", "n", "n_tight", "n_trades", "notional", "ofi", "r2_cross", "r2_in", "sell_qty", "sum_imb", "sum_rel", "sum_spread"]  # fmt: skip
    state[names.index("ofi")] = ofi or [0.0]
    for name, value in fields.items():
        state[names.index(name)] = value
    flows.load_state(state)
    return flows


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_the_native_exact_sum_is_math_fsum(values: list[float]) -> None:
    assert _bits(_flows(values).mlofi()) == _bits(math.fsum(values or [0.0]))


@settings(max_examples=200, deadline=None)
@given(VALUES, st.integers(1, 50))
def test_window_sums_are_math_fsum_over_the_last_k_intervals(values: list[float], k: int) -> None:
    windows = RollingWindows(30)
    for value in values:
        windows.push(_flows([value], buy_qty=abs(value), sell_qty=abs(value) / 3, n=1))
    kept = values[-30:][-k:]
    assert _bits(windows.ofi_sum(k)) == _bits(math.fsum(kept))
    buys, sells = [abs(v) for v in kept], [abs(v) / 3 for v in kept]
    assert _bits(windows.trade_flow(k)[1]) == _bits(math.fsum(buys + sells))


def test_the_state_round_trips_and_a_ragged_one_is_refused() -> None:
    windows = RollingWindows(3)
    for i in range(5):
        windows.push(_flows([float(i)], n=i % 2, n_tight=i % 2, depth_mean=float(i), r2_in=0.25 * i))
    state = windows.to_state()
    assert state[3] == [0, 1, 0] and state[5] == [2.0, 3.0, 4.0]  # n and ofi1: the last 3 intervals
    again = RollingWindows(3)
    again.load_state(state)
    assert again.to_state() == state
    assert (
        again.tight_fraction(3) == 1.0 and again.depth_variance(3) == 0.0 and again.depth_variance(1) is None
    )
    with pytest.raises(ValueError, match="different lengths"):
        again.load_state([column[:1] if i == 0 else column for i, column in enumerate(state)])
    with pytest.raises(ValueError, match="9"):
        again.load_state(state[:8])
    with pytest.raises(ValueError, match="more than the 2"):
        RollingWindows(2).load_state(state)


# An interval's flows as the windows read them: (n, r2_in, r2_cross, ofi1, buy, sell).
Interval = tuple[int, float, float, float, float, float]
INTERVALS = st.tuples(
    st.integers(0, 3),
    *[st.floats(0, 1e300) | st.sampled_from([0.0, 1e16, 1.0, 2.0**-53, 1e-300])] * 2,
    st.floats(-1e300, 1e300) | st.sampled_from([1e16, -1e16, 1.0, -(2.0**-53)]),
    *[st.floats(0, 1e300) | st.sampled_from([0.0, 1e16, 1.0, 2.0**-53])] * 2,
)
# Each step pushes an interval, asks a window of k intervals, or restores the windows' state (which
# drops the sliding sums); mostly pushes and a few window lengths, so that sums slide far.
ACTIONS = st.sampled_from(["push"] * 6 + ["ask"] * 3 + ["restore"])
STEPS = st.lists(st.tuples(ACTIONS, INTERVALS, st.sampled_from([1, 2, 3, 8, 9])), min_size=10, max_size=80)


def _expected(kept: list[Interval], k: int) -> tuple[float, ...]:
    """The windows over the last k of `kept` as defined: `math.fsum` over the window's values."""
    window = kept[-k:]
    counts = [n for n, *_ in window]
    first = next((i for i, n in enumerate(counts) if n), None)
    vol = (
        0.0
        if first is None
        else math.sqrt(
            math.fsum(r2 for _, r2, *_ in window)
            + math.fsum(cross for _, _, cross, *_ in window[first + 1 :])
        )
    )
    buys, sells = [buy for *_, buy, _ in window], [sell for *_, sell in window]
    buy, sell, volume = math.fsum(buys), math.fsum(sells), math.fsum(buys + sells)
    flow = (buy - sell) / (buy + sell) if volume > 0 else 0.0
    return vol, math.fsum(ofi for *_, ofi, _, _ in window), flow, volume


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_sliding_window_sums_are_math_fsum_over_the_window_whenever_asked(
    steps: list[tuple[str, Interval, int]],
) -> None:
    capacity = 8
    windows = RollingWindows(capacity)
    kept: list[Interval] = []
    for action, interval, k in steps:
        if action == "push":
            n, r2_in, r2_cross, ofi1, buy, sell = interval
            windows.push(_flows([ofi1], n=n, r2_in=r2_in, r2_cross=r2_cross, buy_qty=buy, sell_qty=sell))
            kept = [*kept, interval][-capacity:]
        elif action == "restore":  # into the same windows: their sliding sums start again
            windows.load_state(windows.to_state())
        else:
            got = windows.realized_vol(k), windows.ofi_sum(k), *windows.trade_flow(k)
            assert [_bits(v) for v in got] == [_bits(v) for v in _expected(kept, k)]
