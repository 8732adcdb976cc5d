"""Book checks ccxt.pro leaves out, so that no book is published across a lost update.

Binance's diffs carry update ids and ccxt checks their continuity itself.
Kraken's books (websocket API v2) have no sequence numbers: each book
message carries a CRC32 of the top 10 levels after it, the only sign that
an update was lost. ccxt checks it only with the option
`watchOrderBook.checksum`, which is off by default, and formats the levels
with `str.split`, which fails on the JSON numbers API v2 sends. The check
here formats them with the pair's decimals (`pair_decimals`,
`lot_decimals` of AssetPairs), as Kraken does. A book that fails it is not
handed over; it is dropped and that pair alone is subscribed again
(`ccxt_resync`), so Kraken sends its new snapshot; failing that, its watch
fails with ccxt's `ChecksumError`, as ccxt's own check would, and the
watcher subscribes again.
"""

from __future__ import annotations

from typing import Any

import ccxt.pro as ccxtpro
from fluxforge_common.kraken import kraken_book_checksum

from fluxforge_collector.exchange.ccxt_client import fail_watch


class UncheckedBooks:
    """Exchanges whose books ccxt checks itself (update ids) or that give nothing to check."""

    def _ff_book_ok(self, book: Any) -> bool:
        return True


class KrakenBookChecksum:
    """Checks each Kraken book message's checksum against the book ccxt built from it.

    It also reports each book snapshot to the source (`_ff_source`), which
    counts every one after a symbol's first as a resync, as it does for
    Binance's REST snapshots.
    """

    REPLACES = ("handle_order_book", "get_message_hash", "orderbook_checksum_message")
    _ff_expected: tuple[str, int] | None = None
    _ff_mismatch = False

    def handle_order_book(self, client: Any, message: Any) -> None:
        data = message.get("data") if isinstance(message, dict) else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        symbol, checksum = first.get("symbol"), first.get("checksum")
        exchange: Any = self
        if message.get("type") == "update" and symbol not in exchange.orderbooks:
            return  # a book dropped after a failed check, until its new snapshot
        source = getattr(self, "_ff_source", None)
        if message.get("type") == "snapshot" and source is not None and isinstance(symbol, str):
            source.on_snapshot(symbol)
        self._ff_expected = (
            (symbol, checksum) if isinstance(symbol, str) and isinstance(checksum, int) else None
        )
        self._ff_mismatch = False
        try:
            super().handle_order_book(client, message)  # type: ignore[misc]
        finally:
            self._ff_expected = None
        if self._ff_mismatch:
            exchange.orderbooks.pop(symbol, None)
            resync = getattr(self, "_ff_resync", None)
            if resync is not None and resync(client, symbol):
                if source is not None:
                    source.on_gap(symbol)
                return
            error = ccxtpro.ChecksumError(f"{exchange.id} {exchange.orderbook_checksum_message(symbol)}")
            fail_watch(client, exchange.get_message_hash("orderbook", None, symbol), error)

    def _ff_book_ok(self, book: Any) -> bool:
        expected = self._ff_expected
        if expected is None or book.get("symbol") != expected[0]:
            return True
        info = (getattr(self, "markets", None) or {}).get(expected[0], {}).get("info", {})
        try:
            price_decimals, qty_decimals = int(info["pair_decimals"]), int(info["lot_decimals"])
        except (KeyError, TypeError, ValueError):
            return True  # a pair without its decimals cannot be checked
        ok = kraken_book_checksum(book["asks"], book["bids"], price_decimals, qty_decimals) == expected[1]
        self._ff_mismatch = not ok
        return ok


def check_mixins(cls: type[Any]) -> tuple[type[Any], ...]:
    """The checks that apply to a ccxt.pro exchange class, to put before it in the bases."""
    if issubclass(cls, ccxtpro.kraken):
        return (KrakenBookChecksum,)
    return (UncheckedBooks,)
