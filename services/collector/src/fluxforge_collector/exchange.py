"""A live exchange through ccxt.pro as a `TickSource`: order books, trades and tickers as raw envelopes.

One `ExchangeSource` per exchange (one collector container per exchange).
For each channel it runs watchers over groups of `symbols_per_watch` symbols,
using ccxt.pro's multi-symbol methods where the exchange has them
(`watch_order_book_for_symbols`, `watch_trades_for_symbols`, `watch_tickers`)
and one watcher per symbol where it does not. Each delivery becomes a raw
envelope (DESIGN.md "Raw messages"): `ts` is the exchange's event time,
`recv_ts` the time ccxt handed the update over, `seq` the book's nonce (on
Binance the final update id `u` of the last diff applied).

Books. ccxt keeps the full book (REST snapshot of `watchOrderBookLimit`
levels plus diffs), and the envelope takes its top `features.max_levels`.
The watch call is made without a limit on purpose: ccxt trims its stored
book to the limit on every delivery, and a book trimmed to 10 levels is wrong
as soon as a level behind them moves up. Every book state ccxt resolves is
published, taken as ccxt hands it over (not when a watcher next runs, which
would see only the latest of many); only while the source's queue is full
are states left out (counted as conflated: the watcher then publishes the
latest, its `seq` says which). A book is never published twice for the same
nonce, and the bare REST snapshot (no exchange time yet) is not published:
the first diff applied on top of it is. ccxt checks update-id continuity itself
(Binance: each diff's `U` must be the previous `u` + 1) and raises on a gap;
the book is then dropped and re-synchronised from a new snapshot, so no book
spanning a gap is ever published. Each such resync is counted per symbol.

Resilience:
- disconnects and network errors: the watcher waits (exponential backoff from
  `reconnect_initial_s`, doubling to `reconnect_max_s`, with jitter: a random
  50-100% of the step) and watches again; ccxt reconnects and resubscribes,
  and books start over from a snapshot. A delivery resets the backoff.
- stalls: a watchdog looks at every ccxt connection; one that received no
  frame at all (data or the exchange's pings, which Binance sends every 20 s)
  for `stall_timeout_s` is failed on purpose, so its watchers reconnect.
- frames ccxt cannot decode or handle would otherwise stop its receive loop
  for good (an exception in a callback); they are counted, logged and
  skipped. A lost diff is then a gap, which resyncs the book.
- rate limits: ccxt's own throttle (`enableRateLimit`) spaces REST and
  subscribe calls; a 429/418 answer waits at least its `Retry-After`.
- a failing symbol does not stop the others: unknown symbols are reported
  and skipped at start, and a multi-symbol watch that fails
  `split_after_failures` times within two minutes (for reasons other than
  disconnects and gaps: a refused snapshot, a 5xx) is split into one watcher per symbol, each retrying on its own.
- stop (`request_stop`, from SIGTERM): watchers stop at their next wait,
  everything already received is yielded, then connections are closed.

Credentials come from the environment or a secret file, never from the
config file (the settings refuse them there) and are never logged:
`FLUXFORGE_<EXCHANGE>_API_KEY`, `_SECRET`, `_PASSWORD`, or a JSON/YAML
mapping in the file named by `FLUXFORGE_<EXCHANGE>_CREDENTIALS_FILE`
(default `/run/secrets/fluxforge_<exchange>` when it exists). Public market
data needs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from fluxforge_common.config import ExchangeConfig, FluxForgeSettings

log = logging.getLogger("fluxforge.collector.exchange")

# Options merged under the configured ones, per ccxt id.
_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    # Binance's watch_tickers defaults to the miniTicker stream, which has no bid/ask.
    "binance": {"watchTickers": {"name": "ticker"}},
    "binanceus": {"watchTickers": {"name": "ticker"}},
}
DEFAULT_QUEUE_SIZE = 50_000
# A multi-symbol watch failing `split_after_failures` times within this many seconds is split.
SPLIT_WINDOW_S = 120.0
SECRETS_DIR = Path("/run/secrets")
_CREDENTIAL_FIELDS = {"api_key": "apiKey", "secret": "secret", "password": "password", "uid": "uid"}


class ExchangeSetupError(ValueError):
    """The exchange cannot be watched at all (unknown id, no valid symbol, bad credentials file)."""


@dataclass
class Recovery:
    """One watcher's failure and how long until it delivered again."""

    channel: str
    symbols: str
    error: str
    seconds: float
    at: float  # time.monotonic() of the delivery that ended it


