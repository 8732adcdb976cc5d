"""The latent fair price of one base asset, shared by all its markets.

Books on different venues quote around the same moving price, so BTC/USDT and
BTC/USD move together (up to a basis) as they do on real exchanges. The path
lives on a fixed time grid and is drawn from its own seeded generator, so it
does not depend on how often or by whom it is read: a market's stream stays the
same whichever other symbols are simulated beside it.
"""

from __future__ import annotations

import math
import random

from fluxforge_common.simulator.specs import AssetSpec

GRID_MS = 100
# Volatility regimes: (multiplier of the asset's calm volatility, mean duration in seconds).
_CALM = (1.0, 600.0)
_VOLATILE = (3.0, 90.0)


class FairValue:
    """Geometric random walk with switching calm/volatile regimes, sampled every `GRID_MS`."""

    __slots__ = ("_calm_sigma", "_next_ms", "_price", "_regime_end_ms", "_rng", "_sigma", "_volatile")

    def __init__(self, seed: int, base: str, spec: AssetSpec, start_ms: int) -> None:
        self._rng = random.Random(f"{seed}:fair:{base}")
        self._price = spec.price
        self._calm_sigma = spec.vol_bps * 1e-4 * math.sqrt(GRID_MS / 1000)
        self._volatile = False
        self._sigma = self._calm_sigma
        self._next_ms = start_ms + GRID_MS
        self._regime_end_ms = start_ms + self._regime_ms(_CALM[1])

    def _regime_ms(self, mean_s: float) -> int:
        return int(self._rng.expovariate(1.0 / mean_s) * 1000) + GRID_MS

    def at(self, ts_ms: int) -> float:
        """Fair price at `ts_ms`; times are expected non-decreasing (an earlier time reads the latest)."""
        if ts_ms >= self._next_ms:
            self._advance(ts_ms)
        return self._price

    def _advance(self, ts_ms: int) -> None:
        rng = self._rng
        price = self._price
        t = self._next_ms
        while t <= ts_ms:
            if t >= self._regime_end_ms:
                self._volatile = not self._volatile
                multiplier, mean_s = _VOLATILE if self._volatile else _CALM
                self._sigma = self._calm_sigma * multiplier
                self._regime_end_ms = t + self._regime_ms(mean_s)
            price *= math.exp(self._sigma * rng.gauss())
            t += GRID_MS
        self._price = price
        self._next_ms = t
