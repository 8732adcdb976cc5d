"""Each symbol's feed as the collector reads it: ticks per channel and when its last tick came.

Counted for every source (a live exchange, the simulator, a file), so feed
staleness (seconds since a symbol's last tick, the alert that a feed went
silent) means the same whatever feeds the collector. The intake updates a
`Feed` per accepted tick: one counter and one clock read. A symbol an exchange
source subscribed to is shown before its first tick, stale since the
subscription (`with_subscribed`), so a feed that never starts is seen too.
"""

from __future__ import annotations

import time

from fluxforge_common.dataset.partitioning import Channel
from fluxforge_common.kafka.keys import symbol_key

CHANNELS: tuple[Channel, ...] = ("book", "trade", "ticker")


class Feed:
    """One (exchange, symbol): its Kafka key, ticks read per channel, and when the last one was read."""

    __slots__ = ("exchange", "key", "last", "symbol", "ticks")

    def __init__(self, exchange: str, symbol: str, last: float) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.key = symbol_key(exchange, symbol)  # the key of the symbol's raw batches
        self.ticks: dict[str, int] = dict.fromkeys(CHANNELS, 0)
        self.last = last  # time.monotonic() of the last tick read (or of the subscription)


class Feeds:
    """The feeds a collector has read, by (exchange, symbol)."""

    def __init__(self) -> None:
        self.by_pair: dict[tuple[str, str], Feed] = {}

    def get(self, exchange: str, symbol: str) -> Feed:
        """The symbol's feed, made at its first tick."""
        pair = (exchange, symbol)
        feed = self.by_pair.get(pair)
        if feed is None:
            feed = self.by_pair[pair] = Feed(exchange, symbol, time.monotonic())
        return feed

    def with_subscribed(self, exchange: str, subscribed: dict[str, float]) -> list[Feed]:
        """Every feed, plus an empty one for each subscribed symbol (symbol -> when) without a tick yet."""
        feeds = list(self.by_pair.values())
        feeds += [
            Feed(exchange, symbol, since)
            for symbol, since in subscribed.items()
            if (exchange, symbol) not in self.by_pair
        ]
        return feeds
