"""Interval flows as the engine stores them: reset, round trip, and refusals of a state that is not one."""

from __future__ import annotations

import math

import pytest
from fluxforge_native import IntervalFlows, Levels

from tests.support.books import BookFolder

BIDS = Levels.from_pairs([(100.0, 2.0), (99.5, 1.0)])
ASKS = Levels.from_pairs([(100.5, 1.0), (101.0, 3.0)])


def test_a_new_interval_is_empty() -> None:
    flows = IntervalFlows(3)
    assert flows.n == flows.n_trades == flows.n_tight == 0 and flows.ofi == [0.0, 0.0, 0.0]
    assert (flows.high, flows.low, flows.min_spread, flows.max_spread) == (
        -math.inf,
        math.inf,
        math.inf,
        -math.inf,
    )


def test_updates_fold_in_and_reset_clears_them() -> None:
    flows = IntervalFlows(2)
    books = BookFolder(flows, 0.01)
    assert books.fold(BIDS, ASKS) == 100.25
    moved = Levels.from_pairs([(100.25, 1.5), (100.0, 2.0)])
    assert books.fold(moved, ASKS) == 100.375
    flows.on_trade(100.5, 0.25, True)
    flows.on_trade(100.0, 0.5, False)
    assert (flows.n, flows.first_mid, flows.last_mid, flows.high, flows.low) == (
        2,
        100.25,
        100.375,
        100.375,
        100.25,
    )
    assert flows.ofi == [1.5, 2.0]  # a better bid price adds the new size at each level; unchanged asks add 0
    r = math.log(100.375 / 100.25)  # a return inside the interval: the first update had no book before it
    assert flows.r2_in == r * r and flows.r2_cross == 0.0
    assert (flows.n_trades, flows.buy_qty, flows.sell_qty, flows.notional) == (
        2,
        0.25,
        0.5,
        100.5 * 0.25 + 50.0,
    )
    assert flows.n_tight == 2 and flows.depth_mean == (7.0 + 7.5) / 2
    flows.reset()
    assert flows.to_state() == IntervalFlows(2).to_state()


def test_the_state_round_trips_and_a_foreign_one_is_refused() -> None:
    flows = IntervalFlows(2)
    BookFolder(flows, 0.01).fold(BIDS, ASKS)
    again = IntervalFlows(2)
    again.load_state(flows.to_state())
    assert again.to_state() == flows.to_state()
    with pytest.raises(ValueError, match="20"):
        again.load_state(flows.to_state()[:-1])
    with pytest.raises(ValueError, match="OFI levels"):
        IntervalFlows(3).load_state(flows.to_state())
    with pytest.raises(ValueError, match="a level on each side"):
        BookFolder(flows, 0.01).fold(Levels.from_pairs([]), ASKS)
