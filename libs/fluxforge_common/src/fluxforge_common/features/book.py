"""Static features of one order-book snapshot (DESIGN.md "Feature definitions").

Computed only when an HF row is emitted, not per update: the row describes the
book as it stands at the grid point, so per-update work stays minimal.
"""

from __future__ import annotations

from typing import Any

from fluxforge_common.config.state import StateConfig
from fluxforge_common.features.schema import fmt_bps
from fluxforge_common.messages.envelopes import Level


def null_book_features(cfg: StateConfig, row: dict[str, Any]) -> None:
    """Fill the book columns with nulls (a symbol whose first event was not a book)."""
    for side in ("bid", "ask"):
        for i in range(1, cfg.max_levels + 1):
            row[f"{side}_px_{i}"] = None
            row[f"{side}_sz_{i}"] = None
    for name in ("mid", "spread", "rel_spread", "microprice", "microprice_deviation"):
        row[name] = None
    for i in range(1, cfg.max_levels + 1):
        row[f"imbalance_l{i}"] = None
    for bps in cfg.bands_bps:
        row[f"depth_bid_{fmt_bps(bps)}"] = None
        row[f"depth_ask_{fmt_bps(bps)}"] = None
    row["total_bid_volume"] = row["total_ask_volume"] = None
    row["bid_levels"] = row["ask_levels"] = 0
    if cfg.keep_raw_arrays:
        row["bids_raw"] = row["asks_raw"] = None


def book_features(bids: list[Level], asks: list[Level], cfg: StateConfig, row: dict[str, Any]) -> None:
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
    for i in range(cfg.max_levels):
        n = i + 1
        if i < n_bids:
            p, q = bids[i]
            row[f"bid_px_{n}"] = p
            row[f"bid_sz_{n}"] = q
            cum_b += q
        else:
            row[f"bid_px_{n}"] = row[f"bid_sz_{n}"] = None
        if i < n_asks:
            p, q = asks[i]
            row[f"ask_px_{n}"] = p
            row[f"ask_sz_{n}"] = q
            cum_a += q
        else:
            row[f"ask_px_{n}"] = row[f"ask_sz_{n}"] = None
        row[f"imbalance_l{n}"] = (cum_b - cum_a) / (cum_b + cum_a)
    for bps in cfg.bands_bps:
        label = fmt_bps(bps)
        row[f"depth_bid_{label}"] = sum((q for p, q in bids if (mid - p) / mid * 1e4 <= bps), 0.0)
        row[f"depth_ask_{label}"] = sum((q for p, q in asks if (p - mid) / mid * 1e4 <= bps), 0.0)
    row["total_bid_volume"] = cum_b
    row["total_ask_volume"] = cum_a
    row["bid_levels"] = n_bids
    row["ask_levels"] = n_asks
    if cfg.keep_raw_arrays:
        row["bids_raw"] = [[p, q] for p, q in bids]
        row["asks_raw"] = [[p, q] for p, q in asks]
