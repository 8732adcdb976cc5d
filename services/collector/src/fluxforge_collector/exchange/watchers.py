"""An exchange source's watch loops: one per channel and group of symbols, each failing and recovering alone.

A group uses ccxt.pro's multi-symbol method where the exchange has it
(`watch_order_book_for_symbols`, `watch_trades_for_symbols`, `watch_tickers`),
one watcher per symbol where it does not. A watcher that fails waits
(`Backoff` from `reconnect_initial_s` to `reconnect_max_s`; a 429/418 at
least its `Retry-After`) and watches again; ccxt reconnects and resubscribes,
and books start over from a snapshot. A delivery resets the backoff. A book
gap is resynchronised without the watcher (`ccxt_resync`: that symbol alone);
one that ccxt raises itself fails the watch and is resynchronised at once the
first time. A trade watch that fails and delivers again has its symbols'
missed trades backfilled (`backfill`). A multi-symbol watch that fails
`split_after_failures` times within `SPLIT_WINDOW_S` (for reasons other than
disconnects and gaps: a refused snapshot, a 5xx) is split into one watcher
per symbol, so one bad symbol does not stop the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fluxforge_collector.exchange.errors import brief, retry_delay
from fluxforge_collector.exchange.options import watch_params
from fluxforge_collector.exchange.stats import WatcherRecovery
from fluxforge_collector.exchange.stopping import STOPPED

if TYPE_CHECKING:
    from fluxforge_collector.exchange.source import ExchangeSource

log = logging.getLogger("fluxforge.collector.exchange")

# A multi-symbol watch failing `split_after_failures` times within this many seconds is split.
SPLIT_WINDOW_S = 120.0
# The `has` entry of ccxt.pro's multi-symbol method of each channel.
MULTI_SYMBOL_METHODS = {
    "book": "watchOrderBookForSymbols",
    "trade": "watchTradesForSymbols",
    "ticker": "watchTickers",
}


def channel_groups(exchange: Any, channel: str, symbols: list[str], size: int) -> list[list[str]]:
    """The symbols of each watcher of `channel`: groups of `size`, or one each without a multi-symbol method."""
    if not exchange.has.get(MULTI_SYMBOL_METHODS[channel]):
        return [[s] for s in symbols]
    return [symbols[i : i + size] for i in range(0, len(symbols), size)]


def watch_call(exchange: Any, channel: str, symbols: list[str]) -> Callable[[], Awaitable[Any]]:
    """The ccxt.pro call a watcher of `channel` makes for `symbols`, again after each delivery."""
    one = len(symbols) == 1
    if channel == "book":
        if one and not exchange.has.get("watchOrderBookForSymbols"):
            return lambda: exchange.watch_order_book(symbols[0])
        return lambda: exchange.watch_order_book_for_symbols(symbols)
    if channel == "trade":
        params = watch_params(exchange.id, channel)
        if one and not exchange.has.get("watchTradesForSymbols"):
            return lambda: exchange.watch_trades(symbols[0], None, None, params)
        return lambda: exchange.watch_trades_for_symbols(symbols, None, None, params)
    if one and not exchange.has.get("watchTickers"):
        return lambda: exchange.watch_ticker(symbols[0])
    return lambda: exchange.watch_tickers(symbols)


def symbols_in(exc: BaseException, symbols: list[str]) -> list[str]:
    """The symbols an error names (ccxt names the symbol whose book had a gap)."""
    text = f" {exc} "
    named = [s for s in symbols if f" {s} " in text]
    return named or (symbols if len(symbols) == 1 else ["(unnamed)"])


async def watch(source: ExchangeSource, channel: str, symbols: list[str]) -> None:
    """Watch `channel` of `symbols` and publish each delivery, until the source stops (or the watch splits)."""
    import ccxt.pro as ccxtpro

    exchange, config, stats, stop = source.exchange, source.config, source.stats, source.stop_signal
    one = len(symbols) == 1
    call = watch_call(exchange, channel, symbols)
    emit = source.emitter(channel)
    label = symbols[0] if one else f"{len(symbols)} symbols"
    backoff = source.backoff()
    failed_at: float | None = None
    failure = ""
    failures: list[float] = []  # times of recent failures other than disconnects and gaps
    while not stop.is_set:
        try:
            result = await stop.wait(call())
        except ccxtpro.InvalidNonce as exc:  # a sequence gap (ccxt's ChecksumError is one)
            error = stats.count_error(exc)
            for symbol in symbols_in(exc, symbols):
                stats.gaps[symbol] += 1
            log.warning("%s: %s book gap (%s): resynchronising", source.name, label, brief(exc))
            delay = 0.0 if backoff.attempts == 0 else backoff.next()
            backoff.attempts = max(backoff.attempts, 1)
        except Exception as exc:
            error = stats.count_error(exc)
            delay = retry_delay(exc, backoff, exchange, stats)
            if channel == "trade":  # trades may be missed until the watch delivers again
                source.on_trades_interrupted(symbols)
            if type(exc) in (ccxtpro.NetworkError, ccxtpro.RequestTimeout):  # the connection failed
                stats.reconnects += 1
                log.warning("%s: %s %s: %s; again in %.2f s", source.name, channel, label, brief(exc), delay)
            else:  # a request failed (5xx, 429, 4xx...): possibly one symbol's fault
                log.error(
                    "%s: %s %s failed (%s); again in %.2f s", source.name, channel, label, brief(exc), delay
                )
                now = time.monotonic()
                failures = [t for t in failures if t > now - SPLIT_WINDOW_S] + [now]
            if not one and len(failures) >= config.split_after_failures:
                stats.splits += 1
                log.warning("%s: watching %s of %s one by one", source.name, channel, label)
                for symbol in symbols:
                    source.spawn(channel, [symbol])
                return
        else:
            if result is STOPPED:
                return
            recv = int(source.clock() * 1000)
            await emit(result, recv)
            if failed_at is not None:
                if channel == "trade":
                    source.on_trades_resumed(symbols)
                seconds = time.monotonic() - failed_at
                stats.recoveries.append(WatcherRecovery(channel, label, failure, seconds, time.monotonic()))
                log.info("%s: %s %s recovered in %.2f s", source.name, channel, label, seconds)
                failed_at = None
            backoff.reset()
            continue
        if failed_at is None:
            failed_at, failure = time.monotonic(), error
        if delay and await stop.wait(asyncio.sleep(delay)) is STOPPED:
            return
