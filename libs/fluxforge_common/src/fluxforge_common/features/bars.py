"""Bars of one duration, built by folding closed grid intervals into the open bar.

Bar durations are whole multiples of the grid interval (StateConfig checks it),
so a bar is exactly a run of intervals and closes at a grid point.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Final

from fluxforge_native import IntervalFlows

_INF: Final = math.inf


_BAR_ACCUMULATOR_SLOTS: Final = (
    "close",
    "duration_ms",
    "high",
    "low",
    "max_spread",
    "min_spread",
    "n",
    "n_trades",
    "notional",
    "open",
    "r2",
    "sum_imb",
    "sum_ofi",
    "sum_rel",
    "sum_spread",
    "volume",
)


class BarAccumulator:
    """The open bar `[start, start + duration)` of one duration."""

    __slots__ = _BAR_ACCUMULATOR_SLOTS

    _STATE: ClassVar[tuple[str, ...]] = tuple(
        name for name in _BAR_ACCUMULATOR_SLOTS if name != "duration_ms"
    )

    def __init__(self, duration_ms: int) -> None:
        self.duration_ms = duration_ms
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.open = self.close = 0.0
        self.high = -_INF
        self.low = _INF
        self.sum_spread = self.sum_rel = self.sum_imb = self.sum_ofi = self.r2 = 0.0
        self.min_spread = _INF
        self.max_spread = -_INF
        self.n_trades = 0
        self.volume = self.notional = 0.0

    def fold(self, flows: IntervalFlows) -> None:
        if flows.n:
            if self.n:
                self.r2 += flows.r2_in + flows.r2_cross
                self.high = max(self.high, flows.high)
                self.low = min(self.low, flows.low)
                self.min_spread = min(self.min_spread, flows.min_spread)
                self.max_spread = max(self.max_spread, flows.max_spread)
            else:
                self.open = flows.first_mid
                self.r2 = flows.r2_in
                self.high, self.low = flows.high, flows.low
                self.min_spread, self.max_spread = flows.min_spread, flows.max_spread
            self.close = flows.last_mid
            self.n += flows.n
            self.sum_spread += flows.sum_spread
            self.sum_rel += flows.sum_rel
            self.sum_imb += flows.sum_imb
            self.sum_ofi += flows.ofi[0]
        if flows.n_trades:
            self.n_trades += flows.n_trades
            self.volume += flows.buy_qty + flows.sell_qty
            self.notional += flows.notional

    def row(self, exchange: str, symbol: str, end_ms: int, prev_close: float | None) -> dict[str, Any]:
        """The finished bar; an empty one carries the previous close (null before any book)."""
        n = self.n
        o, h, lo, c = (self.open, self.high, self.low, self.close) if n else (prev_close,) * 4
        return {
            "exchange": exchange,
            "symbol": symbol,
            "ts": end_ms - self.duration_ms,
            "duration_s": self.duration_ms // 1000,
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "count": n,
            "mean_spread": self.sum_spread / n if n else None,
            "min_spread": self.min_spread if n else None,
            "max_spread": self.max_spread if n else None,
            "mean_rel_spread": self.sum_rel / n if n else None,
            "mean_imbalance_l1": self.sum_imb / n if n else None,
            "sum_ofi": self.sum_ofi,
            "realized_var": self.r2,
            "trade_count": self.n_trades,
            "trade_volume": self.volume,
            "vwap": self.notional / self.volume if self.n_trades else None,
        }

    def to_state(self) -> list[Any]:
        return [getattr(self, name) for name in self._STATE]

    def load_state(self, values: list[Any]) -> None:
        for name, value in zip(self._STATE, values, strict=True):
            setattr(self, name, value)
