"""Rolling windows over per-grid-interval flow summaries.

The engine never keeps raw updates: each interval `[t - I, t)` is folded into
an `IntervalFlows` as updates arrive (O(1) each, in the native kernel:
`libs/fluxforge_native/src/flows.rs`), and rolling windows are the
last `h / I` interval summaries, kept column by column so a window sum is one
`math.fsum` over a slice. State size is bounded by the longest window, never by
run length.

Returns are counted "between consecutive book updates with event time in the
window": the return from the last update before an interval to its first update
is kept apart (`r2_cross`) so a window can drop the one whose earlier update
lies outside it.
"""

from __future__ import annotations

import math
from typing import Any

from fluxforge_native import IntervalFlows


class RollingWindows:
    """The last `capacity` closed intervals, column by column."""

    __slots__ = (
        "buy",
        "capacity",
        "depth_m2",
        "depth_mean",
        "n",
        "n_tight",
        "ofi1",
        "r2_cross",
        "r2_in",
        "sell",
    )

    _COLUMNS = ("buy", "depth_m2", "depth_mean", "n", "n_tight", "ofi1", "r2_cross", "r2_in", "sell")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.n: list[int] = []
        self.r2_in: list[float] = []
        self.r2_cross: list[float] = []
        self.ofi1: list[float] = []
        self.buy: list[float] = []
        self.sell: list[float] = []
        self.n_tight: list[int] = []
        self.depth_mean: list[float] = []
        self.depth_m2: list[float] = []

    def push(self, flows: IntervalFlows) -> None:
        self.n.append(flows.n)
        self.r2_in.append(flows.r2_in)
        self.r2_cross.append(flows.r2_cross)
        self.ofi1.append(flows.ofi[0])
        self.buy.append(flows.buy_qty)
        self.sell.append(flows.sell_qty)
        self.n_tight.append(flows.n_tight)
        self.depth_mean.append(flows.depth_mean)
        self.depth_m2.append(flows.depth_m2)
        if len(self.n) > self.capacity:
            for name in self._COLUMNS:
                del getattr(self, name)[0]

    def realized_vol(self, k: int) -> float:
        """sqrt of summed squared returns between consecutive updates inside the last k intervals."""
        counts = self.n[-k:]
        cross = self.r2_cross[-k:]
        for i, count in enumerate(counts):
            if count:
                # The first update in the window has its predecessor outside it.
                return math.sqrt(math.fsum(self.r2_in[-k:]) + math.fsum(cross[i + 1 :]))
        return 0.0

    def ofi_sum(self, k: int) -> float:
        return math.fsum(self.ofi1[-k:])

    def trade_flow(self, k: int) -> tuple[float, float]:
        """(trade flow imbalance, traded volume) over the last k intervals."""
        buy = math.fsum(self.buy[-k:])
        sell = math.fsum(self.sell[-k:])
        volume = math.fsum(self.buy[-k:] + self.sell[-k:])
        if volume > 0:
            return (buy - sell) / (buy + sell), volume
        return 0.0, volume

    def depth_variance(self, k: int) -> float | None:
        """Population variance of total depth after each update, merging per-interval Welford states."""
        count = 0
        mean = m2 = 0.0
        for nb, mb, m2b in zip(self.n[-k:], self.depth_mean[-k:], self.depth_m2[-k:], strict=True):
            if nb and not count:
                count, mean, m2 = nb, mb, m2b
            elif nb:
                total = count + nb
                delta = mb - mean
                mean += delta * nb / total
                m2 += m2b + delta * delta * count * nb / total
                count = total
        return m2 / count if count else None

    def tight_fraction(self, k: int) -> float | None:
        count = sum(self.n[-k:])
        return sum(self.n_tight[-k:]) / count if count else None

    def to_state(self) -> list[list[Any]]:
        return [getattr(self, name) for name in self._COLUMNS]

    def load_state(self, values: list[list[Any]]) -> None:
        for name, column in zip(self._COLUMNS, values, strict=True):
            setattr(self, name, list(column))
