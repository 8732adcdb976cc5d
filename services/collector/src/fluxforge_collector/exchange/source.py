"""`ExchangeSource`: a live exchange through ccxt.pro as a `TickSource` (one per exchange, one collector each).

Books. ccxt keeps the full book (REST snapshot of `watchOrderBookLimit`
levels plus diffs), and each envelope takes its top `features.max_levels`.
The watch call is made without a limit on purpose: ccxt trims its stored
book to the limit on every delivery, and a book trimmed to 10 levels is wrong
as soon as a level behind them moves up. Every book state ccxt resolves is
published, taken as ccxt hands it over (`ccxt_client`), not when a watcher
next runs, which would see only the latest of many. On a sequence gap the
book is re-synchronised from a new snapshot (`ccxt_resync`: that symbol
alone), so no book spanning a gap is ever published; each resync is counted
per symbol. A book snapshot without an exchange time (Kraken's, in-band) is
held until the first update on it, which carries one and is published
instead, or `SNAPSHOT_HOLD_S` without one: published at once, the engine would
place it at its receive time, after the updates built on it (which the
exchange stamped earlier), and its stale book would stand until the next one.
When that first update fails the book's checksum, the snapshot is published as
it came (a true state: what went wrong came after it) before the resync.

Trades. Every trade ccxt resolves is handed over at once too (a watcher
would see only the trades its future still holds when it runs: the last of
a burst surfaced only with the symbol's next trade). An exchange class whose
trades come some other way than ccxt's trade cache has its watcher's
deliveries published instead. Either way they pass `backfill.TradeSequencer`:
each id once, in id order, and the trades a disconnect or an id gap lost are
fetched over REST and published first, marked backfilled, while the symbol's
live trades wait.

Falling behind. While the queue is full, trades wait in a backlog, in order,
and are never left out; book states are left out (counted as conflated) and
the backlog holds a mark for the symbol instead, which becomes the book's
state of that moment when its turn comes (its `seq` says which). Nothing
passes the backlog, so each symbol's books and trades stay in order.

Stop (`request_stop`, from SIGTERM): watchers stop at their next wait, the
connections are closed, and everything ccxt received before is yielded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, NamedTuple

from fluxforge_common.config import ExchangeConfig, FluxForgeSettings

from fluxforge_collector.backoff import Backoff
from fluxforge_collector.exchange.backfill import TradeSequencer
from fluxforge_collector.exchange.ccxt_client import guarded_class
from fluxforge_collector.exchange.credentials import load_credentials
from fluxforge_collector.exchange.envelopes import Envelopes
from fluxforge_collector.exchange.errors import ExchangeSetupError, brief, retry_delay, retryable
from fluxforge_collector.exchange.options import ccxt_settings
from fluxforge_collector.exchange.stats import ExchangeStats
from fluxforge_collector.exchange.stopping import STOPPED, StopSignal
from fluxforge_collector.exchange.watchdog import fail_stalled_connections
from fluxforge_collector.exchange.watchers import channel_groups, watch

log = logging.getLogger("fluxforge.collector.exchange")

ENVELOPE_QUEUE_SIZE = 50_000
# How long a snapshot without an exchange time waits for the first update on it (module docstring).
SNAPSHOT_HOLD_S = 1.0


class HeldSnapshot(NamedTuple):
    """A snapshot waiting for its first update: the release without one, and its book as it came."""

    release: asyncio.TimerHandle
    book: dict[str, Any]  # top levels, copied: ccxt changes (or drops) its book in place
    recv_ms: int


class ExchangeSource:
    """Books, trades and tickers of one exchange's configured symbols, through ccxt.pro."""

    def __init__(
        self,
        exchange_id: str,
        config: ExchangeConfig,
        *,
        max_levels: int,
        credentials: dict[str, str] | None = None,
        queue_size: int = ENVELOPE_QUEUE_SIZE,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.exchange_id = exchange_id
        self.config = config
        self.max_levels = max_levels
        self.stats = ExchangeStats()
        self.clock = clock
        self.stop_signal = StopSignal()
        self._envelopes = Envelopes(exchange_id, max_levels, self.stats)
        self._credentials = credentials or {}
        self._queue_size = queue_size
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[bytes | None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop_requested = False
        self._stopper: asyncio.Task[None] | None = None
        # What waits for room in the queue, in order: envelopes, and symbols whose latest book is due.
        self._backlog: deque[bytes | str] = deque()
        self._conflated: set[str] = set()  # symbols with a book due in the backlog
        self._drainer: asyncio.Task[None] | None = None  # moves the backlog into the queue
        self._trades_handed_over = False  # ccxt hands trades over as it parses them (`on_trades`)
        self._book_ts: dict[str, int] = {}  # symbol -> event time of its latest book, for the channel skew
        self._snapshot_due: set[str] = set()  # symbols whose next unstamped book is a snapshot
        self._held_snapshots: dict[str, HeldSnapshot] = {}
        self._sequencer = TradeSequencer(
            self.stats, self._publish_trades, self.stop_signal, self.backoff, self.name
        )
        self.exchange: Any = None

    @property
    def name(self) -> str:
        return f"exchange:{self.exchange_id}"

    # -- the TickSource protocol ------------------------------------------------------

    async def lines(self) -> AsyncGenerator[bytes, None]:
        queue = self._queue = asyncio.Queue(self._queue_size)
        if self._stop_requested:
            self.request_stop()
        exchange = self.exchange = self._make_exchange()
        self._sequencer.use(exchange)
        watchdog: asyncio.Task[None] | None = None
        try:
            symbols = await self._load_markets(exchange)
            self.stats.subscribed = dict.fromkeys(symbols, time.monotonic())
            if symbols:
                for channel in self.config.channels:
                    for group in channel_groups(exchange, channel, symbols, self.config.symbols_per_watch):
                        self.spawn(channel, group)
                watchdog = asyncio.create_task(
                    fail_stalled_connections(exchange, self.config.stall_timeout_s, self.stats, self.name),
                    name=f"{self.name} watchdog",
                )
            while (line := await queue.get()) is not None:
                yield line
        finally:
            self.stop_signal.interrupt()  # also ends the backfills' waits: what they hold is queued
            if watchdog is not None:
                watchdog.cancel()
            for task in [*self._tasks, *([self._drainer] if self._drainer else [])]:
                task.cancel()
            await asyncio.gather(*self._tasks, *([watchdog] if watchdog else []), return_exceptions=True)
            await self._sequencer.settle()
            with contextlib.suppress(Exception):
                await exchange.close()
            log.info("%s: %s", self.name, self.stats.line())

    def request_stop(self) -> bool:
        """Stop watching; what was received is still yielded, then `lines()` ends."""
        self._stop_requested = True
        if self._stopper is None and self._queue is not None:
            self._stopper = asyncio.get_running_loop().create_task(self._shutdown())
        return True

    async def _shutdown(self) -> None:
        self.stop_signal.interrupt()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.exchange is not None:
            with contextlib.suppress(Exception):
                await self.exchange.close()  # nothing arrives any more: all received is handed over
        await self._sequencer.settle()  # backfills under way publish what they hold
        for symbol, held in self._held_snapshots.items():  # their books as they are then, in turn
            held.release.cancel()
            if symbol not in self._conflated:
                self._conflated.add(symbol)
                self._wait_for_room(symbol)
        self._held_snapshots.clear()
        if self._drainer is not None:
            await asyncio.gather(self._drainer, return_exceptions=True)
        assert self._queue is not None
        await self._queue.put(None)

    # -- setup ----------------------------------------------------------------------------

    def _make_exchange(self) -> Any:
        import ccxt.pro as ccxtpro

        cls = getattr(ccxtpro, self.exchange_id, None)
        if not isinstance(cls, type):
            raise ExchangeSetupError(
                f"ccxt.pro has no exchange {self.exchange_id!r} (see ccxt.pro.exchanges for the ids it supports)"
            )
        return guarded_class(cls, self)(ccxt_settings(self.exchange_id, self.config, self._credentials))

    async def _load_markets(self, exchange: Any) -> list[str]:
        """Markets, retried with backoff until they load or the source stops; the configured symbols it has."""
        backoff = self.backoff()
        while True:
            try:
                await exchange.load_markets()
                break
            except Exception as exc:
                if self.stop_signal.is_set:
                    return []  # a stop closed the exchange under it
                if not retryable(exc):
                    raise
                self.stats.count_error(exc)
                delay = retry_delay(exc, backoff, exchange, self.stats)
                log.warning("%s: loading markets failed (%s); again in %.1f s", self.name, brief(exc), delay)
                if await self.stop_signal.wait(asyncio.sleep(delay)) is STOPPED:
                    return []
        known = [s for s in self.config.symbols if s in exchange.markets]
        missing = [s for s in self.config.symbols if s not in exchange.markets]
        if missing:
            self.stats.failed_symbols = missing
            log.error("%s: not on the exchange, not watched: %s", self.name, ", ".join(missing))
        if not known:
            raise ExchangeSetupError(
                f"{self.exchange_id} lists none of the configured symbols {self.config.symbols}"
            )
        return known

    # -- what the watchers use -----------------------------------------------------------

    def spawn(self, channel: str, symbols: list[str]) -> None:
        """Start a watcher of `channel` for `symbols`."""
        task = asyncio.create_task(
            watch(self, channel, symbols), name=f"{self.name} {channel} {symbols[0]}.."
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def backoff(self) -> Backoff:
        """A fresh backoff for one retry loop, with the configured reconnect timings."""
        return Backoff(self.config.reconnect_initial_s, self.config.reconnect_max_s, self._rng)

    def emitter(self, channel: str) -> Callable[[Any, int], Awaitable[None]]:
        """What publishes a delivery of `channel` (ccxt's result, its receive time in ms)."""
        return {"book": self._taken, "trade": self._emit_trades, "ticker": self._emit_tickers}[channel]

    # -- what the ccxt client reports (`ccxt_client.ClientEvents`) -------------------------

    def on_book(self, book: Any) -> None:
        """Queue the book ccxt has just updated, before its next frame changes it.

        While the queue is full (or the backlog waits) the state is left out,
        counted as conflated, and the symbol's latest book is due in the backlog.
        """
        queue = self._queue
        if queue is None or self.stop_signal.is_set:
            return
        symbol = book.get("symbol")
        ts = book.get("timestamp")
        if ts is not None:
            self._book_ts[symbol] = ts
            self._snapshot_due.discard(symbol)
            if (held := self._held_snapshots.pop(symbol, None)) is not None:
                held.release.cancel()  # this update on the snapshot is published instead
        elif symbol in self._snapshot_due:
            self._snapshot_due.discard(symbol)
            if book.get("nonce") is None:  # in-band (Kraken); a REST snapshot has its id, and no envelope
                if (held := self._held_snapshots.pop(symbol, None)) is not None:
                    held.release.cancel()
                release = asyncio.get_running_loop().call_later(
                    SNAPSHOT_HOLD_S, self._release_snapshot, symbol
                )
                levels = self._envelopes.top_levels(book)
                copy = {"symbol": symbol, "timestamp": None, "nonce": None, **levels}
                self._held_snapshots[symbol] = HeldSnapshot(release, copy, int(self.clock() * 1000))
                return
        if queue.full() or self._backlog:
            self.stats.books_conflated += 1
            if isinstance(symbol, str) and symbol not in self._conflated:
                self._conflated.add(symbol)
                self._wait_for_room(symbol)
            return
        line = self._envelopes.book(book, int(self.clock() * 1000))
        if line is not None:
            queue.put_nowait(line)

    def _release_snapshot(self, symbol: str) -> None:
        """No update came on `symbol`'s snapshot within the hold: its book goes out as any book does."""
        if self.stop_signal.is_set:
            return  # the stop publishes it
        self._held_snapshots.pop(symbol, None)
        book = (self.exchange.orderbooks or {}).get(symbol)
        if book is not None:
            self.on_book(book)

    def on_trades(self, trades: list[Any]) -> None:
        """Queue the trades ccxt has just parsed, through the sequencer (each id once, in order)."""
        if self._queue is None:
            return
        self._trades_handed_over = True
        self._take_trades(trades)

    def _take_trades(self, trades: list[Any]) -> None:
        for trade in trades:
            symbol = trade.get("symbol")
            self.stats.trades_parsed[symbol] += 1
            book_ts, ts = self._book_ts.get(symbol), trade.get("timestamp")
            if book_ts is not None and ts is not None:
                self.stats.record_skew(symbol, book_ts, ts)
        self._publish_trades(self._sequencer.live(trades), False)

    def _publish_trades(self, trades: list[Any], backfilled: bool) -> None:
        """Queue trade envelopes in order; when the queue is full they wait in the backlog, which goes first."""
        for line in self._envelopes.trades(trades, int(self.clock() * 1000), backfilled):
            self._enqueue(line)

    def _enqueue(self, line: bytes) -> None:
        """Queue an envelope that is never left out: into the backlog while it holds any or the queue is full."""
        queue = self._queue
        assert queue is not None
        if self._backlog or queue.full():
            self._wait_for_room(line)
        else:
            queue.put_nowait(line)

    def on_trades_interrupted(self, symbols: list[str]) -> None:
        """The trade watch of `symbols` lost its connection."""
        self._sequencer.interrupted(symbols)

    def on_trades_resumed(self, symbols: list[str]) -> None:
        """The trade watch of `symbols` delivers again."""
        self._sequencer.resumed(symbols)

    def _wait_for_room(self, item: bytes | str) -> None:
        """Put an envelope (or a symbol whose book is due) at the end of the backlog."""
        self._backlog.append(item)
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain_backlog())

    def on_gap(self, symbol: str) -> None:
        self.stats.gaps[symbol] += 1
        if (held := self._held_snapshots.pop(symbol, None)) is not None:
            held.release.cancel()
            self._publish_held(symbol, held)  # before the mark: the next snapshot is the one after the gap
        self._envelopes.mark_resync(symbol, "gap")
        log.warning("%s: %s book gap: resynchronising this symbol", self.name, symbol)

    def _publish_held(self, symbol: str, held: HeldSnapshot) -> None:
        """A held snapshot as it came, received when it came (the update that failed came after it), and
        never left out: ccxt's book is gone. It takes the place of the symbol's conflation mark in the
        backlog, which would otherwise become the next snapshot's book, ahead of it."""
        line = self._envelopes.book(held.book, held.recv_ms)
        if line is None:
            return
        if symbol in self._conflated:
            self._conflated.discard(symbol)
            self._backlog[self._backlog.index(symbol)] = line
        else:
            self._enqueue(line)

    def on_snapshot(self, symbol: str) -> None:
        self.stats.count_snapshot(symbol)
        self._snapshot_due.add(symbol)
        if self.stats.snapshots[symbol] > 1:
            self._envelopes.mark_resync(symbol, "snapshot")

    def on_bad_frame(self, client: Any, exc: BaseException, data: Any) -> None:
        self.stats.bad_frames += 1
        preview = data[:120] if isinstance(data, str | bytes) else repr(data)[:120]
        log.warning(
            "%s: skipped a frame from %s that ccxt could not handle (%r): %r",
            self.name,
            client.url,
            exc,
            preview,
        )

    # -- publishing -----------------------------------------------------------------------

    async def _put(self, line: bytes) -> None:
        assert self._queue is not None
        await self._queue.put(line)

    async def _taken(self, book: Any, recv: int) -> None:
        """A watcher's book: nothing to do, ccxt handed each state over as it resolved it."""

    async def _emit_trades(self, trades: Any, recv: int) -> None:
        """A watcher's trades: published only by an exchange class whose trades ccxt does not hand over."""
        if not self._trades_handed_over:
            self._take_trades(list(trades))

    async def _drain_backlog(self) -> None:
        """Move the backlog into the queue as room frees up; an item leaves it only once queued.

        A symbol due becomes its book's state of now (none while the book is
        being re-synchronised); a later state left out is due again after it.
        """
        queue = self._queue
        assert queue is not None
        try:
            while self._backlog:
                item = self._backlog[0]
                if isinstance(item, str):
                    self._conflated.discard(item)
                    book = (self.exchange.orderbooks or {}).get(item)
                    held = book is None or item in self._held_snapshots
                    line = None if held else self._envelopes.book(book, int(self.clock() * 1000))
                    if line is not None:
                        await queue.put(line)
                else:
                    await queue.put(item)
                self._backlog.popleft()
        finally:
            self._drainer = None

    async def _emit_tickers(self, tickers: Any, recv: int) -> None:
        for line in self._envelopes.tickers(tickers, recv):
            await self._put(line)


def exchange_source(settings: FluxForgeSettings, name: str, **kwargs: Any) -> ExchangeSource:
    """The source for `exchanges.<name>` of the settings; ValueError names the configured ones."""
    config = settings.exchanges.get(name)
    if config is None:
        configured = ", ".join(settings.exchanges) or "none"
        raise ValueError(f"no exchange {name!r} in the config (exchanges: {configured})")
    return ExchangeSource(
        name,
        config,
        max_levels=settings.features.max_levels,
        credentials=load_credentials(name),
        **kwargs,
    )
