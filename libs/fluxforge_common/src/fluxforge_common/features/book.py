"""Static features of one order-book snapshot (docs/design.md "Feature contracts").

Computed only when an HF row is emitted, not per update: the row describes the
book as it stands at the grid point, so per-update work stays minimal. Column
names are built once per config (`BookColumnNames`), not per row, and interned
(`sys.intern`), as the writer's column names are: the writer then finds a row's
values by the keys' identity instead of comparing their text.
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from typing import Any

from fluxforge_native import Levels

from fluxforge_common.config.state import StateConfig, fmt_bps


class BookColumnNames:
    __slots__ = ("ask_px", "ask_sz", "bands", "bid_px", "bid_sz", "imbalance", "keep_raw", "levels")

    def __init__(self, cfg: StateConfig) -> None:
        levels = range(1, cfg.max_levels + 1)
        self.levels = cfg.max_levels
        self.bid_px = [sys.intern(f"bid_px_{i}") for i in levels]
        self.bid_sz = [sys.intern(f"bid_sz_{i}") for i in levels]
        self.ask_px = [sys.intern(f"ask_px_{i}") for i in levels]
        self.ask_sz = [sys.intern(f"ask_sz_{i}") for i in levels]
        self.imbalance = [sys.intern(f"imbalance_l{i}") for i in levels]
        self.bands = [
            (bps, sys.intern(f"depth_bid_{fmt_bps(bps)}"), sys.intern(f"depth_ask_{fmt_bps(bps)}"))
            for bps in cfg.bands_bps
        ]
        self.keep_raw = cfg.keep_raw_arrays


def null_book_features(names: BookColumnNames, row: dict[str, Any]) -> None:
    """Fill the book columns with nulls (a symbol whose first event was not a book)."""
    for key in (*names.bid_px, *names.bid_sz, *names.ask_px, *names.ask_sz, *names.imbalance):
        row[key] = None
    for name in ("mid", "spread", "rel_spread", "microprice", "microprice_deviation"):
        row[name] = None
    for _, bid_name, ask_name in names.bands:
        row[bid_name] = row[ask_name] = None
    row["total_bid_volume"] = row["total_ask_volume"] = None
    row["bid_levels"] = row["ask_levels"] = 0
    if names.keep_raw:
        row["bids_raw"] = row["asks_raw"] = None


def book_features(bids: Levels, asks: Levels, names: BookColumnNames, row: dict[str, Any]) -> None:
    """Write the static features of a non-empty, uncrossed book into `row`."""
    pb, qb = bids[0]
    pa_, qa = asks[0]
    mid = (pb + pa_) / 2
    microprice = (qb * pa_ + qa * pb) / (qb + qa)
    row["mid"] = mid
    row["spread"] = pa_ - pb
    row["rel_spread"] = (pa_ - pb) / mid
    row["microprice"] = microprice
    row["microprice_deviation"] = microprice - mid
    cum_b = cum_a = 0.0
    n_bids, n_asks = len(bids), len(asks)
    cum_bids: list[float] = []
    cum_asks: list[float] = []
    for i in range(names.levels):
        if i < n_bids:
            p, q = bids[i]
            row[names.bid_px[i]] = p
            row[names.bid_sz[i]] = q
            cum_b += q
            cum_bids.append(cum_b)
        else:
            row[names.bid_px[i]] = row[names.bid_sz[i]] = None
        if i < n_asks:
            p, q = asks[i]
            row[names.ask_px[i]] = p
            row[names.ask_sz[i]] = q
            cum_a += q
            cum_asks.append(cum_a)
        else:
            row[names.ask_px[i]] = row[names.ask_sz[i]] = None
        row[names.imbalance[i]] = (cum_b - cum_a) / (cum_b + cum_a)
    # Distance from mid grows level by level, so the levels within a band are a
    # prefix of the side and the band's depth is a cumulative size.
    bid_bps = [(mid - level[0]) / mid * 1e4 for level in bids]
    ask_bps = [(level[0] - mid) / mid * 1e4 for level in asks]
    for bps, bid_name, ask_name in names.bands:
        k = bisect_right(bid_bps, bps)
        row[bid_name] = cum_bids[k - 1] if k else 0.0
        k = bisect_right(ask_bps, bps)
        row[ask_name] = cum_asks[k - 1] if k else 0.0
    row["total_bid_volume"] = cum_b
    row["total_ask_volume"] = cum_a
    row["bid_levels"] = n_bids
    row["ask_levels"] = n_asks
    if names.keep_raw:
        row["bids_raw"] = [[p, q] for p, q in bids]
        row["asks_raw"] = [[p, q] for p, q in asks]
