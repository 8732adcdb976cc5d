"""The backoff of the exchange watchers and the drainer: doubling, capped, jittered, reset by a success."""

from __future__ import annotations

import random

from fluxforge_collector.backoff import Backoff


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(1))
    delays = [backoff.next() for _ in range(6)]
    for delay, step in zip(delays, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0], strict=True):
        assert step / 2 <= delay <= step
    backoff.reset()
    assert backoff.next() <= 0.5
