"""A Binance spot exchange on 127.0.0.1: REST and websocket, serving the simulated market, with faults on demand.

What it speaks (enough for ccxt.pro's `binance` and `binanceus` classes):

- REST under `/api/v3`: `exchangeInfo` (one spot market per simulated symbol,
  with its tick and lot filters), `depth` (snapshot with `lastUpdateId`),
  the trade history ccxt's `fetch_trades` reads (`aggTrades` by `fromId` or
  `startTime`/`endTime`, `historicalTrades` by `fromId`, `trades`: the last
  `trade_history` trades of each symbol), `ticker/24hr`, `ping`, `time`. Each request has a Binance weight; more than
  `weight_limit_per_minute` in a rolling minute is answered 429 with
  `Retry-After`, as Binance does. Every reply carries `X-MBX-USED-WEIGHT-1M`.
- Websocket at `/ws`, `/ws/<anything>` (raw payloads) and `/stream` (combined:
  `{"stream": name, "data": payload}`), with `?streams=a/b` on the path too.
  Methods `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, answered
  `{"result": ..., "id": ...}` (errors `{"error": {"code", "msg"}, "id"}`).
  Streams `<sym>@depth[@100ms|@1000ms]`, `<sym>@trade`, `<sym>@aggTrade`, `<sym>@ticker`,
  `<sym>@miniTicker`, `<sym>@bookTicker`. The server pings every
  `ping_interval_s` and answers pings; more than `ws_max_messages_per_s`
  incoming messages in a second closes the connection (Binance's limit is 5).
  permessage-deflate (which ccxt offers) is accepted only with `compress`:
  a zlib pass per frame on both sides would otherwise weigh on every rate
  measured through the emulator.

Market time advances at `speed` times the wall clock. Depth diffs go out one
per book change (`U == u`), or merged per symbol over each driver period when
`merge_depth` (then `U < u`, as Binance's `@100ms` streams); `U` of each diff
is the previous `u` + 1 unless a gap is injected. With `depth_lag_s` the diffs
go out that long after the book changed while REST snapshots show the book as
it is, so a snapshot is ahead of the diffs a client has received (Binance's
streams can trail its REST engine; clients must drop the older diffs).

Faults (the `ExchangeEmulator` methods, or `POST /_emulator/fault` with
`{"kind": ..., ...}`): `drop_connections`, `disconnect` (every websocket cut
and new ones refused for N seconds while the market trades on and REST
answers: trades to backfill), `stall` (connections go silent:
no data, no pings, no pongs), `burst` (the market runs N seconds ahead at
once: their frames go out back to back, as a backlog arrives after a stall),
`gap` (a symbol's next depth diffs are never sent), `malformed` (the next depth diff is sent truncated), `http_error`
(the next REST replies are 429/5xx), `slow_snapshot` (a symbol's next depth
snapshots are answered seconds late, with the book as it is then), `ws_reject`
(the next websocket handshakes are refused with an HTTP status). `GET /_emulator/stats` reports
what was served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from fluxforge_common.simulator import SimulatorConfig

from fluxforge_emulator.feed import (
    AGG_TRADE,
    BOOK_TICKER,
    DEPTH,
    MINI_TICKER,
    TICKER,
    TRADE,
    TRADE_HISTORY,
    EmulatedSymbol,
    Event,
    MarketFeed,
    PastTrade,
    decimals,
    fmt,
)

log = logging.getLogger("fluxforge.emulator")

# Stream name suffix -> stream kind.
_STREAM_KINDS = {
    "depth": DEPTH,
    "depth@100ms": DEPTH,
    "depth@1000ms": DEPTH,
    "trade": TRADE,
    "aggTrade": AGG_TRADE,
    "ticker": TICKER,
    "miniTicker": MINI_TICKER,
    "bookTicker": BOOK_TICKER,
}
_VALID_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)
_MAX_TRADES = 1000  # the most trades one request of the trade history returns
# Binance's request weights of the trade history endpoints.
_TRADE_WEIGHTS = {"/api/v3/aggTrades": 4, "/api/v3/historicalTrades": 25, "/api/v3/trades": 25}
_HTTP_REASONS = {
    418: "IP banned",
    429: "Too many requests; current limit is exceeded. Please use the websocket for live updates.",
    500: "Internal error; unable to process your request. Please try again.",
    502: "Bad gateway.",
    503: "Service Unavailable.",
    504: "Gateway timeout.",
}


def depth_weight(limit: int) -> int:
    """Binance's request weight of `GET /api/v3/depth` for a limit."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


