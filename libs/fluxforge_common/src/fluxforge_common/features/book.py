"""Static features of one order-book snapshot (docs/design.md "Feature contracts").

Computed only when an HF row is emitted, not per update: the row describes the
book as it stands at the grid point, so per-update work stays minimal. They are
defined natively (`fluxforge_native.BookColumns`), writing into the row. Column
names are built once per config (`BookColumnNames`), not per row, and interned
(`sys.intern`), as the writer's column names are: the writer then finds a row's
values by the keys' identity instead of comparing their text.
"""

from __future__ import annotations

import sys
from typing import Any

from fluxforge_native import BookColumns, Levels

from fluxforge_common.config.state import StateConfig, fmt_bps


class BookColumnNames:
    __slots__ = (
        "ask_px",
        "ask_sz",
        "bands",
        "bid_px",
        "bid_sz",
        "columns",
        "imbalance",
        "keep_raw",
        "levels",
    )

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
        self.columns = BookColumns(
            self.bid_px, self.bid_sz, self.ask_px, self.ask_sz, self.imbalance, self.bands, self.keep_raw
        )


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
    """Write the static features of a non-empty, uncrossed book into `row` (natively: `BookColumns`)."""
    names.columns.write(bids, asks, row)
