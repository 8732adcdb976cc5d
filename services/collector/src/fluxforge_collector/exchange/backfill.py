"""Each symbol's trades handed on once, in id order; the trades a disconnect or an id gap lost are fetched over REST.

Where trade ids count up by one per symbol (Binance's aggregate trade ids,
Kraken's `trade_id`), a trade whose id jumps past the last one handed on
shows that trades were missed (a disconnect, a frame lost). From that trade
on, the symbol's live trades wait (`held`, in order) while the missing ids
are fetched through ccxt's `fetch_trades`; the fetched ones are handed on
first, marked backfilled, then the held ones. A trade watcher that lost its
connection marks its symbols: any of them still without a live trade when
the watch delivers again is backfilled from its last id to whatever the
exchange has, so an outage is filled even if the symbol trades no more.

How the history is read (`history_for`): Binance from an id (`fromId`:
`aggTrades` for the aggregate trades the collector watches by default,
`historicalTrades`, which needs an API key, for the `trade` stream);
Kraken, and any other exchange with `fetchTrades`, from a time (`since`,
a millisecond before the last trade), with pages of `PAGE` trades until the
gap is filled (an open one up to the oldest live trade it holds), a page
passes its end (the exchange no longer has the rest) or the exchange has no
more; a full page of trades already handed on moves the time on to its
newest. REST calls go through ccxt's rate limiter; a failure that can be
waited out is retried (`RETRIES`); what is still missing after that, or
when the source stops, is counted per symbol as unrecoverable, and so is
every id skipped where nothing can be fetched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fluxforge_collector.backoff import Backoff
from fluxforge_collector.exchange.errors import brief, retry_delay, retryable
from fluxforge_collector.exchange.stats import ExchangeStats
from fluxforge_collector.exchange.stopping import STOPPED, StopSignal

log = logging.getLogger("fluxforge.collector.exchange")

PAGE = 1000  # trades asked for per REST request (Binance's and Kraken's maximum)
MAX_PAGES = 100  # per backfill: 100,000 trades, beyond which the rest is counted unrecoverable
RETRIES = 5  # attempts per page for failures worth waiting out
SINCE_MARGIN_MS = 1  # a trade's time is rounded to the millisecond: ask from one before it


class TradeHistory(Protocol):
    """One page of an exchange's REST trade history after a trade (its id and exchange time)."""

    async def page(self, exchange: Any, symbol: str, after_id: int, after_ts: int | None) -> list[Any]: ...


class FromId:
    """Binance: trades from an id on (`fromId`), from the endpoint whose ids the watched stream carries."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    async def page(self, exchange: Any, symbol: str, after_id: int, after_ts: int | None) -> list[Any]:
        trades: list[Any] = await exchange.fetch_trades(
            symbol, None, PAGE, {**self.params, "fromId": after_id + 1}
        )
        return trades


class FromTime:
    """Trades from a time on (`since`), a millisecond before the last trade's; the overlap is dropped by id.

    Kraken's `since` goes in nanoseconds (as its `last` cursor does): ccxt's unified `since` is sent
    in whole seconds, from which a second of more than a page of trades could not be paged through.
    """

    def __init__(self, *, nanosecond_since: bool = False) -> None:
        self.nanosecond_since = nanosecond_since

    async def page(self, exchange: Any, symbol: str, after_id: int, after_ts: int | None) -> list[Any]:
        if after_ts is None:
            trades: list[Any] = await exchange.fetch_trades(symbol, None, PAGE)
        elif self.nanosecond_since:
            since_ns = (after_ts - SINCE_MARGIN_MS) * 1_000_000
            trades = await exchange.fetch_trades(symbol, None, PAGE, {"since": str(since_ns)})
        else:
            trades = await exchange.fetch_trades(symbol, after_ts - SINCE_MARGIN_MS, PAGE)
        for trade in trades:
            info = trade.get("info")
            if isinstance(info, list) and len(info) > 2 and isinstance(info[2], int | float | str):
                # Kraken's `time` in seconds: ccxt truncates time * 1000, which can fall 1 ms short.
                trade["timestamp"] = round(float(info[2]) * 1000)
        return trades


BINANCE_HISTORICAL = {
    "spot": "publicGetHistoricalTrades",
    "linear": "fapiPublicGetHistoricalTrades",
    "inverse": "dapiPublicGetHistoricalTrades",
}


def history_for(exchange: Any) -> TradeHistory | None:
    """How `exchange`'s missed trades are fetched; None when it has no REST trade history."""
    import ccxt.pro as ccxtpro

    if isinstance(exchange, ccxtpro.binance):
        name, _ = exchange.handle_option_string_and_params({}, "watchTradesForSymbols", "name", "trade")
        if name == "aggTrade":
            return FromId({})
        kind = exchange.options.get("defaultType", "spot")
        kind = {"future": "linear", "swap": "linear", "delivery": "inverse"}.get(kind, kind)
        return FromId({"fetchTradesMethod": BINANCE_HISTORICAL.get(kind, BINANCE_HISTORICAL["spot"])})
    if exchange.has.get("fetchTrades"):
        return FromTime(nanosecond_since=isinstance(exchange, ccxtpro.kraken))
    return None


