"""Static book features of an HF row against values worked out by hand, and the native definition
against the Python one it replaced, bit for bit."""

from __future__ import annotations

import struct
from bisect import bisect_right
from typing import Any

import pytest
from fluxforge_common.config import StateConfig
from fluxforge_common.config.state import fmt_bps
from fluxforge_common.features.hf_columns import book_column_names, hf_columns
from fluxforge_native import HfRows, IntervalFlows, Levels, RollingWindows
from hypothesis import assume, given, settings
from hypothesis import strategies as st

BIDS = Levels.from_pairs([(100.0, 2.0), (99.99, 1.0), (99.5, 4.0)])
ASKS = Levels.from_pairs([(100.02, 1.0), (100.03, 3.0)])


def book_row(bids: Levels, asks: Levels, cfg: StateConfig) -> dict[str, Any]:
    """The HF row of an interval that ends with this book (and saw no update)."""
    rows, flows, windows = HfRows(), IntervalFlows(cfg.ofi_levels), RollingWindows(1)
    windows.push(flows)
    mid = (bids[0][0] + asks[0][0]) / 2
    rows.write(hf_columns(cfg), "ex", "S/USD", 1_000, bids, asks, 0, flows, windows, mid, None, None)
    (row,) = rows
    return row


@pytest.fixture
def row() -> dict[str, object]:
    return book_row(BIDS, ASKS, StateConfig(max_levels=3, ofi_levels=1, bands_bps=(1, 2, 100)))


def test_top_of_book(row: dict[str, object]) -> None:
    assert row["mid"] == pytest.approx(100.01)
    assert row["spread"] == pytest.approx(0.02)
    assert row["rel_spread"] == pytest.approx(0.02 / 100.01)
    # (qb * pa + qa * pb) / (qb + qa) = (2 * 100.02 + 1 * 100) / 3
    assert row["microprice"] == pytest.approx(300.04 / 3)
    assert row["microprice_deviation"] == pytest.approx(300.04 / 3 - 100.01)


def test_levels_and_missing_levels_are_null(row: dict[str, object]) -> None:
    assert (row["bid_px_1"], row["bid_sz_3"], row["ask_px_2"]) == (100.0, 4.0, 100.03)
    assert row["ask_px_3"] is None and row["ask_sz_3"] is None
    assert (row["bid_levels"], row["ask_levels"]) == (3, 2)
    assert (row["total_bid_volume"], row["total_ask_volume"]) == (7.0, 4.0)


def test_cumulative_imbalances(row: dict[str, object]) -> None:
    assert row["imbalance_l1"] == pytest.approx((2 - 1) / 3)
    assert row["imbalance_l2"] == pytest.approx((3 - 4) / 7)
    assert row["imbalance_l3"] == pytest.approx((7 - 4) / 11)


def test_depth_bands(row: dict[str, object]) -> None:
    # 1 bp of 100.01 is 0.010001: only the touch (0.01 away) is inside on both sides.
    assert (row["depth_bid_1bps"], row["depth_ask_1bps"]) == (2.0, 1.0)
    # 2 bp = 0.020002: bid 99.99 (0.02 away) and ask 100.03 (0.02 away) join.
    assert (row["depth_bid_2bps"], row["depth_ask_2bps"]) == (3.0, 4.0)
    assert (row["depth_bid_100bps"], row["depth_ask_100bps"]) == (7.0, 4.0)


def test_raw_arrays_only_when_asked() -> None:
    out = book_row(BIDS, ASKS, StateConfig(keep_raw_arrays=True))
    assert out["bids_raw"] == [[100.0, 2.0], [99.99, 1.0], [99.5, 4.0]]
    assert out["asks_raw"] == [[100.02, 1.0], [100.03, 3.0]]
    assert "bids_raw" not in book_row(BIDS, ASKS, StateConfig())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(1, 400), min_size=1, max_size=8, unique=True),
    st.lists(st.integers(1, 400), min_size=1, max_size=8, unique=True),
    st.lists(st.integers(1, 50), min_size=8, max_size=8),
    # Distinct column names: the config refuses bands that only differ past 6 significant digits.
    st.lists(st.floats(0.5, 200), min_size=1, max_size=4, unique_by=fmt_bps),
)
def test_depth_bands_equal_brute_force(
    bid_ticks: list[int], ask_ticks: list[int], sizes: list[int], bands: list[float]
) -> None:
    bids = [(100.0 - 0.01 * t, sizes[i] / 10) for i, t in enumerate(sorted(bid_ticks))]
    asks = [(100.0 + 0.01 * t, sizes[i] / 10) for i, t in enumerate(sorted(ask_ticks))]
    cfg = StateConfig(max_levels=8, ofi_levels=1, bands_bps=tuple(bands))
    row = book_row(Levels.from_pairs(bids), Levels.from_pairs(asks), cfg)
    mid = (bids[0][0] + asks[0][0]) / 2
    for bps in cfg.bands_bps:
        assert row[f"depth_bid_{bps:g}bps"] == sum((q for p, q in bids if (mid - p) / mid * 1e4 <= bps), 0.0)
        assert row[f"depth_ask_{bps:g}bps"] == sum((q for p, q in asks if (p - mid) / mid * 1e4 <= bps), 0.0)


