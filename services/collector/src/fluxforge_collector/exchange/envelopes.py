"""Raw envelopes (docs/design.md "Raw messages") from what ccxt.pro hands over.

`ts` is the exchange's event time, `recv_ts` the time ccxt handed the update
over, `seq` a book's nonce (on Binance the final update id `u` of the last
diff applied). A book takes the top `max_levels` of ccxt's full book and is
never made twice for the same nonce; a lower nonce with a later exchange time
is an exchange that restarted its ids (the engine takes it so too). The bare
REST snapshot (no exchange time yet) is not made at all: the first diff
applied on top of it is. The first
book after the collector resynchronised a symbol carries `"resync": "gap"`
(a sequence gap or failed checksum) or `"snapshot"` (a reconnect), so the
dataset records every resync (`dataset.quality`); the engine ignores it. Which
trades are made, and in which order, is `backfill.TradeSequencer`'s business;
a trade fetched over REST carries `backfilled: true`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from fluxforge_common.messages import BACKFILLED

from fluxforge_collector.exchange.stats import ExchangeStats


class Envelopes:
    """Makes one exchange's envelopes, remembering the last book nonce of each symbol."""

    def __init__(self, exchange_id: str, max_levels: int, stats: ExchangeStats) -> None:
        self.exchange_id = exchange_id
        self.max_levels = max_levels
        self.stats = stats
        self._last: dict[str, tuple[int, int | None]] = {}  # symbol -> (nonce, ts) of its last book made
        self._resync: dict[str, str] = {}  # symbol -> why its next book follows a resync

    def mark_resync(self, symbol: str, why: str) -> None:
        """Mark the symbol's next book as the first after a resync (a gap stays the reason once seen)."""
        if self._resync.get(symbol) != "gap":
            self._resync[symbol] = why

    def top_levels(self, book: Any) -> dict[str, list[Any]]:
        """The book's top `max_levels` bids and asks as [price, amount]: what an envelope holds of it."""
        n = self.max_levels
        return {side: [level[:2] for level in book[side][:n]] for side in ("bids", "asks")}

    def book(self, book: Any, recv: int) -> bytes | None:
        """The envelope of a book state not made yet (a newer nonce); None for the others."""
        symbol = book.get("symbol")
        nonce = book.get("nonce")
        ts = book.get("timestamp")
        if symbol is None or (ts is None and nonce is not None):
            return None  # the bare snapshot: published with the first diff on top of it
        last = self._last.get(symbol)
        if nonce is None and last is not None:
            return None  # a book being re-synchronised (ccxt cleared its nonce): not a valid state
        if nonce is not None:
            if last is not None and nonce <= last[0] and (ts is None or last[1] is None or ts <= last[1]):
                return None
            self._last[symbol] = (nonce, ts)
        envelope = {
            "type": "book",
            "exchange": self.exchange_id,
            "symbol": symbol,
            "ts": ts,
            "recv_ts": recv,
            "seq": nonce,
            **self.top_levels(book),
        }
        if (why := self._resync.pop(symbol, None)) is not None:
            envelope["resync"] = why
        self.stats.books += 1
        return orjson.dumps(envelope)

    def trades(self, trades: Any, recv: int, backfilled: bool = False) -> Iterator[bytes]:
        """The envelopes of `trades`, in order (marked when `backfilled`)."""
        for trade in trades:
            symbol = trade.get("symbol")
            tid = trade.get("id")
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
            if backfilled:
                envelope[BACKFILLED] = True
            self.stats.trades += 1
            self.stats.trades_published[symbol] += 1
            yield orjson.dumps(envelope)

    def tickers(self, tickers: Any, recv: int) -> Iterator[bytes]:
        """The envelopes of one ticker or of a mapping of them."""
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
            yield orjson.dumps(envelope)