def trade_number(trade: Any) -> int | None:
    """A trade's id as a number, when it is one."""
    tid = trade.get("id")
    if isinstance(tid, int):
        return tid
    if isinstance(tid, str) and tid.isdigit():
        return int(tid)
    return None


@dataclass
class _Gap:
    """A symbol's backfill under way: after which trade, up to which id (None: all there is), what waits."""

    after_id: int
    after_ts: int | None
    until_id: int | None
    held: list[Any] = field(default_factory=list)

    def last_id(self) -> int | None:
        """The last id to fetch: `until_id`, or for an open gap the one before the oldest live trade
        it holds past `after_id` (that one and later come live; without a bound, a market trading
        faster than pages are fetched would be chased until `MAX_PAGES`, its live trades held all
        along). A held trade handed on already (a duplicate) bounds nothing."""
        if self.until_id is not None:
            return self.until_id
        live = [n for trade in self.held if (n := trade_number(trade)) is not None and n > self.after_id]
        return min(live) - 1 if live else None


class TradeSequencer:
    """Hands each symbol's trades on once, in id order, holding them while a gap is backfilled.

    `publish(trades, backfilled)` receives what to publish, in order;
    `spawn` runs a backfill task.
    """

    def __init__(
        self,
        stats: ExchangeStats,
        publish: Callable[[list[Any], bool], None],
        stop: StopSignal,
        backoff: Callable[[], Backoff],
        name: str,
    ) -> None:
        self.stats = stats
        self.publish = publish
        self.stop = stop
        self.backoff = backoff
        self.name = name
        self.exchange: Any = None
        self.history: TradeHistory | None = None
        self._last: dict[str, tuple[int, int | None]] = {}  # symbol -> (id, exchange time) handed on last
        self._gaps: dict[str, _Gap] = {}
        self._interrupted: set[str] = set()  # symbols whose trade connection failed, no live trade since
        self._tasks: set[asyncio.Task[None]] = set()

    def use(self, exchange: Any) -> None:
        """The ccxt exchange the missed trades are fetched through."""
        self.exchange = exchange
        self.history = history_for(exchange)

    # -- live trades --------------------------------------------------------------------

    def live(self, trades: list[Any]) -> list[Any]:
        """The live trades to publish now, in order; the others wait for a backfill."""
        out: list[Any] = []
        for trade in trades:
            symbol = trade.get("symbol")
            if not isinstance(symbol, str):
                continue
            gap = self._gaps.get(symbol)
            if gap is not None:
                gap.held.append(trade)
                continue
            if self._interrupted:
                self._interrupted.discard(symbol)
            if self._admit(symbol, trade, may_backfill=True):
                out.append(trade)
        return out

    def _admit(self, symbol: str, trade: Any, *, may_backfill: bool) -> bool:
        """Whether `trade` is handed on now: not a duplicate, and no gap before it to backfill first."""
        number = trade_number(trade)
        if number is None:
            return True
        last = self._last.get(symbol)
        if last is not None:
            if number <= last[0]:
                self.stats.duplicate_trades += 1
                return False
            if number > last[0] + 1:
                if may_backfill and self.history is not None:
                    self._start(symbol, _Gap(last[0], last[1], number - 1, [trade]))
                    return False
                self.stats.trades_unrecoverable[symbol] += number - last[0] - 1
        self._last[symbol] = (number, trade.get("timestamp"))
        return True

    # -- disconnects ------------------------------------------------------------------------

    def interrupted(self, symbols: list[str]) -> None:
        """The trade connection of `symbols` failed: trades may be missed until it is back."""
        self._interrupted.update(s for s in symbols if s in self._last)

    def resumed(self, symbols: list[str]) -> None:
        """The trade watch of `symbols` delivers again: backfill those with no live trade since."""
        for symbol in symbols:
            if symbol in self._interrupted and symbol not in self._gaps and self.history is not None:
                self._interrupted.discard(symbol)
                last_id, last_ts = self._last[symbol]
                self._start(symbol, _Gap(last_id, last_ts, None))

    # -- backfills ----------------------------------------------------------------------------

    def _start(self, symbol: str, gap: _Gap) -> None:
        self._gaps[symbol] = gap
        missing = "all trades since" if gap.until_id is None else f"ids {gap.after_id + 1}-{gap.until_id}"
        log.info("%s: %s trades missed (%s %s): fetching them", self.name, symbol, missing, gap.after_id)
        task = asyncio.get_running_loop().create_task(self._backfill(symbol, gap), name=f"backfill {symbol}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _backfill(self, symbol: str, gap: _Gap) -> None:
        """Fetch, publish marked, then release the held trades; whatever happens, nothing held is lost."""
        fetched: list[Any] = []
        try:
            fetched = await self._fetch(symbol, gap)
        finally:
            del self._gaps[symbol]
            fetched.sort(key=lambda t: trade_number(t) or 0)
            recovered = [t for t in fetched if self._admit(symbol, t, may_backfill=False)]
            self.stats.trades_backfilled[symbol] += len(recovered)
            if recovered:
                self.publish(recovered, True)
            held, gap.held = gap.held, []
            if held:  # a bounded gap's rest is unrecoverable; after an open one, a new gap is backfilled
                if self._admit(symbol, held[0], may_backfill=gap.until_id is None):
                    self.publish([held[0]], False)
                if symbol in self._gaps:
                    self._gaps[symbol].held.extend(held[1:])
                else:
                    self.publish(self.live(held[1:]), False)

    async def _fetch(self, symbol: str, gap: _Gap) -> list[Any]:
        """The trades after `gap.after_id` (up to `gap.until_id`) the exchange still has, by pages."""
        assert self.history is not None
        out: list[Any] = []
        after_id, after_ts = gap.after_id, gap.after_ts
        for _ in range(MAX_PAGES):
            page = await self._page(symbol, after_id, after_ts)
            if page is None:
                break
            until = gap.last_id()
            numbers = [trade_number(t) for t in page]
            new = [
                t
                for t, n in zip(page, numbers, strict=True)
                if n is not None and n > after_id and (until is None or n <= until)
            ]
            if new:
                new.sort(key=lambda t: trade_number(t) or 0)
                out += new
                after_id, after_ts = trade_number(new[-1]) or after_id, new[-1].get("timestamp")
                if until is not None and after_id >= until:
                    break
            if until is not None and any(n is not None and n > until for n in numbers):
                break  # pages run oldest first: the gap's ids this one lacks, the exchange no longer has
            if len(page) < PAGE:
                break  # the exchange has no more
            if not new:
                # A full page of trades already handed on (more than a page in the time asked from):
                # ask from the newest of them, if that moves on.
                newest = max(
                    (t["timestamp"] for t in page if isinstance(t.get("timestamp"), int)), default=None
                )
                if newest is None or (after_ts is not None and newest <= after_ts):
                    break
                after_ts = newest
        return out

    async def _page(self, symbol: str, after_id: int, after_ts: int | None) -> list[Any] | None:
        """One page of history, retried while the failure can be waited out; None if it cannot be had."""
        assert self.history is not None
        backoff = self.backoff()
        for attempt in range(1, RETRIES + 1):
            try:
                page = await self.stop.wait(self.history.page(self.exchange, symbol, after_id, after_ts))
            except Exception as exc:
                self.stats.count_error(exc)
                if not retryable(exc) or attempt == RETRIES:
                    log.error(
                        "%s: %s trades after id %s cannot be fetched (%s); they are counted as unrecoverable "
                        "(a Binance `trade` stream needs API keys for its history: watch `aggTrade`)",
                        self.name,
                        symbol,
                        after_id,
                        brief(exc),
                    )
                    return None
                delay = retry_delay(exc, backoff, self.exchange, self.stats)
                if await self.stop.wait(asyncio.sleep(delay)) is STOPPED:
                    return None
                continue
            return None if page is STOPPED else list(page)
        return None

    async def settle(self) -> None:
        """Wait for the backfills under way (a stop ends their waits: what they hold is published)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