@dataclass(frozen=True)
class EmulatorConfig:
    """What the emulator serves and how fast."""

    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    exchange: str = "binanceus"  # which of simulator.exchanges to serve
    speed: float = 1.0  # market seconds per wall second
    tick_s: float = 0.005  # driver period: steps due are applied and sent every this many seconds
    max_steps_per_tick: int = 5_000  # so a fast speed cannot hog the loop
    merge_depth: bool = False  # one diff per symbol per period (U < u), like @100ms streams
    depth_lag_s: float = 0.0  # depth diffs go out this long after the change; REST snapshots do not wait
    ping_interval_s: float = 20.0  # Binance pings every 20 s
    history_levels: int = 0  # > 0: record the true top-N book at every update id
    trade_history: int = TRADE_HISTORY  # trades kept per symbol for the REST trade history
    weight_limit_per_minute: int = 6_000
    ws_max_messages_per_s: int = 5
    compress: bool = False  # accept permessage-deflate when the client offers it
    host: str = "127.0.0.1"
    port: int = 0
    wall_clock_times: bool = True  # timestamps = market time shifted to start at the wall clock


@dataclass
class EmulatorStats:
    rest: Counter[str] = field(default_factory=Counter)  # path -> requests
    http_errors: Counter[int] = field(default_factory=Counter)  # status -> injected or rate-limit replies
    rate_limited: int = 0  # 429s from the weight limit itself (not injected)
    ws_connections: int = 0
    ws_rejected: int = 0
    ws_closed_for_rate: int = 0
    subscribe_requests: int = 0
    snapshots: int = 0
    frames: int = 0
    depth_events: int = 0
    trades: int = 0
    dropped_depth: int = 0
    malformed: int = 0
    slow_snapshots: int = 0
    snapshots_answered: list[str] = field(default_factory=list)  # symbol ids, "(slow)" marked, as answered
    stalls: int = 0
    drops: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rest": dict(self.rest),
            "http_errors": {str(k): v for k, v in self.http_errors.items()},
            "snapshots_answered": list(self.snapshots_answered),
            **{k: v for k, v in vars(self).items() if k not in ("rest", "http_errors", "snapshots_answered")},
        }


# A merged depth diff: its head fields, and bid/ask levels by price (last change wins).
_Merged = tuple[dict[str, Any], dict[float, tuple[str, str]], dict[float, tuple[str, str]]]