def _python_book_features(bids: Levels, asks: Levels, cfg: StateConfig, row: dict[str, Any]) -> None:
    """The features as the Python engine defined them before the native kernel took them over."""
    bid_px, bid_sz, ask_px, ask_sz, imbalance, bands = book_column_names(cfg)
    pb, qb = bids[0]
    pa_, qa = asks[0]
    mid = (pb + pa_) / 2
    microprice = (qb * pa_ + qa * pb) / (qb + qa)
    row.update(
        mid=mid,
        spread=pa_ - pb,
        rel_spread=(pa_ - pb) / mid,
        microprice=microprice,
        microprice_deviation=microprice - mid,
    )
    cum_b = cum_a = 0.0
    cum_bids: list[float] = []
    cum_asks: list[float] = []
    for i in range(cfg.max_levels):
        if i < len(bids):
            row[bid_px[i]], row[bid_sz[i]] = bids[i]
            cum_b += bids[i][1]
            cum_bids.append(cum_b)
        else:
            row[bid_px[i]] = row[bid_sz[i]] = None
        if i < len(asks):
            row[ask_px[i]], row[ask_sz[i]] = asks[i]
            cum_a += asks[i][1]
            cum_asks.append(cum_a)
        else:
            row[ask_px[i]] = row[ask_sz[i]] = None
        row[imbalance[i]] = (cum_b - cum_a) / (cum_b + cum_a)
    bid_bps = [(mid - level[0]) / mid * 1e4 for level in bids]
    ask_bps = [(level[0] - mid) / mid * 1e4 for level in asks]
    for bps, bid_name, ask_name in bands:
        k = bisect_right(bid_bps, bps)
        row[bid_name] = cum_bids[k - 1] if k else 0.0
        k = bisect_right(ask_bps, bps)
        row[ask_name] = cum_asks[k - 1] if k else 0.0
    row.update(total_bid_volume=cum_b, total_ask_volume=cum_a, bid_levels=len(bids), ask_levels=len(asks))
    if cfg.keep_raw_arrays:
        row["bids_raw"] = [[p, q] for p, q in bids]
        row["asks_raw"] = [[p, q] for p, q in asks]


def _bits(row: dict[str, Any]) -> list[tuple[str, object]]:
    return [(key, struct.pack("<d", value) if type(value) is float else value) for key, value in row.items()]


_sizes = st.floats(1e-8, 1e6)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(1e-4, 1e7),
    st.lists(st.tuples(st.floats(1e-9, 0.05), _sizes), min_size=1, max_size=12),
    st.lists(st.tuples(st.floats(1e-9, 0.05), _sizes), min_size=1, max_size=12),
    st.integers(1, 12),
    st.lists(st.floats(0.1, 500), min_size=1, max_size=4, unique_by=fmt_bps),
    st.booleans(),
)
def test_the_native_columns_are_the_python_definition_bit_for_bit(
    mid: float,
    bid_steps: list[tuple[float, float]],
    ask_steps: list[tuple[float, float]],
    levels: int,
    bands: list[float],
    keep_raw: bool,
) -> None:
    bids, asks, price = [], [], mid
    for step, size in bid_steps:
        price -= price * step
        bids.append((price, size))
    price = mid
    for step, size in ask_steps:
        price += price * step
        asks.append((price, size))
    assume(len({p for p, _ in bids}) == len(bids) and len({p for p, _ in asks}) == len(asks))
    cfg = StateConfig(max_levels=levels, ofi_levels=1, bands_bps=tuple(bands), keep_raw_arrays=keep_raw)
    sides = Levels.from_pairs(bids[:levels]), Levels.from_pairs(asks[:levels])  # as the engine keeps them
    row = book_row(*sides, cfg)
    python: dict[str, Any] = {}
    _python_book_features(*sides, cfg, python)
    assert _bits({key: row[key] for key in python}) == _bits(python)