@dataclass
class ExchangeStats:
    """What an exchange source received and went through."""

    books: int = 0
    trades: int = 0
    tickers: int = 0
    snapshots: Counter[str] = field(default_factory=Counter)  # symbol -> REST book snapshots fetched
    resyncs: Counter[str] = field(default_factory=Counter)  # symbol -> snapshots after the first (resyncs)
    gaps: Counter[str] = field(default_factory=Counter)  # symbol -> sequence gaps ccxt reported to a watcher
    reconnects: int = 0  # watch errors that made a watcher reconnect (disconnects, timeouts, stalls)
    stalls: int = 0  # connections failed by the watchdog
    bad_frames: int = 0  # frames ccxt could not decode or handle
    rate_limited: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # exception class -> count
    splits: int = 0  # multi-symbol watches split into single-symbol ones
    failed_symbols: list[str] = field(default_factory=list)  # configured but not on the exchange
    trade_id_gaps: int = 0  # trades missing between two received ids (ids that count up by one)
    duplicate_trades: int = 0
    books_conflated: int = 0  # book updates left out while the queue was full (a later state was published)
    recoveries: list[Recovery] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"books {self.books:,}, trades {self.trades:,}, tickers {self.tickers:,}; "
            f"resyncs {sum(self.resyncs.values())}, reconnects {self.reconnects}, stalls {self.stalls}, "
            f"bad frames {self.bad_frames}, rate-limited {self.rate_limited}, "
            f"books conflated {self.books_conflated:,}"
        )


