"""The simulated markets of one exchange, stepped in event-time order and rendered as Binance stream events.

`MarketFeed` owns one `SymbolMarket` per symbol (the same markets, from the same
seed, as `fluxforge run`'s simulator) and turns each step into the payloads
Binance's spot websocket sends: `depthUpdate` diffs carrying first and final
update ids (`U`, `u`), one `trade` per level a market order took (and one
`aggTrade`: a market order's fills at one price are one aggregate, and each
of its fills is at its own level, so each is one aggregate with its own
aggregate id), and `24hrTicker` / `24hrMiniTicker` / `bookTicker` events. It
also answers what the REST API needs (the full book with `lastUpdateId`, the
last `trade_history` trades of each symbol) and, when asked to, records the
true top of book at every update id so tests can check what a client rebuilt.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson
from fluxforge_common.messages.envelopes import Level
from fluxforge_common.simulator import SimulatorConfig, SymbolMarket, build_markets
from fluxforge_common.simulator.specs import decimal_units

# Stream kinds a client can subscribe to, per symbol.
DEPTH, TRADE, AGG_TRADE = "depth", "trade", "aggTrade"
TICKER, MINI_TICKER, BOOK_TICKER = "ticker", "miniTicker", "bookTicker"
KINDS = (DEPTH, TRADE, AGG_TRADE, TICKER, MINI_TICKER, BOOK_TICKER)
TRADE_HISTORY = 10_000  # trades kept per symbol for the REST trade history


def market_id(symbol: str) -> str:
    """`BTC/USDT` -> `BTCUSDT`, Binance's symbol id."""
    return symbol.replace("/", "").split(":", 1)[0]


def decimals(step: str) -> int:
    """Digits after the point of a tick or lot size such as "0.01"."""
    return len(str(decimal_units(step)[1])) - 1


def fmt(value: float) -> str:
    """A price or size as Binance writes it: a decimal string with 8 places."""
    return f"{value:.8f}"


def _levels(levels: list[Level]) -> list[list[str]]:
    return [[fmt(p), fmt(q)] for p, q in levels]


@dataclass
class Event:
    """One stream payload for one symbol (JSON text, rendered once for every subscriber)."""

    symbol_id: str
    kind: str
    payload: str


class DayFigures(NamedTuple):
    """What a 24h ticker reports of a symbol, whatever the exchange's format."""

    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    last: float
    change: float  # last - the day's open
    base_volume: float
    quote_volume: float
    vwap: float


class PastTrade(NamedTuple):
    """One trade as the REST trade history serves it."""

    id: int
    agg_id: int
    ts: int  # exchange time, ms
    price: float
    amount: float
    buyer_is_maker: bool  # the taker sold


@dataclass
class EmulatedSymbol:
    """One symbol the emulator serves: its market and the running numbers its ticker reports."""

    market: SymbolMarket
    id: str
    open_price: float
    high: float
    low: float
    first_trade_id: int | None = None
    last_trade_id: int | None = None
    trade_count: int = 0
    last_qty: float = 0.0
    touch: tuple[Level, Level] | None = None
    history: dict[int, tuple[list[Level], list[Level]]] = field(default_factory=dict)
    next_agg_id: int = 1
    trades: deque[PastTrade] = field(default_factory=lambda: deque(maxlen=TRADE_HISTORY))

    def day(self) -> DayFigures:
        market = self.market
        (bid, bid_qty), (ask, ask_qty) = market.touch()
        base_volume, quote_volume = market.volumes()
        last = market.last_price
        vwap = quote_volume / base_volume if base_volume else last
        change = last - self.open_price
        return DayFigures(bid, bid_qty, ask, ask_qty, last, change, base_volume, quote_volume, vwap)


