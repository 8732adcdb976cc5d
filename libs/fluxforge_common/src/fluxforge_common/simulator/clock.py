"""When a market's events happen: activity regimes, self-excitation and quiet gaps.

Real order flow clusters: one event makes more events likely (a Hawkes process with an
exponential kernel), the background pace changes with the time of day and the
news (activity regimes), and thin markets go silent for seconds (quiet gaps,
which leave empty intervals on a downstream time grid). Event times are drawn
exactly for this intensity (Dassios & Zhao 2013), two logarithms per event.
"""

from __future__ import annotations

import math
import random

# Activity regimes: (probability of being chosen next, mean duration s, intensity multiplier).
_REGIMES = (
    (0.45, 20.0, 1.0),  # normal
    (0.20, 8.0, 2.5),  # active
    (0.25, 15.0, 0.4),  # calm
    (0.10, 5.0, 0.0),  # quiet: no events at all
)
_QUIET = len(_REGIMES) - 1
_QUIET_MIN_S, _QUIET_MAX_S = 2.0, 8.0  # quiet gap durations, uniform; mean matches the table
_INDICES = range(len(_REGIMES))
_CUMULATIVE = tuple(sum(r[0] for r in _REGIMES[: i + 1]) for i in _INDICES)

# Self-excitation: each event adds ALPHA events/s of intensity, decaying with time constant TAU.
TAU_S = 0.25
BRANCHING = 0.5  # expected events directly triggered by one event
_ALPHA = BRANCHING / TAU_S

# Long-run mean of the regime multiplier (time fractions are proportional to chance x duration).
_MEAN_MULTIPLIER = sum(p * d * m for p, d, m in _REGIMES) / sum(p * d for p, d, _ in _REGIMES)


class EventClock:
    """Event times (ms) of one market, with a long-run mean of `rate` events per second."""

    __slots__ = ("_base", "_excess", "_mu", "_regime_end", "_rng", "_start_ms", "_t")

    def __init__(self, rng: random.Random, start_ms: int, rate: float) -> None:
        self._rng = rng
        self._start_ms = start_ms
        # A Hawkes process with background mu and branching ratio n averages mu / (1 - n).
        self._base = rate * (1.0 - BRANCHING) / _MEAN_MULTIPLIER
        self._t = 0.0  # seconds since start
        self._excess = 0.0  # self-excited intensity above the background, events/s
        self._mu = self._base
        self._regime_end = self._duration(0)

    def _duration(self, regime: int) -> float:
        if regime == _QUIET:
            return self._rng.uniform(_QUIET_MIN_S, _QUIET_MAX_S)
        return self._rng.expovariate(1.0 / _REGIMES[regime][1])

    def _switch(self) -> None:
        regime = self._rng.choices(_INDICES, cum_weights=_CUMULATIVE)[0]
        self._mu = self._base * _REGIMES[regime][2]
        if regime == _QUIET:
            self._excess = 0.0  # silence means silence: no echoes of earlier bursts
        self._regime_end += self._duration(regime)

    def next_ms(self) -> int:
        """Advance to the next event and return its time in ms (non-decreasing)."""
        rng = self._rng
        log = math.log
        while True:
            wait = rng.expovariate(self._mu) if self._mu > 0.0 else math.inf
            excess = self._excess
            if excess > 0.0:
                # First arrival of the decaying part mu' = excess * exp(-s / TAU), if any.
                d = 1.0 + log(1.0 - rng.random()) / (excess * TAU_S)
                if d > 0.0:
                    wait = min(wait, -TAU_S * log(d))
            t = self._t
            if t + wait < self._regime_end:
                self._t = t + wait
                self._excess = excess * math.exp(-wait / TAU_S) + _ALPHA
                return self._start_ms + int(self._t * 1000.0)
            self._excess = excess * math.exp((t - self._regime_end) / TAU_S)
            self._t = self._regime_end
            self._switch()
