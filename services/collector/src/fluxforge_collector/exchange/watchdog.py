"""Stalled connections failed on purpose, so their watchers reconnect.

A connection that received no frame at all (data or the exchange's pings,
which Binance sends every 20 s) for `stall_timeout_s` is failed with ccxt's
`RequestTimeout`, which every watcher on it takes as a disconnect.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fluxforge_collector.exchange.stats import ExchangeStats

log = logging.getLogger("fluxforge.collector.exchange")


async def fail_stalled_connections(
    exchange: Any, stall_timeout_s: float, stats: ExchangeStats, name: str
) -> None:
    """Look at every ccxt connection of `exchange` until cancelled; `name` is the source's, for the log."""
    import ccxt.pro as ccxtpro

    stall_ms = stall_timeout_s * 1000
    period = min(1.0, stall_timeout_s / 4)
    while True:
        await asyncio.sleep(period)
        now = exchange.milliseconds()
        for client in list((exchange.clients or {}).values()):
            if client.closed() or not client.isConnected:
                continue
            last = client.last_message_at or client.connectionEstablished
            if last is not None and now - last > stall_ms:
                stats.stalls += 1
                log.warning(
                    "%s: no frame from %s for %.1f s: stalled, reconnecting",
                    name,
                    client.url,
                    (now - last) / 1000,
                )
                client.on_error(ccxtpro.RequestTimeout(f"no frame for {stall_timeout_s} s: stalled feed"))