class MarketFeed:
    """Every simulated symbol of `exchange`, stepped together in event-time order.

    `offset_ms` is added to every timestamp sent (market time -> the wall clock
    of a live exchange). With `history_levels > 0` the true top levels are
    recorded after every book-changing step, keyed by update id.
    """

    def __init__(
        self,
        config: SimulatorConfig,
        exchange: str,
        *,
        offset_ms: int = 0,
        history_levels: int = 0,
        trade_history: int = TRADE_HISTORY,
    ) -> None:
        if exchange not in config.exchanges:
            raise ValueError(
                f"the simulator has no exchange {exchange!r}; it simulates {', '.join(config.exchanges)}"
            )
        only = config.model_copy(update={"exchanges": {exchange: config.exchanges[exchange]}})
        self.exchange = exchange
        self.offset_ms = offset_ms
        self.history_levels = history_levels
        self.symbols: dict[str, EmulatedSymbol] = {}
        for market in build_markets(only):
            price = market.last_price
            state = EmulatedSymbol(market, market_id(market.symbol), price, price, price)
            state.trades = deque(maxlen=trade_history)
            state.touch = market.touch()
            self.symbols[state.id] = state
            if history_levels:
                state.history[market.update_id] = market.book(history_levels)
        self._by_symbol = {s.market.symbol: s for s in self.symbols.values()}
        self._schedule = [(s.market.next_ts, i, s.id) for i, s in enumerate(self.symbols.values())]
        heapq.heapify(self._schedule)
        self.steps = 0

    def symbol(self, symbol: str) -> EmulatedSymbol:
        """A symbol, by unified symbol (`BTC/USDT`) or id (`BTCUSDT`)."""
        found = self._by_symbol.get(symbol) or self.symbols.get(symbol.upper())
        if found is None:
            raise KeyError(symbol)
        return found

    @property
    def next_ts(self) -> int:
        """Market time of the next step of any symbol."""
        return self._schedule[0][0]

    def step_until(self, until_ms: int, max_steps: int) -> Iterator[tuple[EmulatedSymbol, list[Event]]]:
        """Apply every step due at or before `until_ms` (at most `max_steps`); per step its events.

        A book-changing step yields its trades (if any) and then one depth
        update with `U == u ==` the step's update id; merging consecutive
        updates into one event is the server's business.
        """
        schedule = self._schedule
        n = 0
        while schedule[0][0] <= until_ms and n < max_steps:
            _, order, sid = schedule[0]
            state = self.symbols[sid]
            yield state, self._step(state)
            heapq.heapreplace(schedule, (state.market.next_ts, order, sid))
            n += 1
        self.steps += n

    def _step(self, state: EmulatedSymbol) -> list[Event]:
        market = state.market
        kind = market.step()
        ts = market.ts + self.offset_ms
        sid = state.id
        events: list[Event] = []
        dumps = orjson.dumps
        if kind == "ticker":
            events += self._tickers(state, ts)
            return events
        if kind == "trade":
            maker_is_buyer = market.taker == "sell"
            for fill in market.fills():
                if state.first_trade_id is None:
                    state.first_trade_id = fill.id
                state.last_trade_id = fill.id
                state.trade_count += 1
                state.last_qty = fill.amount
                state.high = max(state.high, fill.price)
                state.low = min(state.low, fill.price)
                agg_id = state.next_agg_id
                state.next_agg_id += 1
                state.trades.append(PastTrade(fill.id, agg_id, ts, fill.price, fill.amount, maker_is_buyer))
                trade = {
                    "e": "trade",
                    "E": ts,
                    "s": sid,
                    "t": fill.id,
                    "p": fmt(fill.price),
                    "q": fmt(fill.amount),
                    "T": ts,
                    "m": maker_is_buyer,
                    "M": True,
                }
                events.append(Event(sid, TRADE, dumps(trade).decode()))
                agg = {
                    "e": "aggTrade",
                    "E": ts,
                    "s": sid,
                    "a": agg_id,
                    "p": trade["p"],
                    "q": trade["q"],
                    "f": fill.id,
                    "l": fill.id,
                    "T": ts,
                    "m": maker_is_buyer,
                    "M": True,
                }
                events.append(Event(sid, AGG_TRADE, dumps(agg).decode()))
        bids: dict[float, float] = {}
        asks: dict[float, float] = {}
        for change in market.level_changes():
            (bids if change.side == "bid" else asks)[change.price] = change.size
        uid = market.update_id
        depth = {
            "e": "depthUpdate",
            "E": ts,
            "s": sid,
            "U": uid,
            "u": uid,
            "b": [[fmt(p), fmt(q)] for p, q in bids.items()],
            "a": [[fmt(p), fmt(q)] for p, q in asks.items()],
        }
        events.append(Event(sid, DEPTH, dumps(depth).decode()))
        touch = market.touch()
        if touch != state.touch:
            state.touch = touch
            (bid, bid_qty), (ask, ask_qty) = touch
            book_ticker = {
                "u": uid,
                "s": sid,
                "b": fmt(bid),
                "B": fmt(bid_qty),
                "a": fmt(ask),
                "A": fmt(ask_qty),
            }
            events.append(Event(sid, BOOK_TICKER, dumps(book_ticker).decode()))
        if self.history_levels:
            state.history[uid] = market.book(self.history_levels)
        return events

    def _tickers(self, state: EmulatedSymbol, ts: int) -> list[Event]:
        day = state.day()
        common = {
            "E": ts,
            "s": state.id,
            "c": fmt(day.last),
            "o": fmt(state.open_price),
            "h": fmt(state.high),
            "l": fmt(state.low),
            "v": fmt(day.base_volume),
            "q": fmt(day.quote_volume),
        }
        ticker = {
            "e": "24hrTicker",
            **common,
            "p": fmt(day.change),
            "P": f"{day.change / state.open_price * 100:.3f}",
            "w": fmt(day.vwap),
            "x": fmt(state.open_price),
            "Q": fmt(state.last_qty),
            "b": fmt(day.bid),
            "B": fmt(day.bid_qty),
            "a": fmt(day.ask),
            "A": fmt(day.ask_qty),
            "O": ts - 86_400_000,
            "C": ts,
            "F": state.first_trade_id if state.first_trade_id is not None else -1,
            "L": state.last_trade_id if state.last_trade_id is not None else -1,
            "n": state.trade_count,
        }
        mini = {"e": "24hrMiniTicker", **common}
        dumps = orjson.dumps
        return [
            Event(state.id, TICKER, dumps(ticker).decode()),
            Event(state.id, MINI_TICKER, dumps(mini).decode()),
        ]

    def snapshot(self, symbol_id: str, limit: int) -> dict[str, object]:
        """The REST depth snapshot: `lastUpdateId` and the top `limit` levels per side."""
        state = self.symbols[symbol_id]
        bids, asks = state.market.book(limit)
        return {"lastUpdateId": state.market.update_id, "bids": _levels(bids), "asks": _levels(asks)}

    def ticker_24hr(self, symbol_id: str) -> dict[str, object]:
        """The REST 24h ticker of a symbol."""
        state = self.symbols[symbol_id]
        payload = orjson.loads(self._tickers(state, state.market.ts + self.offset_ms)[0].payload)
        return {"symbol": state.id, "lastPrice": payload["c"], "bidPrice": payload["b"],
                "bidQty": payload["B"], "askPrice": payload["a"], "askQty": payload["A"],
                "volume": payload["v"], "quoteVolume": payload["q"], "closeTime": payload["C"]}  # fmt: skip

    def past_trades(
        self,
        symbol_id: str,
        limit: int,
        *,
        from_id: int | None = None,
        from_agg_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[PastTrade]:
        """Up to `limit` of the symbol's kept trades, oldest first: from a trade id, an aggregate id or a
        time on (the oldest kept when it lies before them), within `end_ms`; else the latest `limit`."""
        trades = self.symbols[symbol_id].trades
        if from_id is None and from_agg_id is None and start_ms is None and end_ms is None:
            return list(trades)[-limit:]
        out: list[PastTrade] = []
        for trade in trades:
            if (
                (from_id is not None and trade.id < from_id)
                or (from_agg_id is not None and trade.agg_id < from_agg_id)
                or (start_ms is not None and trade.ts < start_ms)
            ):
                continue
            if (end_ms is not None and trade.ts > end_ms) or len(out) == limit:
                break
            out.append(trade)
        return out
