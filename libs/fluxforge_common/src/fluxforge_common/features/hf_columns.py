"""Where each feature of an HF row goes (docs/design.md "Feature contracts"), under a config.

The features are defined natively (`fluxforge_native.HfColumns`, which writes them into a row's
cells): the book's as it stands at the grid point, computed only when a row is emitted, not per
update, and the interval's. This module names their columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fluxforge_native import HfColumns

from fluxforge_common.config.state import StateConfig, fmt_bps, fmt_window
from fluxforge_common.features.schema import hf_cell_kinds

if TYPE_CHECKING:
    from fluxforge_native._native import BookNames, IntervalNames


def book_column_names(cfg: StateConfig) -> BookNames:
    """Per level the bid price, bid size, ask price, ask size and imbalance columns; the bands as
    (bps, bid depth column, ask depth column)."""
    levels = range(1, cfg.max_levels + 1)
    return (
        [f"bid_px_{i}" for i in levels],
        [f"bid_sz_{i}" for i in levels],
        [f"ask_px_{i}" for i in levels],
        [f"ask_sz_{i}" for i in levels],
        [f"imbalance_l{i}" for i in levels],
        [(bps, f"depth_bid_{fmt_bps(bps)}", f"depth_ask_{fmt_bps(bps)}") for bps in cfg.bands_bps],
    )


def interval_column_names(cfg: StateConfig) -> IntervalNames:
    """The OFI levels' columns; per horizon its length in grid intervals and its columns (rv,
    ofi_cum, tfi, trade_volume); the regime window's length and columns; the grid interval."""
    step = cfg.interval_ms
    horizons = [
        (
            h * 1000 // step,
            f"rv_{fmt_window(h)}",
            f"ofi_cum_{fmt_window(h)}",
            f"tfi_{fmt_window(h)}",
            f"trade_volume_{fmt_window(h)}",
        )
        for h in cfg.horizons
    ]
    window = fmt_window(cfg.regime_window)
    regime = (cfg.regime_window * 1000 // step, f"depth_var_{window}", f"tight_spread_frac_{window}")
    return [f"ofi_l{m}" for m in range(1, cfg.ofi_levels + 1)], horizons, regime, step


def hf_columns(cfg: StateConfig) -> HfColumns:
    return HfColumns(
        hf_cell_kinds(cfg), book_column_names(cfg), interval_column_names(cfg), cfg.keep_raw_arrays
    )