def load_credentials(exchange_id: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """ccxt credentials for `exchange_id` from the environment or a secret file; {} when none."""
    env = os.environ if environ is None else environ
    prefix = f"FLUXFORGE_{exchange_id.upper().replace('-', '_')}_"
    creds: dict[str, str] = {}
    file_name = env.get(prefix + "CREDENTIALS_FILE")
    path = Path(file_name) if file_name else SECRETS_DIR / f"fluxforge_{exchange_id}"
    if file_name or path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            # The error names the file, never its content.
            raise ExchangeSetupError(
                f"cannot read the credentials file {path}: {type(exc).__name__}"
            ) from None
        if not isinstance(loaded, dict):
            raise ExchangeSetupError(f"the credentials file {path} must hold a mapping (apiKey, secret, ...)")
        for key, value in loaded.items():
            name = _CREDENTIAL_FIELDS.get(str(key).lower().replace("-", "_"), str(key))
            if name not in _CREDENTIAL_FIELDS.values():
                raise ExchangeSetupError(
                    f"the credentials file {path} has an unknown key {key!r} (allowed: apiKey, secret, password, uid)"
                )
            creds[name] = str(value)
    for env_name, name in _CREDENTIAL_FIELDS.items():
        value = env.get(prefix + env_name.upper())
        if value:
            creds[name] = value
    return creds


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class Backoff:
    """Exponential backoff with jitter: `initial * 2**n`, capped, times a random 50-100%."""

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


_guarded_classes: dict[type[Any], type[Any]] = {}


def _guarded(cls: type[Any], source: ExchangeSource) -> type[Any]:
    """A subclass of a ccxt.pro exchange that reports to `source` and survives frames it cannot handle.

    ccxt.pro decodes and dispatches each frame inside a callback that also
    schedules the next read; an exception there (invalid JSON, a handler
    tripping on an odd payload) ends the connection's receive loop for good,
    and the feed goes silent. The guard reports such a frame and goes on.
    Every REST book snapshot is reported too: after a symbol's first, each
    one is a resynchronisation (after a gap, a reconnect or a failed sync).
    And every book ccxt resolves is handed over at once: a watcher only wakes
    after ccxt has handled the frames already read, so it would see one state
    out of many (measured: 1 in ~120 updates at 25k frames/s).
    """
    base = _guarded_classes.get(cls)
    if base is None:
        from ccxt.async_support.base.ws.order_book import OrderBook

        from fluxforge_collector.ccxt_checks import check_mixins
        from fluxforge_collector.ccxt_fast import fast_mixins

        class Guarded(*fast_mixins(cls), *check_mixins(cls), cls):  # type: ignore[misc]
            _ff_source: ExchangeSource | None = None

            def client(self, url: str) -> Any:
                fresh = url not in (self.clients or {})
                client = super().client(url)
                if fresh:
                    handle = client.handle_text_or_binary_message

                    def guarded(data: Any) -> None:
                        try:
                            handle(data)
                        except Exception as exc:
                            if self._ff_source is None:
                                raise
                            self._ff_source._bad_frame(client, exc, data)

                    client.handle_text_or_binary_message = guarded
                    resolve = client.resolve

                    def resolve_and_capture(result: Any, message_hash: Any) -> Any:
                        if self._ff_source is not None and isinstance(result, OrderBook):
                            if not self._ff_book_ok(result):
                                return result  # the book check fails the watch instead
                            self._ff_source._capture_book(result)
                        return resolve(result, message_hash)

                    client.resolve = resolve_and_capture
                return client

            async def fetch_rest_order_book_safe(
                self, symbol: Any, limit: Any = None, params: Any = None
            ) -> Any:
                if self._ff_source is not None:
                    self._ff_source._snapshot(str(symbol))
                return await super().fetch_rest_order_book_safe(symbol, limit, params or {})

        Guarded.__name__ = cls.__name__
        base = _guarded_classes[cls] = Guarded
    sub: type[Any] = type(cls.__name__, (base,), {"_ff_source": source})
    return sub


class ExchangeSource:
    """Books, trades and tickers of one exchange's configured symbols, through ccxt.pro."""

    def __init__(
        self,
        exchange_id: str,
        config: ExchangeConfig,
        *,
        max_levels: int,
        credentials: dict[str, str] | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.exchange_id = exchange_id
        self.config = config
        self.max_levels = max_levels
        self.stats = ExchangeStats()
        self._credentials = credentials or {}
        self._queue_size = queue_size
        self._clock = clock
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[bytes | None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle: set[asyncio.Task[Any]] = set()  # watchers waiting (on ccxt or a backoff): safe to cancel
        self._stopping = False
        self._stop_requested = False
        self._stopper: asyncio.Task[None] | None = None
        self._last_nonce: dict[str, int] = {}
        self._last_trade: dict[str, int] = {}
        self._conflated: set[str] = set()  # symbols with a book state left out while the queue was full
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
        watchdog: asyncio.Task[None] | None = None
        try:
            symbols = await self._load_markets(exchange)
            if symbols:
                for channel in self.config.channels:
                    for group in self._groups(exchange, channel, symbols):
                        self._spawn(channel, group)
                watchdog = asyncio.create_task(self._watchdog(exchange), name=f"{self.name} watchdog")
            while (line := await queue.get()) is not None:
                yield line
        finally:
            self._stopping = True
            if watchdog is not None:
                watchdog.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, *([watchdog] if watchdog else []), return_exceptions=True)
            with contextlib.suppress(Exception):
                await exchange.close()
            log.info("%s: %s", self.name, self.stats.line())

    def request_stop(self) -> None:
        """Stop watching; what was received is still yielded, then `lines()` ends."""
        self._stop_requested = True
        if self._stopper is None and self._queue is not None:
            self._stopper = asyncio.get_running_loop().create_task(self._shutdown())

    async def _shutdown(self) -> None:
        self._stopping = True
        for task in list(self._idle):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
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
        options = deep_merge(_DEFAULT_OPTIONS.get(self.exchange_id, {}), self.config.options)
        settings: dict[str, Any] = {"enableRateLimit": True, "options": options, **self._credentials}
        if self.config.urls:
            settings["urls"] = self.config.urls
        return _guarded(cls, self)(settings)

    async def _load_markets(self, exchange: Any) -> list[str]:
        """Markets, retried with backoff until they load or the source stops; the configured symbols it has."""
        backoff = self._backoff()
        while True:
            try:
                await exchange.load_markets()
                break
            except Exception as exc:
                if not _retryable(exc):
                    raise
                self._count_error(exc)
                delay = self._delay_for(exc, backoff)
                log.warning("%s: loading markets failed (%s); again in %.1f s", self.name, _brief(exc), delay)
                if await self._wait(asyncio.sleep(delay)) is _STOPPED:
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

    def _groups(self, exchange: Any, channel: str, symbols: list[str]) -> list[list[str]]:
        method = {
            "book": "watchOrderBookForSymbols",
            "trade": "watchTradesForSymbols",
            "ticker": "watchTickers",
        }
        if not exchange.has.get(method[channel]):
            return [[s] for s in symbols]
        size = self.config.symbols_per_watch
        return [symbols[i : i + size] for i in range(0, len(symbols), size)]

    def _spawn(self, channel: str, symbols: list[str]) -> None:
        task = asyncio.create_task(
            self._watch(channel, symbols), name=f"{self.name} {channel} {symbols[0]}.."
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _backoff(self) -> Backoff:
        return Backoff(self.config.reconnect_initial_s, self.config.reconnect_max_s, self._rng)

    # -- watchers -------------------------------------------------------------------------

    async def _wait(self, awaitable: Awaitable[Any]) -> Any:
        """Await something a stop may interrupt (a ccxt watch or a backoff sleep); `_STOPPED` if it did."""
        task = asyncio.current_task()
        assert task is not None
        if self._stopping:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            return _STOPPED
        self._idle.add(task)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._stopping:
                return _STOPPED
            raise
        finally:
            self._idle.discard(task)

    async def _watch(self, channel: str, symbols: list[str]) -> None:
        import ccxt.pro as ccxtpro

        exchange = self.exchange
        one = len(symbols) == 1
        call: Callable[[], Awaitable[Any]]
        emit: Callable[[Any, int], Awaitable[None]]
        if channel == "book":
            if one and not exchange.has.get("watchOrderBookForSymbols"):
                call = lambda: exchange.watch_order_book(symbols[0])  # noqa: E731
            else:
                call = lambda: exchange.watch_order_book_for_symbols(symbols)  # noqa: E731
            emit = self._emit_book
        elif channel == "trade":
            if one and not exchange.has.get("watchTradesForSymbols"):
                call = lambda: exchange.watch_trades(symbols[0])  # noqa: E731
            else:
                call = lambda: exchange.watch_trades_for_symbols(symbols)  # noqa: E731
            emit = self._emit_trades
        else:
            if one and not exchange.has.get("watchTickers"):
                call = lambda: exchange.watch_ticker(symbols[0])  # noqa: E731
            else:
                call = lambda: exchange.watch_tickers(symbols)  # noqa: E731
            emit = self._emit_tickers
        label = symbols[0] if one else f"{len(symbols)} symbols"
        backoff = self._backoff()
        failed_at: float | None = None
        failure = ""
        failures: list[float] = []  # times of recent failures other than disconnects and gaps
        while not self._stopping:
            try:
                result = await self._wait(call())
            except ccxtpro.InvalidNonce as exc:  # a sequence gap (ccxt's ChecksumError is one)
                error = self._count_error(exc)
                for symbol in self._symbols_in(exc, symbols):
                    self.stats.gaps[symbol] += 1
                log.warning("%s: %s book gap (%s): resynchronising", self.name, label, _brief(exc))
                delay = 0.0 if backoff.attempts == 0 else backoff.next()
                backoff.attempts = max(backoff.attempts, 1)
            except Exception as exc:
                error = self._count_error(exc)
                delay = self._delay_for(exc, backoff)
                if type(exc) in (ccxtpro.NetworkError, ccxtpro.RequestTimeout):  # the connection failed
                    self.stats.reconnects += 1
                    log.warning(
                        "%s: %s %s: %s; again in %.2f s", self.name, channel, label, _brief(exc), delay
                    )
                else:  # a request failed (5xx, 429, 4xx...): possibly one symbol's fault
                    log.error(
                        "%s: %s %s failed (%s); again in %.2f s",
                        self.name,
                        channel,
                        label,
                        _brief(exc),
                        delay,
                    )
                    now = time.monotonic()
                    failures = [t for t in failures if t > now - SPLIT_WINDOW_S] + [now]
                if not one and len(failures) >= self.config.split_after_failures:
                    self.stats.splits += 1
                    log.warning("%s: watching %s of %s one by one", self.name, channel, label)
                    for symbol in symbols:
                        self._spawn(channel, [symbol])
                    return
            else:
                if result is _STOPPED:
                    return
                recv = int(self._clock() * 1000)
                await emit(result, recv)
                if failed_at is not None:
                    seconds = time.monotonic() - failed_at
                    self.stats.recoveries.append(Recovery(channel, label, failure, seconds, time.monotonic()))
                    log.info("%s: %s %s recovered in %.2f s", self.name, channel, label, seconds)
                    failed_at = None
                backoff.reset()
                continue
            if failed_at is None:
                failed_at, failure = time.monotonic(), error
            if delay and await self._wait(asyncio.sleep(delay)) is _STOPPED:
                return

    def _delay_for(self, exc: BaseException, backoff: Backoff) -> float:
        import ccxt.pro as ccxtpro

        delay = backoff.next()
        if isinstance(exc, ccxtpro.DDoSProtection | ccxtpro.RateLimitExceeded):
            self.stats.rate_limited += 1
            headers = getattr(self.exchange, "last_response_headers", None) or {}
            retry_after = headers.get("Retry-After") or headers.get("retry-after")
            if retry_after is not None:
                with contextlib.suppress(TypeError, ValueError):
                    delay = max(delay, float(retry_after))
        return delay

    @staticmethod
    def _symbols_in(exc: BaseException, symbols: list[str]) -> list[str]:
        """The symbols an error names (ccxt names the symbol whose book had a gap)."""
        text = f" {exc} "
        named = [s for s in symbols if f" {s} " in text]
        return named or (symbols if len(symbols) == 1 else ["(unnamed)"])

    def _count_error(self, exc: BaseException) -> str:
        name = type(exc).__name__
        self.stats.errors[name] += 1
        return name

    def _snapshot(self, symbol: str) -> None:
        self.stats.snapshots[symbol] += 1
        if self.stats.snapshots[symbol] > 1:
            self.stats.resyncs[symbol] += 1

    def _bad_frame(self, client: Any, exc: BaseException, data: Any) -> None:
        self.stats.bad_frames += 1
        preview = data[:120] if isinstance(data, str | bytes) else repr(data)[:120]
        log.warning(
            "%s: skipped a frame from %s that ccxt could not handle (%r): %r",
            self.name,
            client.url,
            exc,
            preview,
        )

    async def _watchdog(self, exchange: Any) -> None:
        """Fail connections that have been silent for `stall_timeout_s`, so their watchers reconnect."""
        import ccxt.pro as ccxtpro

        stall_ms = self.config.stall_timeout_s * 1000
        period = min(1.0, self.config.stall_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            now = exchange.milliseconds()
            for client in list((exchange.clients or {}).values()):
                if client.closed() or not client.isConnected:
                    continue
                last = client.last_message_at or client.connectionEstablished
                if last is not None and now - last > stall_ms:
                    self.stats.stalls += 1
                    log.warning(
                        "%s: no frame from %s for %.1f s: stalled, reconnecting",
                        self.name,
                        client.url,
                        (now - last) / 1000,
                    )
                    client.on_error(
                        ccxtpro.RequestTimeout(f"no frame for {self.config.stall_timeout_s} s: stalled feed")
                    )

    # -- envelopes ----------------------------------------------------------------------------

    async def _put(self, line: bytes) -> None:
        assert self._queue is not None
        await self._queue.put(line)

    def _capture_book(self, book: Any) -> None:
        """Queue the book ccxt has just updated, before its next frame changes it.

        When the queue is full the state is left out (counted as conflated): the
        book's watcher then waits for room and publishes the latest state.
        """
        queue = self._queue
        if queue is None or self._stopping:
            return
        if queue.full():
            self.stats.books_conflated += 1
            self._conflated.add(book.get("symbol"))
            return
        line = self._book_line(book, int(self._clock() * 1000))
        if line is not None:
            queue.put_nowait(line)

    async def _emit_book(self, book: Any, recv: int) -> None:
        """A watcher's book: published only when states of its symbol were conflated (the others were taken)."""
        symbol = book.get("symbol")
        if symbol not in self._conflated:
            return
        self._conflated.discard(symbol)
        line = self._book_line(book, recv)
        if line is not None:
            await self._put(line)

    def _book_line(self, book: Any, recv: int) -> bytes | None:
        """The envelope of a book state not published yet (a newer nonce); None for the others."""
        symbol = book.get("symbol")
        nonce = book.get("nonce")
        ts = book.get("timestamp")
        if symbol is None or (ts is None and nonce is not None):
            return None  # the bare snapshot: published with the first diff on top of it
        if nonce is None and symbol in self._last_nonce:
            return None  # a book being re-synchronised (ccxt cleared its nonce): not a valid state
        if nonce is not None:
            last = self._last_nonce.get(symbol)
            if last is not None and nonce <= last:
                return None
            self._last_nonce[symbol] = nonce
        n = self.max_levels
        envelope = {
            "type": "book",
            "exchange": self.exchange_id,
            "symbol": symbol,
            "ts": ts,
            "recv_ts": recv,
            "seq": nonce,
            "bids": [level[:2] for level in book["bids"][:n]],
            "asks": [level[:2] for level in book["asks"][:n]],
        }
        self.stats.books += 1
        return orjson.dumps(envelope)

    async def _emit_trades(self, trades: Any, recv: int) -> None:
        for trade in trades:
            symbol = trade.get("symbol")
            tid = trade.get("id")
            if symbol is None:
                continue
            number = _int_or_none(tid)
            if number is not None:
                last = self._last_trade.get(symbol)
                if last is not None:
                    if number <= last:
                        self.stats.duplicate_trades += 1
                        continue
                    if number > last + 1:
                        self.stats.trade_id_gaps += number - last - 1
                self._last_trade[symbol] = number
            envelope = {
                "type": "trade",
                "exchange": self.exchange_id,
                "symbol": symbol,
                "ts": trade.get("timestamp"),
                "recv_ts": recv,
                "id": None if tid is None else str(tid),
                "price": trade.get("price"),
                "amount": trade.get("amount"),
                "side": trade.get("side"),
            }
            self.stats.trades += 1
            await self._put(orjson.dumps(envelope))

    async def _emit_tickers(self, tickers: Any, recv: int) -> None:
        items = [tickers] if isinstance(tickers.get("symbol"), str) else list(tickers.values())
        for ticker in items:
            symbol = ticker.get("symbol")
            if symbol is None:
                continue
            envelope = {
                "type": "ticker",
                "exchange": self.exchange_id,
                "symbol": symbol,
                "ts": ticker.get("timestamp"),
                "recv_ts": recv,
                "bid": ticker.get("bid"),
                "ask": ticker.get("ask"),
                "bid_size": ticker.get("bidVolume"),
                "ask_size": ticker.get("askVolume"),
                "last": ticker.get("last"),
                "base_volume": ticker.get("baseVolume"),
                "quote_volume": ticker.get("quoteVolume"),
            }
            self.stats.tickers += 1
            await self._put(orjson.dumps(envelope))


class _Stopped:
    pass


_STOPPED = _Stopped()


def _retryable(exc: BaseException) -> bool:
    """Errors worth waiting out: the network, the exchange down or busy (5xx, -1001), rate limits.

    (ccxt's `OperationFailed` is the parent of `NetworkError`; Binance's -1001
    "internal error" maps to it.)
    """
    import ccxt.pro as ccxtpro

    return isinstance(exc, ccxtpro.OperationFailed | ccxtpro.ExchangeNotAvailable)


def _brief(exc: BaseException) -> str:
    text = str(exc).split(". You can", 1)[0]
    return f"{type(exc).__name__}: {text[:160]}"


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


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
