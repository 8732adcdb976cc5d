"""Exponential backoff with jitter: the one wait between retries of the exchange watchers and the drainer.

Each wait is `initial * 2**n`, capped at `maximum`, times a random 50-100%,
so clients that failed together do not all come back at the same moment.
"""

from __future__ import annotations

import random


class Backoff:
    """`next()` is the wait before the next attempt; `reset()` after a success starts over from `initial`."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial, self.maximum = initial, maximum
        self.attempts = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        step = min(self.maximum, self.initial * float(2 ** min(self.attempts, 30)))
        self.attempts += 1
        return step * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        self.attempts = 0
