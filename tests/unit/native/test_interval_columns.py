"""An HF row's interval columns written natively: the values the Python code it replaced wrote
(`python_columns`, kept as the oracle)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fluxforge_common.config import StateConfig
from fluxforge_common.features.hf_columns import book_column_names
from fluxforge_common.features.schema import hf_cell_kinds
from fluxforge_native import HfColumns, HfRows, IntervalFlows, Levels, RollingWindows
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.books import BookFolder

OFI = ["ofi_l1", "ofi_l2"]
HORIZONS = [(1, "rv_1s", "ofi_cum_1s", "tfi_1s", "trade_volume_1s"), (4, "rv_4s", "ofi_cum_4s", "tfi_4s", "trade_volume_4s")]  # fmt: skip
REGIME = (3, "depth_var_3s", "tight_spread_frac_3s")
# A config of those column names (its grid interval aside: the windows' lengths are set above).
CFG = StateConfig(ofi_levels=2, horizons=(1, 4), regime_window=3)
# Grid intervals whose division is not a multiplication by the reciprocal (100 ms) as well as those
# whose is (250 ms, 1 s).
INTERVAL_MS = st.sampled_from([10, 100, 250, 1000, 3_600_000]) | st.integers(1, 3_600_000)


def python_columns(
    interval_ms: int,
    row: dict[str, Any],
    t: int,
    last_book_ms: int | None,
    f: IntervalFlows,
    windows: RollingWindows,
    mid: float | None,
    prev_mid: float | None,
    prev_velocity: float | None,
) -> float | None:
    interval_s = interval_ms / 1000
    row["last_book_ts"] = last_book_ms
    row["book_age_ms"] = None if last_book_ms is None else t - last_book_ms
    row["update_count"] = f.n
    row["trade_count"] = f.n_trades
    for name, value in zip(OFI, f.ofi, strict=True):
        row[name] = value
    row["mlofi"] = f.mlofi()
    velocity = None
    if mid is not None and prev_mid is not None:
        row["log_return"] = math.log(mid / prev_mid)
        velocity = (mid - prev_mid) / interval_s
    else:
        row["log_return"] = None
    row["mid_velocity"] = velocity
    row["mid_acceleration"] = (
        None if velocity is None or prev_velocity is None else (velocity - prev_velocity) / interval_s
    )
    for k, rv_name, ofi_name, tfi_name, volume_name in HORIZONS:
        row[rv_name] = windows.realized_vol(k)
        row[ofi_name] = windows.ofi_sum(k)
        row[tfi_name], row[volume_name] = windows.trade_flow(k)
    k, var_name, tight_name = REGIME
    row[var_name] = windows.depth_variance(k)
    row[tight_name] = windows.tight_fraction(k)
    day, ms_of_day = divmod(t, 86_400_000)
    row["hour"] = ms_of_day // 3_600_000
    row["minute"] = ms_of_day // 60_000 % 60
    row["day_of_week"] = (day + 3) % 7
    row["is_weekend"] = row["day_of_week"] >= 5
    return velocity


PRICE = st.floats(1e-3, 1e6)
BOOK = st.tuples(st.tuples(PRICE, PRICE), st.tuples(PRICE, PRICE))
# Per interval: its books (bid and ask as (price, size), the bid cut below the ask), its trades
# and where its mid lies; None for an interval without a book yet.
INTERVAL = st.tuples(
    st.lists(BOOK, max_size=3),
    st.lists(st.tuples(PRICE, PRICE, st.booleans()), max_size=3),
    st.none() | PRICE,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(INTERVAL, min_size=1, max_size=12),
    st.integers(0, 4_000_000_000_000),
    st.none() | st.integers(0, 10**6),
    INTERVAL_MS,
)
def test_the_row_is_what_the_python_code_wrote(
    intervals: list[tuple[Any, Any, float | None]], start_ms: int, book_lag: int | None, interval_ms: int
) -> None:
    columns = HfColumns(
        hf_cell_kinds(CFG), book_column_names(CFG), (OFI, HORIZONS, REGIME, interval_ms), False
    )
    windows = RollingWindows(4)
    native: list[dict[str, Any]] = []
    python: list[dict[str, Any]] = []
    prev_mid = prev_velocity = None
    for k, (books, trades, mid) in enumerate(intervals):
        flows = IntervalFlows(len(OFI))
        folder = BookFolder(flows, 0.001)
        for (bid, bid_size), (ask, ask_size) in books:
            low, high = sorted((bid, ask + bid + 1e-3))
            folder.fold(Levels.from_pairs([(low, bid_size)]), Levels.from_pairs([(high, ask_size)]))
        for price, amount, buy in trades:
            flows.on_trade(price, amount, buy)
        windows.push(flows)
        t = start_ms + k * interval_ms
        last_book_ms = None if book_lag is None else t - book_lag
        rows = HfRows()
        velocity = rows.write(
            columns, "ex", "S/USD", t, None, None, last_book_ms, flows, windows, mid, prev_mid, prev_velocity
        )
        expected: dict[str, Any] = {}
        assert velocity == python_columns(
            interval_ms, expected, t, last_book_ms, flows, windows, mid, prev_mid, prev_velocity
        )
        native.append({key: rows[0][key] for key in expected})
        python.append(expected)
        prev_mid, prev_velocity = mid, velocity
    assert repr(native) == repr(python)  # repr tells -0.0 from 0.0


def test_flows_of_other_ofi_levels_are_refused_and_leave_no_row() -> None:
    columns = HfColumns(hf_cell_kinds(CFG), book_column_names(CFG), (OFI, HORIZONS, REGIME, 1000), False)
    flows = IntervalFlows(len(OFI) + 1)
    windows = RollingWindows(4)
    windows.push(flows)
    rows = HfRows()
    with pytest.raises(ValueError, match="3 OFI levels, the row 2"):
        rows.write(columns, "ex", "S/USD", 0, None, None, None, flows, windows, None, None, None)
    assert len(rows) == 0 and rows.read_rows() is not None and len(rows.read_rows() or []) == 0
