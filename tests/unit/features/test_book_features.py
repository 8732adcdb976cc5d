"""Static book features against values worked out by hand."""

from __future__ import annotations

import pytest
from fluxforge_common.config import StateConfig
from fluxforge_common.config.state import fmt_bps
from fluxforge_common.features.book import BookColumnNames, book_features
from fluxforge_native import Levels
from hypothesis import given, settings
from hypothesis import strategies as st

BIDS = Levels.from_pairs([(100.0, 2.0), (99.99, 1.0), (99.5, 4.0)])
ASKS = Levels.from_pairs([(100.02, 1.0), (100.03, 3.0)])


@pytest.fixture
def row() -> dict[str, object]:
    out: dict[str, object] = {}
    book_features(
        BIDS, ASKS, BookColumnNames(StateConfig(max_levels=3, ofi_levels=1, bands_bps=(1, 2, 100))), out
    )
    return out


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
    out: dict[str, object] = {}
    book_features(BIDS, ASKS, BookColumnNames(StateConfig(keep_raw_arrays=True)), out)
    assert out["bids_raw"] == [[100.0, 2.0], [99.99, 1.0], [99.5, 4.0]]
    plain: dict[str, object] = {}
    book_features(BIDS, ASKS, BookColumnNames(StateConfig()), plain)
    assert "bids_raw" not in plain


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
    row: dict[str, object] = {}
    book_features(Levels.from_pairs(bids), Levels.from_pairs(asks), BookColumnNames(cfg), row)
    mid = (bids[0][0] + asks[0][0]) / 2
    for bps in cfg.bands_bps:
        assert row[f"depth_bid_{bps:g}bps"] == sum((q for p, q in bids if (mid - p) / mid * 1e4 <= bps), 0.0)
        assert row[f"depth_ask_{bps:g}bps"] == sum((q for p, q in asks if (p - mid) / mid * 1e4 <= bps), 0.0)
