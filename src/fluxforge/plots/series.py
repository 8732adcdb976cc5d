"""What the panels of `fluxforge plot` show, read through the Python API: one `Series` per exchange:symbol."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass, field
from typing import Final

from fluxforge.api.dataset import Dataset

# (panel title, the series drawn in it); the rv_/trade_volume_ column is picked from what the table has.
PANELS: Final = (
    ("mid and microprice", ("mid", "microprice")),
    ("1-minute bars", ("candles",)),
    ("spread", ("spread",)),
    ("L1 imbalance", ("imbalance_l1",)),
    ("OFI (interval, cumulative)", ("ofi_l1", "ofi_cum")),
    ("realized volatility", ("rv",)),
    ("trade volume", ("trade_volume",)),
)
CANDLE_S: Final = 60


@dataclass
class Series:
    """One symbol's HF columns and 1-minute candles, aligned on UTC times."""

    exchange: str
    symbol: str
    ts: list[dt.datetime]
    values: dict[str, list[float | None]]
    names: dict[str, str]  # series key -> the column it came from (rv -> rv_60s)
    candle_ts: list[dt.datetime] = field(default_factory=list)
    candles: dict[str, list[float | None]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.exchange}:{self.symbol}"


def load_series(
    dataset: Dataset,
    symbols: list[str],
    *,
    exchange: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> list[Series]:
    """The panels' data for `symbols` (on `exchange`, or every exchange that has them); ValueError when
    nothing matches, naming what exists."""
    hf = dataset.hf(exchange=exchange, symbol=symbols, start=start, end=end)
    nothing = f"no HF rows for {symbols} on {exchange or 'any exchange'} in [{start}, {end})"
    if not hf.files:
        raise ValueError(nothing)
    names = hf.to_dataset().schema.names
    rv = _widest(names, "rv_")
    volume = _narrowest(names, "trade_volume_")
    columns = [
        "exchange",
        "symbol",
        "ts",
        "mid",
        "microprice",
        "spread",
        "imbalance_l1",
        "ofi_l1",
        rv,
        volume,
    ]
    rows = dataset.hf(exchange=exchange, symbol=symbols, start=start, end=end, columns=columns).to_arrow()
    if rows.num_rows == 0:
        raise ValueError(nothing)
    rows = rows.sort_by([("exchange", "ascending"), ("symbol", "ascending"), ("ts", "ascending")])
    bars = dataset.bars(
        exchange=exchange,
        symbol=symbols,
        start=start,
        end=end,
        duration=CANDLE_S,
        columns=["exchange", "symbol", "ts", "open", "high", "low", "close"],
    ).to_arrow()
    bars = bars.sort_by([("exchange", "ascending"), ("symbol", "ascending"), ("ts", "ascending")])
    found: list[Series] = []
    hf_rows = rows.to_pylist()
    bar_rows = bars.to_pylist()
    for (ex, sym), group in itertools.groupby(hf_rows, key=lambda r: (r["exchange"], r["symbol"])):
        items = list(group)
        ofi = [r["ofi_l1"] for r in items]
        values = {
            "mid": [r["mid"] for r in items],
            "microprice": [r["microprice"] for r in items],
            "spread": [r["spread"] for r in items],
            "imbalance_l1": [r["imbalance_l1"] for r in items],
            "ofi_l1": ofi,
            "ofi_cum": list(itertools.accumulate(v or 0.0 for v in ofi)),
            "rv": [r[rv] for r in items],
            "trade_volume": [r[volume] for r in items],
        }
        series = Series(
            ex,
            sym,
            [r["ts"] for r in items],
            values,
            {"rv": rv, "trade_volume": volume, "ofi_cum": "cumulative ofi_l1"},
        )
        candles = [b for b in bar_rows if (b["exchange"], b["symbol"]) == (ex, sym)]
        series.candle_ts = [b["ts"] for b in candles]
        series.candles = {k: [b[k] for b in candles] for k in ("open", "high", "low", "close")}
        found.append(series)
    return found


def _seconds(name: str) -> float:
    match = re.search(r"_([\d.]+)s$", name)
    return float(match.group(1)) if match else 0.0


def _widest(names: list[str], prefix: str) -> str:
    return max((n for n in names if n.startswith(prefix)), key=_seconds)


def _narrowest(names: list[str], prefix: str) -> str:
    return min((n for n in names if n.startswith(prefix)), key=_seconds)


def in_bps(series: Series) -> Series:
    """`series` with prices as basis points from its first mid, so several symbols share one axis."""
    base = next((v for v in series.values["mid"] if v), None)
    if base is None:
        return series

    def bps(values: list[float | None]) -> list[float | None]:
        return [None if v is None else (v / base - 1) * 1e4 for v in values]

    values = dict(series.values, mid=bps(series.values["mid"]), microprice=bps(series.values["microprice"]))
    candles = {k: bps(v) for k, v in series.candles.items()}
    return Series(series.exchange, series.symbol, series.ts, values, series.names, series.candle_ts, candles)
