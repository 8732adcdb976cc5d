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
