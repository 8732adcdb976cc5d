"""Per-update OFI follows the case table of docs/design.md "Feature contracts", at every level."""

from __future__ import annotations

import pytest
from fluxforge_common.config import StateConfig

from tests.support.ticks import book, run_engine
from tests.support.times import T0

CFG = StateConfig(max_levels=2, ofi_levels=2)


def ofi_of(
    prev: tuple[list[tuple[float, float]], list[tuple[float, float]]],
    cur: tuple[list[tuple[float, float]], list[tuple[float, float]]],
) -> tuple[float, float]:
    out = run_engine([book(T0 + 10, *prev), book(T0 + 20, *cur)], CFG)
    (row,) = out.hf
    return row["ofi_l1"], row["ofi_l2"]


ASK = [(101.0, 5.0)]


@pytest.mark.parametrize(
    ("prev_bid", "cur_bid", "expected"),
    [
        ((100.0, 2.0), (100.5, 3.0), 3.0),  # bid up: + new size
        ((100.0, 2.0), (100.0, 3.5), 1.5),  # same price: size change
        ((100.0, 2.0), (99.5, 7.0), -2.0),  # bid down: - old size
    ],
)
def test_bid_cases(prev_bid: tuple[float, float], cur_bid: tuple[float, float], expected: float) -> None:
    assert ofi_of(([prev_bid], ASK), ([cur_bid], ASK))[0] == pytest.approx(expected)


BID = [(99.0, 5.0)]


@pytest.mark.parametrize(
    ("prev_ask", "cur_ask", "expected"),
    [
        ((101.0, 2.0), (101.5, 3.0), 2.0),  # ask up: ofi_ask = -old size, e = +old
        ((101.0, 2.0), (101.0, 3.5), -1.5),  # same price: e = -(new - old)
        ((101.0, 2.0), (100.5, 7.0), -7.0),  # ask down: ofi_ask = new size, e = -new
    ],
)
def test_ask_cases(prev_ask: tuple[float, float], cur_ask: tuple[float, float], expected: float) -> None:
    assert ofi_of((BID, [prev_ask]), (BID, [cur_ask]))[0] == pytest.approx(expected)


def test_second_level_and_missing_levels() -> None:
    prev = ([(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0)])
    cur = ([(100.0, 1.0), (99.5, 4.0)], [(101.0, 1.0), (102.0, 6.0)])
    # bid level 2 moved up: +4; ask level 2 appeared (was +inf): ofi_ask = +6, e = -6
    assert ofi_of(prev, cur) == pytest.approx((0.0, -2.0))


def test_first_book_contributes_no_increment() -> None:
    out = run_engine([book(T0 + 10, [(100.0, 1.0)], [(101.0, 1.0)])], CFG)
    assert out.hf[0]["ofi_l1"] == 0.0
    assert out.hf[0]["mlofi"] == 0.0
