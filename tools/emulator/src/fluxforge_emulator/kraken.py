"""A Kraken spot exchange on 127.0.0.1 (REST and websocket API v2), serving the simulated market.

Kraken is the second protocol style the collector is held against: no REST
snapshot and no update ids. A book subscription (`depth` 10, 25, 100, 500
or 1000) gets its snapshot in-band, then updates of the levels that changed
within that depth (qty 0 removes one, a level moving into range is sent);
every book message carries a CRC32 checksum of the top 10 levels, the only
way a client can tell it missed an update. Trades carry per-pair
`trade_id`s that count up by one, and a trade subscription starts with the
last 50 (so a client that reconnects can fill what it missed); prices and
sizes are JSON numbers.

What it speaks (enough for ccxt.pro's `kraken` class): REST under
`/0/public`: `Assets`, `AssetPairs` (one pair per simulated symbol, its
`wsname` the unified symbol), `Trades` (the trade history ccxt's
`fetch_trades` reads: up to `count` trades from `since`, in seconds or
nanoseconds, each `[price, volume, time, side, type, misc, trade_id]`, and
`last`, the nanosecond time to ask from next), `Time`, `SystemStatus`. Websocket at `/v2`:
a `status` message on connect, `subscribe`/`unsubscribe` of `book`,
`trade` and `ticker` (acknowledged per symbol, with `req_id`), `ping` ->
`pong`, and a `heartbeat` every second. The faults are the Binance
emulator's: `gap` skips a symbol's next book updates (the client's next
checksum then fails: while the updates after a skipped one re-send every level
it changed, so that the client's top 10 is still true, they are skipped too),
`malformed` cuts one in half, `http_error` answers REST, `drop_connections`,
`disconnect` and `stall` hit the websockets; `refuse_book_subscription`
answers a pair's next book subscriptions with an error.
Kraken has no REST snapshot, so `slow_snapshot` and `depth_lag_s` (which
make one ahead of the diffs) are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import Counter, deque
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web
from fluxforge_common.kraken import KRAKEN_CHECKSUM_LEVELS, kraken_book_checksum

from fluxforge_emulator.feed import DEPTH, TICKER, TRADE, EmulatedSymbol, decimals, fmt
from fluxforge_emulator.server import EmulatorConfig, ExchangeEmulator, _Conn

BOOK_DEPTHS = (10, 25, 100, 500, 1000)
TRADE_SNAPSHOT = 50  # trades sent on subscribing to a symbol's trades, as Kraken does
MAX_TRADES = 1000  # the most trades one REST `Trades` request returns, as on Kraken
BOOK_TRUTH = "book_truth"  # sent_log kind of the true book of a subscribed depth after each change
_CHANNELS = {"book": DEPTH, "trade": TRADE, "ticker": TICKER}
_Side = dict[float, float]
_Book = tuple[_Side, _Side]
_Update = tuple[_Book, _Book, _Book]  # a book update's changes, the true book before it and after it


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "000Z"


def _levels(side: list[tuple[float, float]]) -> list[dict[str, float]]:
    return [{"price": price, "qty": qty} for price, qty in side]


class KrakenEmulator(ExchangeEmulator):
    """The server; `async with KrakenEmulator(config) as emu:` (config.exchange names the simulated exchange)."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        config = config or EmulatorConfig(exchange="kraken")
        if config.depth_lag_s:
            raise ValueError(
                "depth_lag_s is Binance's: Kraken sends its book snapshots in-band, with the diffs"
            )
        # Kraken allows far more than Binance's 5 requests a second on a connection.
        super().__init__(replace(config, ws_max_messages_per_s=max(config.ws_max_messages_per_s, 50)))
        # The book each subscribed depth last reached, per symbol id: updates are the changes from it.
        self._tops: dict[tuple[str, int], tuple[_Side, _Side]] = {}
        # Market events are rendered a driver period at a time, then sent: a subscription made
        # while they are sent has a newer snapshot and must skip them. Driver period -> number.
        self._period = 0
        self._joined: dict[tuple[int, str, str], int] = {}  # (connection, symbol id, kind) -> period
        self._heartbeat_tasks: set[asyncio.Task[None]] = set()
        self._recent_trades: dict[str, deque[dict[str, Any]]] = {}  # symbol id -> the last 50, for snapshots
        # The book a client holds of a subscribed depth since an update of it was skipped (`gap`), until
        # its top 10 differs from the true one: then its checksum fails. (symbol id, depth) -> book.
        self._gapped_books: dict[tuple[str, int], _Book] = {}
        self._refused_books: Counter[str] = Counter()  # unified symbol -> book subscriptions to refuse

    def _add_routes(self, app: web.Application) -> None:
        for name, handler in (
            ("Assets", self._assets),
            ("AssetPairs", self._asset_pairs),
            ("Trades", self._trades),
            ("Time", self._server_time),
            ("SystemStatus", self._system_status),
        ):
            app.router.add_get(f"/0/public/{name}", handler)
        app.router.add_get("/v2", self._ws)

    def refuse_book_subscription(self, symbol: str, count: int = 1) -> None:
        """Refuse the next `count` book subscriptions of `symbol` (a unified symbol), as Kraken does when
        a client sends too many requests: `success: false`, and no snapshot."""
        self._refused_books[symbol] += count

    def slow_snapshot(self, symbol: str, seconds: float, count: int = 1) -> None:
        raise ValueError("Kraken has no REST book snapshot to slow down: its snapshots come in-band")

    @property
    def rest_url(self) -> str:
        return self.base_url

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}/v2"

    def ccxt_urls(self) -> dict[str, Any]:
        """The `urls` override that points ccxt's kraken at this emulator."""
        ws = {name: self.ws_url for name in ("public", "private", "publicV2", "privateV2")}
        return {"api": {"public": self.base_url, "private": self.base_url, "ws": ws}}

    def ccxt_options(self) -> dict[str, Any]:
        return {}

    def pair_decimals(self, state: EmulatedSymbol) -> tuple[int, int]:
        spec = state.market.spec
        return decimals(spec.tick), decimals(spec.lot)

    # -- REST ---------------------------------------------------------------------------

    def _result(self, result: Any) -> web.Response:
        return web.json_response({"error": [], "result": result}, dumps=_dumps)

    async def _assets(self, request: web.Request) -> web.Response:
        if (refused := self._charge(request, 1)) is not None:
            return refused
        codes = sorted({c for s in self.feed.symbols.values() for c in s.market.symbol.split("/")})
        info = {"aclass": "currency", "decimals": 10, "display_decimals": 5, "status": "enabled"}
        return self._result({code: {**info, "altname": code} for code in codes})

    async def _asset_pairs(self, request: web.Request) -> web.Response:
        if (refused := self._charge(request, 1)) is not None:
            return refused
        pairs = {}
        for state in self.feed.symbols.values():
            base, quote = state.market.symbol.split("/", 1)
            price_decimals, lot_decimals = self.pair_decimals(state)
            pairs[state.id] = {
                "altname": state.id,
                "wsname": state.market.symbol,
                "aclass_base": "currency",
                "base": base,
                "aclass_quote": "currency",
                "quote": quote,
                "pair_decimals": price_decimals,
                "cost_decimals": 5,
                "lot_decimals": lot_decimals,
                "lot_multiplier": 1,
                "leverage_buy": [],
                "leverage_sell": [],
                "fees": [[0, 0.26]],
                "fees_maker": [[0, 0.16]],
                "fee_volume_currency": "ZUSD",
                "margin_call": 80,
                "margin_stop": 40,
                "ordermin": state.market.spec.lot,
                "costmin": "0.5",
                "tick_size": state.market.spec.tick,
                "status": "online",
            }
        return self._result(pairs)

    async def _trades(self, request: web.Request) -> web.Response:
        if (refused := self._charge(request, 1)) is not None:
            return refused
        pair = request.query.get("pair", "")
        if pair not in self.feed.symbols:
            return web.json_response({"error": ["EQuery:Unknown asset pair"]}, dumps=_dumps)
        try:
            since = float(request.query.get("since", "0"))
            count = min(int(request.query.get("count", str(MAX_TRADES))), MAX_TRADES)
        except ValueError:
            return web.json_response({"error": ["EGeneral:Invalid arguments"]}, dumps=_dumps)
        since_ms = int(since / 1e6) if since > 1e12 else int(since * 1000)  # nanoseconds or seconds
        trades = self.feed.past_trades(pair, count, start_ms=since_ms)
        rows = [
            [fmt(t.price), fmt(t.amount), t.ts / 1000, "s" if t.buyer_is_maker else "b", "m", "", t.id]
            for t in trades
        ]
        last = trades[-1].ts * 1_000_000 if trades else int(since_ms * 1_000_000)
        return self._result({pair: rows, "last": str(last)})

    async def _server_time(self, request: web.Request) -> web.Response:
        now = dt.datetime.now(dt.UTC)
        return self._result(
            {"unixtime": int(now.timestamp()), "rfc1123": now.strftime("%a, %d %b %y %H:%M:%S +0000")}
        )

    async def _system_status(self, request: web.Request) -> web.Response:
        return self._result({"status": "online", "timestamp": dt.datetime.now(dt.UTC).isoformat()})

    # -- websocket ------------------------------------------------------------------------

    async def _on_connect(self, conn: _Conn) -> None:
        status = {"api_version": "v2", "connection_id": id(conn), "system": "online", "version": "2.0.10"}
        await conn.ws.send_str(_dumps({"channel": "status", "type": "update", "data": [status]}))
        task = asyncio.create_task(self._heartbeats(conn))
        self._heartbeat_tasks.add(task)
        task.add_done_callback(self._heartbeat_tasks.discard)

    async def _heartbeats(self, conn: _Conn) -> None:
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            while not conn.ws.closed:
                await asyncio.sleep(1.0)
                if conn.names and not conn.stalled and not conn.ws.closed:
                    await conn.ws.send_str('{"channel":"heartbeat"}')

    async def _request(self, conn: _Conn, text: str) -> None:
        try:
            request = orjson.loads(text)
            method, rid = request["method"], request.get("req_id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await conn.ws.send_str(_dumps({"error": "EGeneral:Invalid arguments", "success": False}))
            return
        now = _iso(int(self.feed.next_ts))
        stamp = {"time_in": now, "time_out": now, "req_id": rid}
        if method == "ping":
            await conn.ws.send_str(_dumps({"method": "pong", **stamp}))
            return
        params = request.get("params") or {}
        channel, symbols = params.get("channel"), params.get("symbol") or []
        if method not in ("subscribe", "unsubscribe") or channel not in _CHANNELS:
            error = f"EGeneral:Invalid arguments: {method} {channel}"
            await conn.ws.send_str(_dumps({"error": error, "method": method, "success": False, **stamp}))
            return
        self.stats.subscribe_requests += method == "subscribe"
        depth = int(params.get("depth", 10))
        for symbol in symbols:
            state = self._state(symbol)
            if state is None or (channel == "book" and depth not in BOOK_DEPTHS):
                error = f"EGeneral:Invalid arguments:symbol {symbol}"
                await conn.ws.send_str(_dumps({"error": error, "method": method, "success": False, **stamp}))
                continue
            if method == "subscribe" and channel == "book" and self._refused_books[symbol] > 0:
                self._refused_books[symbol] -= 1
                refused = {"error": "EGeneral:Too many requests", "method": method, "success": False}
                await conn.ws.send_str(_dumps({**refused, "symbol": symbol, **stamp}))
                continue
            result = {"channel": channel, "symbol": symbol, **({"depth": depth} if channel == "book" else {})}
            await conn.ws.send_str(_dumps({"method": method, "result": result, "success": True, **stamp}))
            key = (state.id, _CHANNELS[channel])
            if method == "unsubscribe":
                self._drop_subscriber(conn, key)
                continue
            self._add_subscriber(conn, key, f"{channel}@{depth}")
            if channel == "book":
                await conn.ws.send_str(self._book_snapshot(state, depth))
            elif channel == "ticker":
                await conn.ws.send_str(self._ticker_message(state, "snapshot"))
            elif params.get("snapshot", True) and (recent := self._recent_trades.get(state.id)):
                await conn.ws.send_str(_dumps({"channel": "trade", "type": "snapshot", "data": list(recent)}))

    def _add_subscriber(self, conn: _Conn, key: tuple[str, str], name: str) -> None:
        super()._add_subscriber(conn, key, name)
        self._joined[(id(conn), *key)] = self._period

    def _remove(self, conn: _Conn) -> None:
        super()._remove(conn)
        for key in [key for key in self._joined if key[0] == id(conn)]:
            del self._joined[key]

    def _state(self, symbol: str) -> EmulatedSymbol | None:
        """The state of a unified symbol (`BTC/USDT`; not an id, which Kraken's websocket does not take)."""
        with contextlib.suppress(KeyError):
            state = self.feed.symbol(symbol)
            if state.market.symbol == symbol:
                return state
        return None

    # -- market events ---------------------------------------------------------------------

    async def _emit(self, steps: Any) -> None:
        self._period += 1
        period = self._period
        # (symbol id, kind, payload, depth or 0, a book update's changes and the true books around it)
        out: list[tuple[str, str, str, int, _Update | None]] = []
        for state, events in steps:
            for event in events:
                if event.kind == DEPTH:
                    self.stats.depth_events += 1
                    for depth, payload, update in self._book_updates(state):
                        out.append((state.id, DEPTH, payload, depth, update))
                elif event.kind == TRADE:
                    self.stats.trades += 1
                    out.append((state.id, TRADE, self._trade_message(state, event.payload), 0, None))
                elif event.kind == TICKER:
                    out.append((state.id, TICKER, self._ticker_message(state, "update"), 0, None))
        for sid, kind, payload, depth, changes in out:
            await self._send(sid, kind, payload, depth, period, changes)

    async def _send(
        self, sid: str, kind: str, payload: str, depth: int, period: int, update: _Update | None
    ) -> None:
        outgoing = self._outgoing(sid, kind, payload)
        if update is not None:
            self._follow_gap(sid, depth, update, skipped=outgoing is None)
        if outgoing is None:
            return
        name = f"book@{depth}" if kind == DEPTH else None
        for conn in list(self._subscribers.get((sid, kind), ())):
            if conn.stalled or conn.ws.closed or (name is not None and conn.names.get((sid, kind)) != name):
                continue
            if self._joined.get((id(conn), sid, kind), 0) >= period:
                continue  # subscribed while this period was being sent: its snapshot is newer
            await self._send_frame(conn, outgoing)

    def _book(self, state: EmulatedSymbol, depth: int) -> tuple[_Side, _Side]:
        bids, asks = state.market.book(depth)
        return dict(bids), dict(asks)

    def _book_message(
        self, state: EmulatedSymbol, kind: str, bids: _Side, asks: _Side, top: tuple[_Side, _Side]
    ) -> str:
        price_decimals, lot_decimals = self.pair_decimals(state)
        top_bids = sorted(top[0].items(), reverse=True)
        top_asks = sorted(top[1].items())
        entry: dict[str, Any] = {
            "symbol": state.market.symbol,
            "bids": _levels(sorted(bids.items(), reverse=True)),
            "asks": _levels(sorted(asks.items())),
            "checksum": kraken_book_checksum(top_asks, top_bids, price_decimals, lot_decimals),
        }
        if kind == "update":
            entry["timestamp"] = _iso(state.market.ts + self.feed.offset_ms)
        return _dumps({"channel": "book", "type": kind, "data": [entry]})

    def _book_snapshot(self, state: EmulatedSymbol, depth: int) -> str:
        self._gapped_books.pop((state.id, depth), None)  # the client starts over from the true book
        top = self._tops.get((state.id, depth))
        if top is None:
            top = self._tops[(state.id, depth)] = self._book(state, depth)
        return self._book_message(state, "snapshot", top[0], top[1], top)

    def _follow_gap(self, sid: str, depth: int, update: _Update, skipped: bool) -> None:
        """Keep skipping `sid`'s updates while the client's book after a skipped one still checks out."""
        key = (sid, depth)
        changes, before, after = update
        held = self._gapped_books.get(key)
        if skipped:
            if held is None:
                self._gapped_books[key] = before
            return
        if held is None:
            return
        held = _changed(held, changes, depth)
        if _checksummed(held) == _checksummed(after):
            self._gapped_books[key] = held
            self._drop_depth[sid] += 1
        else:
            del self._gapped_books[key]

    def _book_updates(self, state: EmulatedSymbol) -> list[tuple[int, str, _Update]]:
        """The update of each subscribed depth of `state` whose levels changed, as (depth, payload,
        (its changes, the true book before it, the true book after it))."""
        updates = []
        for (sid, depth), (old_bids, old_asks) in list(self._tops.items()):
            if sid != state.id:
                continue
            bids, asks = top = self._book(state, depth)
            changed_bids = {p: q for p, q in bids.items() if old_bids.get(p) != q}
            changed_bids.update((p, 0.0) for p in old_bids.keys() - bids.keys())
            changed_asks = {p: q for p, q in asks.items() if old_asks.get(p) != q}
            changed_asks.update((p, 0.0) for p in old_asks.keys() - asks.keys())
            self._tops[(sid, depth)] = top
            if not (changed_bids or changed_asks):
                continue
            message = self._book_message(state, "update", changed_bids, changed_asks, top)
            updates.append((depth, message, ((changed_bids, changed_asks), (old_bids, old_asks), top)))
            if self.sent_log is not None:  # the true book after this update, for tests
                truth = {
                    "depth": depth,
                    "bids": sorted(bids.items(), reverse=True),
                    "asks": sorted(asks.items()),
                }
                self.sent_log.append((sid, BOOK_TRUTH, _dumps(truth)))
        return updates

    def _trade_message(self, state: EmulatedSymbol, binance_payload: str) -> str:
        trade = orjson.loads(binance_payload)
        data = {
            "symbol": state.market.symbol,
            "side": "sell" if trade["m"] else "buy",  # the maker bought: the taker sold
            "price": float(trade["p"]),
            "qty": float(trade["q"]),
            "ord_type": "market",
            "trade_id": trade["t"],
            "timestamp": _iso(trade["T"]),
        }
        self._recent_trades.setdefault(state.id, deque(maxlen=TRADE_SNAPSHOT)).append(data)
        return _dumps({"channel": "trade", "type": "update", "data": [data]})

    def _ticker_message(self, state: EmulatedSymbol, kind: str) -> str:
        day = state.day()
        data = {
            "symbol": state.market.symbol,
            "bid": day.bid,
            "bid_qty": day.bid_qty,
            "ask": day.ask,
            "ask_qty": day.ask_qty,
            "last": day.last,
            "volume": day.base_volume,
            "vwap": day.vwap,
            "low": state.low,
            "high": state.high,
            "change": day.change,
            "change_pct": round(day.change / state.open_price * 100, 2),
        }
        return _dumps({"channel": "ticker", "type": kind, "data": [data]})


def _changed(book: _Book, changes: _Book, depth: int) -> _Book:
    """`book` with `changes` applied (a qty of 0 removes the level), its best `depth` levels a side, as a
    client keeps it."""
    sides = []
    for side, changed, best_first in zip(book, changes, (True, False), strict=True):
        levels = sorted(((p, q) for p, q in {**side, **changed}.items() if q), reverse=best_first)
        sides.append(dict(levels[:depth]))
    return sides[0], sides[1]


def _checksummed(book: _Book) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The levels a Kraken checksum covers: the best bids and asks."""
    n = KRAKEN_CHECKSUM_LEVELS
    return sorted(book[0].items(), reverse=True)[:n], sorted(book[1].items())[:n]


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
