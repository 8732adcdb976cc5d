"""Stalled connections failed on purpose, so their watchers reconnect.

A connection that received no frame at all (data or the exchange's pings,
which Binance sends every 20 s) for `stall_timeout_s` is failed with ccxt's
`RequestTimeout`, which every watcher on it takes as a disconnect. It must
look silent on two checks a period apart (`SilentFeeds`): after the event
loop was blocked (a CPU-starved collector), the watchdog's timer fires before
the frames waiting in the socket are handled, so one check alone takes a busy
feed for a silent one and resyncs every book of it for nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fluxforge_collector.exchange.stats import ExchangeStats

log = logging.getLogger("fluxforge.collector.exchange")


class SilentFeeds:
    """Which connections stalled: silent beyond `stall_ms` on two checks in a row, with no frame between."""

    def __init__(self, stall_ms: float) -> None:
        self.stall_ms = stall_ms
        self._suspects: dict[str, float] = {}  # url -> its last frame's time when it first looked silent

    def stalled(self, url: str, last: float | None, now: float) -> bool:
        """Whether the connection to `url`, whose last frame came at `last`, is stalled at `now`."""
        if last is None or now - last <= self.stall_ms:
            self._suspects.pop(url, None)
            return False
        if self._suspects.get(url) == last:
            del self._suspects[url]
            return True
        self._suspects[url] = last
        return False


async def fail_stalled_connections(
    exchange: Any, stall_timeout_s: float, stats: ExchangeStats, name: str
) -> None:
    """Look at every ccxt connection of `exchange` until cancelled; `name` is the source's, for the log."""
    import ccxt.pro as ccxtpro

    feeds = SilentFeeds(stall_timeout_s * 1000)
    period = min(1.0, stall_timeout_s / 4)
    while True:
        await asyncio.sleep(period)
        now = exchange.milliseconds()
        for client in list((exchange.clients or {}).values()):
            if client.closed() or not client.isConnected:
                continue
            last = client.last_message_at or client.connectionEstablished
            if feeds.stalled(client.url, last, now):
                stats.stalls += 1
                log.warning(
                    "%s: no frame from %s for %.1f s: stalled, reconnecting",
                    name,
                    client.url,
                    (now - last) / 1000,
                )
                client.on_error(ccxtpro.RequestTimeout(f"no frame for {stall_timeout_s} s: stalled feed"))