class _Conn:
    """One websocket client: its subscriptions and its fault state."""

    __slots__ = ("combined", "incoming", "names", "stalled", "transport", "ws")

    def __init__(
        self, ws: web.WebSocketResponse, combined: bool, transport: asyncio.Transport | None
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.combined = combined
        self.names: dict[tuple[str, str], str] = {}  # (symbol id, kind) -> stream name as subscribed
        self.stalled = False
        self.incoming: deque[float] = deque()


@dataclass
class _HttpFault:
    status: int
    remaining: int
    path: str | None
    retry_after_s: float | None


class ExchangeEmulator:
    """The server; `async with ExchangeEmulator(config) as emu:` runs it on a free port of 127.0.0.1."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config = config or EmulatorConfig()
        if not config.speed > 0:
            raise ValueError(f"speed must be positive, got {config.speed}")
        if not config.depth_lag_s >= 0:
            raise ValueError(f"depth_lag_s must be 0 or more, got {config.depth_lag_s}")
        offset = 0
        if config.wall_clock_times:
            offset = int(time.time() * 1000) - config.simulator.start_ms
        self.feed = MarketFeed(
            config.simulator,
            config.exchange,
            offset_ms=offset,
            history_levels=config.history_levels,
            trade_history=config.trade_history,
        )
        self.stats = EmulatorStats()
        self.port = 0
        self._conns: set[_Conn] = set()
        self._subscribers: dict[tuple[str, str], set[_Conn]] = {}
        self._drop_depth: Counter[str] = Counter()
        self._malformed: Counter[str] = Counter()  # symbol id or "*" -> frames to corrupt
        self._http_faults: list[_HttpFault] = []
        self._slow_snapshots: dict[str, list[float]] = {}  # symbol id -> delays of its next snapshots
        self._lagging: deque[tuple[float, Event]] = deque()  # (loop time due, depth diff) held back
        self._ws_rejects: list[tuple[int, int]] = []  # [status, remaining]
        self._ws_down_until = 0.0  # time.monotonic() until which handshakes are refused (`disconnect`)
        self._weights: deque[tuple[float, int]] = deque()
        self._weight_used = 0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._paused = False
        self._burst_ms = 0.0  # market time still to run ahead at once
        self.sent_log: list[tuple[str, str, str]] | None = None  # (symbol id, kind, payload) when recording

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> ExchangeEmulator:
        app = web.Application()
        self._add_routes(app)
        app.router.add_post("/_emulator/fault", self._fault_endpoint)
        app.router.add_get("/_emulator/stats", self._stats_endpoint)
        runner = self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self._tasks.append(asyncio.create_task(self._drive(), name="emulator driver"))
        log.info("exchange emulator (%s) on %s", self.config.exchange, self.rest_url)
        return self

    def _add_routes(self, app: web.Application) -> None:
        """The exchange's REST and websocket endpoints."""
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/depth", self._depth)
        for path in _TRADE_WEIGHTS:
            app.router.add_get(path, self._trade_history)
        app.router.add_get("/api/v3/ticker/24hr", self._ticker)
        app.router.add_get("/api/v3/ping", self._ping)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/ws/{rest:.*}", self._ws)
        app.router.add_get("/stream", self._ws)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ExchangeEmulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- addresses ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"{self.base_url}/api/v3"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}/ws"

    def ccxt_urls(self) -> dict[str, Any]:
        """The `urls` override that points ccxt's binance/binanceus at this emulator."""
        rest = self.rest_url
        return {
            "api": {
                "ws": {"spot": self.ws_url},
                "public": rest,
                "private": rest,
                "v3": rest,
                "v1": f"{self.base_url}/api/v1",
                "sapi": f"{self.base_url}/sapi/v1",
            }
        }

    def ccxt_options(self) -> dict[str, Any]:
        """Options ccxt needs here beyond the URLs: spot markets only (the emulator has no futures API)."""
        return {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False}

    # -- faults -------------------------------------------------------------------

    def drop_connections(self) -> int:
        """Cut every websocket connection at once (TCP abort, no close frame); returns how many."""
        conns = list(self._conns)
        for conn in conns:
            if conn.transport is not None:
                conn.transport.abort()
            self._remove(conn)
        self.stats.drops += len(conns)
        return len(conns)

    def disconnect(self, seconds: float) -> int:
        """Cut every websocket and refuse new ones (HTTP 503) for `seconds`, while the market trades on
        and REST answers: a network outage the trade history can fill. Returns the connections cut."""
        if not seconds > 0:
            raise ValueError(f"a disconnect needs a positive number of seconds, got {seconds}")
        self._ws_down_until = time.monotonic() + seconds
        return self.drop_connections()

    def stall(self, seconds: float | None = None) -> int:
        """Current connections go silent (no data, pings or pongs): for `seconds`, or until closed.

        Data meant for them meanwhile is dropped, as it is on a dead link.
        """
        conns = [c for c in self._conns if not c.stalled]
        for conn in conns:
            conn.stalled = True
        self.stats.stalls += len(conns)
        if seconds is not None:

            def resume() -> None:
                for conn in conns:
                    conn.stalled = False

            asyncio.get_running_loop().call_later(seconds, resume)
        return len(conns)

    def burst(self, seconds: float) -> None:
        """Run the market `seconds` ahead at once: their frames go out back to back, then the pace resumes.

        Event times are market times, so they run `seconds` ahead of the wall clock afterwards.
        """
        if not seconds > 0:
            raise ValueError(f"a burst needs a positive number of seconds, got {seconds}")
        self._burst_ms += seconds * 1000

    def gap(self, symbol: str, count: int = 1) -> None:
        """Never send the next `count` depth diffs of `symbol`: the client sees update ids jump."""
        self._drop_depth[self.feed.symbol(symbol).id] += count

    def malformed(self, symbol: str | None = None, count: int = 1) -> None:
        """Send the next `count` depth diffs (of `symbol`, or of any symbol) cut in half: invalid JSON."""
        self._malformed[self.feed.symbol(symbol).id if symbol else "*"] += count

    def http_error(
        self, status: int, count: int = 1, path: str | None = None, retry_after_s: float | None = None
    ) -> None:
        """Answer the next `count` REST requests (whose path and query contain `path`, if given) with `status`."""
        self._http_faults.append(_HttpFault(status, count, path, retry_after_s))

    def slow_snapshot(self, symbol: str, seconds: float, count: int = 1) -> None:
        """Answer the next `count` depth snapshots of `symbol` `seconds` late, with the book as it is then."""
        if not seconds > 0 or count < 1:
            raise ValueError(f"a slow snapshot needs seconds > 0 and count >= 1, got {seconds} and {count}")
        self._slow_snapshots.setdefault(self.feed.symbol(symbol).id, []).extend([seconds] * count)

    def ws_reject(self, status: int, count: int = 1) -> None:
        """Refuse the next `count` websocket handshakes with HTTP `status`."""
        self._ws_rejects.append((status, count))

    def pause(self, paused: bool = True) -> None:
        """Stop (or resume) the market clock: no steps, no events, until resumed."""
        self._paused = paused

    def apply_fault(self, spec: dict[str, Any]) -> Any:
        """One fault from a JSON spec, e.g. `{"kind": "gap", "symbol": "BTC/USDT", "count": 1}`."""
        args = dict(spec)
        kind = args.pop("kind")
        actions: dict[str, Callable[..., Any]] = {
            "drop_connections": self.drop_connections,
            "disconnect": self.disconnect,
            "stall": self.stall,
            "burst": self.burst,
            "gap": self.gap,
            "malformed": self.malformed,
            "http_error": self.http_error,
            "slow_snapshot": self.slow_snapshot,
            "ws_reject": self.ws_reject,
            "pause": self.pause,
        }
        if kind not in actions:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(actions)}")
        return actions[kind](**args)

    # -- truth for tests ------------------------------------------------------------

    def true_book(
        self, symbol: str, update_id: int
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The recorded top levels of `symbol` right after update `update_id` (needs `history_levels`)."""
        return self.feed.symbol(symbol).history[update_id]

    # -- market driver ----------------------------------------------------------------

    async def _drive(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        market_ms = float(self.feed.next_ts)
        last = loop.time()
        while True:
            await asyncio.sleep(cfg.tick_s)
            now = loop.time()
            if not self._paused:
                market_ms += (now - last) * 1000 * cfg.speed + self._burst_ms
                self._burst_ms = 0.0
            last = now
            try:
                await self._send_lagging(now)
                if self._paused:
                    continue
                await self._emit(self.feed.step_until(int(market_ms), cfg.max_steps_per_tick))
            except Exception:  # a bug here must be seen, not silently stop the market
                log.exception("emulator driver failed")
                raise

    async def _emit(self, steps: Any) -> None:
        merge = self.config.merge_depth
        merged: dict[str, _Merged] = {}
        out: list[Event] = []
        for state, events in steps:
            for event in events:
                if event.kind == DEPTH:
                    self.stats.depth_events += 1
                    if merge:
                        self._merge(merged, state, event)
                        continue
                elif event.kind == TRADE:
                    self.stats.trades += 1
                out.append(event)
        for sid, (head, bids, asks) in merged.items():
            head["b"] = [[p, q] for p, q in bids.values()]
            head["a"] = [[p, q] for p, q in asks.values()]
            out.append(Event(sid, DEPTH, orjson.dumps(head).decode()))
        lag = self.config.depth_lag_s
        for event in out:
            if lag and event.kind == DEPTH:
                self._lagging.append((asyncio.get_running_loop().time() + lag, event))
            else:
                await self._publish(event)

    async def _send_lagging(self, now: float) -> None:
        """The depth diffs held back by `depth_lag_s` that are due at loop time `now`, in order."""
        lagging = self._lagging
        while lagging and lagging[0][0] <= now:
            await self._publish(lagging.popleft()[1])

    @staticmethod
    def _merge(
        merged: dict[str, _Merged],
        state: EmulatedSymbol,
        event: Event,
    ) -> None:
        diff = orjson.loads(event.payload)
        entry = merged.get(state.id)
        if entry is None:
            entry = merged[state.id] = (diff, {}, {})
        head, bids, asks = entry
        head["u"], head["E"] = diff["u"], diff["E"]
        for price, qty in diff["b"]:
            bids[float(price)] = (price, qty)
        for price, qty in diff["a"]:
            asks[float(price)] = (price, qty)

    def _outgoing(self, sid: str, kind: str, payload: str) -> str | None:
        """The payload as the injected faults let it go out (None: dropped for a gap), logged when recording."""
        if kind == DEPTH:
            if self._drop_depth[sid] > 0:
                self._drop_depth[sid] -= 1
                self.stats.dropped_depth += 1
                return None
            for target in (sid, "*"):
                if self._malformed[target] > 0:
                    self._malformed[target] -= 1
                    self.stats.malformed += 1
                    payload = payload[: len(payload) // 2]
                    break
        if self.sent_log is not None:
            self.sent_log.append((sid, kind, payload))
        return payload

    async def _publish(self, event: Event) -> None:
        key = (event.symbol_id, event.kind)
        payload = self._outgoing(event.symbol_id, event.kind, event.payload)
        if payload is None:
            return
        conns = self._subscribers.get(key)
        if not conns:
            return
        for conn in list(conns):
            if conn.stalled or conn.ws.closed:
                continue
            text = f'{{"stream":"{conn.names[key]}","data":{payload}}}' if conn.combined else payload
            await self._send_frame(conn, text)

    async def _send_frame(self, conn: _Conn, text: str) -> None:
        """One market-data frame to one connection; a connection that fails is dropped."""
        try:
            await conn.ws.send_str(text)
        except (ConnectionResetError, RuntimeError):
            self._remove(conn)
            return
        self.stats.frames += 1

    # -- REST ---------------------------------------------------------------------------

    def _charge(self, request: web.Request, weight: int) -> web.Response | None:
        """Count the request; an injected fault or the weight limit answers it instead (else None)."""
        self.stats.rest[request.path] += 1
        for fault in self._http_faults:
            if fault.remaining > 0 and (fault.path is None or fault.path in request.path_qs):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._http_faults.remove(fault)
                self.stats.http_errors[fault.status] += 1
                return self._error_reply(fault.status, fault.retry_after_s)
        now = time.monotonic()
        weights = self._weights
        while weights and weights[0][0] <= now - 60:
            self._weight_used -= weights.popleft()[1]
        if self._weight_used + weight > self.config.weight_limit_per_minute:
            self.stats.rate_limited += 1
            self.stats.http_errors[429] += 1
            retry = max(1.0, 60 - (now - weights[0][0])) if weights else 1.0
            return self._error_reply(429, retry)
        weights.append((now, weight))
        self._weight_used += weight
        return None

    def _error_reply(self, status: int, retry_after_s: float | None) -> web.Response:
        code = -1003 if status in (418, 429) else -1001
        headers = {"X-MBX-USED-WEIGHT-1M": str(self._weight_used)}
        if retry_after_s is not None:
            headers["Retry-After"] = str(int(retry_after_s) if retry_after_s >= 1 else retry_after_s)
        body = {"code": code, "msg": _HTTP_REASONS.get(status, "error")}
        return web.json_response(body, status=status, headers=headers, dumps=_dumps)

    def _reply(self, body: Any) -> web.Response:
        return web.json_response(body, headers={"X-MBX-USED-WEIGHT-1M": str(self._weight_used)}, dumps=_dumps)

    async def _exchange_info(self, request: web.Request) -> web.Response:
        if (refused := self._charge(request, 20)) is not None:
            return refused
        symbols = []
        for state in self.feed.symbols.values():
            spec = state.market.spec
            base, quote = state.market.symbol.split("/", 1)
            tick_digits, lot_digits = decimals(spec.tick), decimals(spec.lot)
            symbols.append(
                {
                    "symbol": state.id,
                    "status": "TRADING",
                    "baseAsset": base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": True,
                    "cancelReplaceAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": f"{float(spec.tick):.{max(tick_digits, 2)}f}",
                            "maxPrice": "1000000.00",
                            "tickSize": spec.tick,
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": f"{float(spec.lot):.{max(lot_digits, 2)}f}",
                            "maxQty": "9000.00",
                            "stepSize": spec.lot,
                        },
                        {"filterType": "MIN_NOTIONAL", "minNotional": "1.00", "applyToMarket": True},
                    ],
                    "permissions": ["SPOT"],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
                }
            )
        limit = self.config.weight_limit_per_minute
        return self._reply(
            {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": limit,
                    }
                ],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    async def _depth(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            limit = -1
        if (refused := self._charge(request, depth_weight(max(limit, 1)))) is not None:
            return refused
        sid = request.query.get("symbol", "")
        if sid not in self.feed.symbols:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400, dumps=_dumps)
        if limit not in _VALID_DEPTH_LIMITS:
            return web.json_response(
                {"code": -1100, "msg": "Illegal characters found in parameter 'limit'."},
                status=400,
                dumps=_dumps,
            )
        answered = sid
        if delays := self._slow_snapshots.get(sid):
            self.stats.slow_snapshots += 1
            answered += " (slow)"
            await asyncio.sleep(delays.pop(0))
        self.stats.snapshots += 1
        self.stats.snapshots_answered.append(answered)
        return self._reply(self.feed.snapshot(sid, limit))

    async def _trade_history(self, request: web.Request) -> web.Response:
        """`aggTrades`, `historicalTrades` and `trades`: the kept trades as Binance lists them."""
        path = request.path
        if (refused := self._charge(request, _TRADE_WEIGHTS[path])) is not None:
            return refused
        query = request.query
        sid = query.get("symbol", "")
        if sid not in self.feed.symbols:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400, dumps=_dumps)
        try:
            limit = min(int(query.get("limit", "500")), _MAX_TRADES)
            numbers = {k: int(query[k]) for k in ("fromId", "startTime", "endTime") if k in query}
        except ValueError:
            return web.json_response(
                {"code": -1100, "msg": "Illegal characters found in a parameter."}, status=400, dumps=_dumps
            )
        from_id = numbers.get("fromId")
        if path == "/api/v3/aggTrades":
            trades = self.feed.past_trades(
                sid,
                limit,
                from_agg_id=from_id,
                start_ms=numbers.get("startTime"),
                end_ms=numbers.get("endTime"),
            )
            return self._reply([_agg_trade(t) for t in trades])
        trades = self.feed.past_trades(sid, limit, from_id=from_id if path != "/api/v3/trades" else None)
        return self._reply([_trade(t) for t in trades])

    async def _ticker(self, request: web.Request) -> web.Response:
        if (refused := self._charge(request, 2)) is not None:
            return refused
        sid = request.query.get("symbol", "")
        if sid not in self.feed.symbols:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400, dumps=_dumps)
        return self._reply(self.feed.ticker_24hr(sid))

    async def _ping(self, request: web.Request) -> web.Response:
        if (refused := self._charge(request, 1)) is not None:
            return refused
        return self._reply({})

    async def _time(self, request: web.Request) -> web.Response:
        if (refused := self._charge(request, 1)) is not None:
            return refused
        return self._reply({"serverTime": int(time.time() * 1000)})

    # -- control endpoint ----------------------------------------------------------------

    async def _fault_endpoint(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json(loads=orjson.loads)
            result = self.apply_fault(spec)
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"error": str(exc)}, status=400, dumps=_dumps)
        return web.json_response({"ok": True, "result": result}, dumps=_dumps)

    async def _stats_endpoint(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict(), dumps=_dumps)

    # -- websocket ------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if time.monotonic() < self._ws_down_until:
            self.stats.ws_rejected += 1
            return web.json_response({"code": -1001, "msg": _HTTP_REASONS[503]}, status=503, dumps=_dumps)
        for i, (status, remaining) in enumerate(self._ws_rejects):
            if remaining > 0:
                self._ws_rejects[i] = (status, remaining - 1)
                self.stats.ws_rejected += 1
                headers = {"Retry-After": "1"} if status == 429 else {}
                return web.json_response(
                    {"code": -1003, "msg": _HTTP_REASONS.get(status, "error")},
                    status=status,
                    headers=headers,
                    dumps=_dumps,
                )
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20, compress=self.config.compress)
        await ws.prepare(request)
        conn = _Conn(ws, request.path.startswith("/stream"), request.transport)
        self._conns.add(conn)
        self.stats.ws_connections += 1
        names = [n for n in request.query.get("streams", "").split("/") if n]
        tail = request.match_info.get("rest", "")
        if tail and "@" in tail:
            names.append(tail)
        for name in names:
            self._subscribe(conn, name)
        await self._on_connect(conn)
        pinger = asyncio.create_task(self._ping_loop(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    if not self._within_rate(conn):
                        self.stats.ws_closed_for_rate += 1
                        await ws.close(code=1008, message=b"Too many requests")
                        break
                    if not conn.stalled:
                        await self._request(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    if not conn.stalled:
                        await ws.pong(msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            pinger.cancel()
            self._remove(conn)
        return ws

    async def _on_connect(self, conn: _Conn) -> None:
        """What the exchange sends a new connection before any request (Binance: nothing)."""

    def _within_rate(self, conn: _Conn) -> bool:
        now = time.monotonic()
        conn.incoming.append(now)
        while conn.incoming and conn.incoming[0] <= now - 1.0:
            conn.incoming.popleft()
        return len(conn.incoming) <= self.config.ws_max_messages_per_s

    async def _ping_loop(self, conn: _Conn) -> None:
        with contextlib.suppress(ConnectionResetError, RuntimeError, asyncio.CancelledError):
            while not conn.ws.closed:
                await asyncio.sleep(self.config.ping_interval_s)
                if not conn.stalled:
                    await conn.ws.ping()

    async def _request(self, conn: _Conn, text: str) -> None:
        try:
            request = orjson.loads(text)
            method = request["method"]
            rid = request.get("id")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            await conn.ws.send_str(_dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}))
            return
        params = request.get("params") or []
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            self.stats.subscribe_requests += method == "SUBSCRIBE"
            bad = [p for p in params if not isinstance(p, str) or self._parse(p) is None]
            if bad or not isinstance(params, list):
                reply = {"error": {"code": 2, "msg": f"Invalid request: unknown stream(s) {bad}"}, "id": rid}
                await conn.ws.send_str(_dumps(reply))
                return
            # The reply goes out before the first event of a new stream, as on Binance.
            await conn.ws.send_str(_dumps({"result": None, "id": rid}))
            for name in params:
                if method == "SUBSCRIBE":
                    self._subscribe(conn, name)
                else:
                    self._unsubscribe(conn, name)
        elif method == "LIST_SUBSCRIPTIONS":
            await conn.ws.send_str(_dumps({"result": sorted(conn.names.values()), "id": rid}))
        else:
            reply = {"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": rid}
            await conn.ws.send_str(_dumps(reply))

    def _parse(self, name: str) -> tuple[str, str] | None:
        sym, _, suffix = name.partition("@")
        kind = _STREAM_KINDS.get(suffix)
        sid = sym.upper()
        if kind is None or sid not in self.feed.symbols:
            return None
        return sid, kind

    def _subscribe(self, conn: _Conn, name: str) -> None:
        key = self._parse(name)
        if key is not None:
            self._add_subscriber(conn, key, name)

    def _unsubscribe(self, conn: _Conn, name: str) -> None:
        key = self._parse(name)
        if key is not None:
            self._drop_subscriber(conn, key)

    def _add_subscriber(self, conn: _Conn, key: tuple[str, str], name: str) -> None:
        """`conn` gets the (symbol id, kind) events from now on; `name` is the stream as it subscribed."""
        conn.names[key] = name
        self._subscribers.setdefault(key, set()).add(conn)

    def _drop_subscriber(self, conn: _Conn, key: tuple[str, str]) -> None:
        conn.names.pop(key, None)
        self._subscribers.get(key, set()).discard(conn)

    def _remove(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        for key in conn.names:
            self._subscribers.get(key, set()).discard(conn)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _agg_trade(trade: PastTrade) -> dict[str, Any]:
    return {
        "a": trade.agg_id,
        "p": fmt(trade.price),
        "q": fmt(trade.amount),
        "f": trade.id,
        "l": trade.id,
        "T": trade.ts,
        "m": trade.buyer_is_maker,
        "M": True,
    }


def _trade(trade: PastTrade) -> dict[str, Any]:
    return {
        "id": trade.id,
        "price": fmt(trade.price),
        "qty": fmt(trade.amount),
        "quoteQty": fmt(trade.price * trade.amount),
        "time": trade.ts,
        "isBuyerMaker": trade.buyer_is_maker,
        "isBestMatch": True,
    }
