"""A lost book update resyncs only its symbol, not every symbol of its multi-symbol watch.

ccxt.pro answers a gap by failing the symbol's future, which fails the whole
`watch_order_book_for_symbols` call: the watcher watches again, ccxt
subscribes the group again, and every symbol of it starts over from a new
snapshot (Binance: one REST snapshot per symbol, spaced by the rate limiter,
~0.5 s each; measured: 10 snapshots and ~165 lost update ids of 8 healthy
symbols for one gap). Here only the symbol that lost an update starts over,
the way ccxt syncs a book in the first place; the others go on streaming and
the watch never fails.

Binance: a diff that does not continue the book's update ids (`U` = last
`u` + 1 on spot, `pu` = last `u` on futures; from a snapshot, `U` <= id + 1
<= `u`) empties the book's nonce, buffers the diff and fetches that one
snapshot (rate-limited by ccxt's throttle, by the endpoint's weight), which
takes the buffered diffs on top. A snapshot applies only while the book still
waits for it: two fetches of one symbol can be in flight (ccxt fetches every
symbol of a group again when the group is subscribed again, while an earlier
fetch still waits behind the rate limiter), and ccxt would apply the later one
to a book already live, skipping the diffs in between unmarked.
Kraken (failed checksum, detected in `ccxt_checks`): the book is dropped and
that one pair is unsubscribed and subscribed again, so Kraken sends its new
snapshot. Until it comes, the pair is subscribed again every
`RESUBSCRIBE_TIMEOUT_S` (Kraken refuses a subscription when a client sends
too many requests, and ccxt only rejects the request's own future, which
nobody awaits): otherwise the pair's book would stop for good while its
connection stays busy with the other pairs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ccxt.pro as ccxtpro

from fluxforge_collector.exchange.ccxt_client import fail_watch

log = logging.getLogger("fluxforge.collector.exchange")

# Subscription requests remembered, to fail the watch of one Kraken refuses (`KrakenSymbolResync`).
SUBSCRIPTIONS_KEPT = 256
# How long a Kraken pair subscribed again after a failed checksum waits for its snapshot (docstring).
RESUBSCRIBE_TIMEOUT_S = 10.0


def older(message: Any, nonce: int) -> bool:
    """Whether the Binance diff `message` is older than a book at update id `nonce`: ccxt skips it."""
    last = message.get("u")
    if not isinstance(last, int):
        return False
    return last <= nonce if message.get("pu") is None else last < nonce  # spot / futures


def breaks_sequence(message: Any, nonce: int, synced: bool) -> bool:
    """Whether the Binance diff `message` cannot apply to a book at update id `nonce`.

    `synced`: the book already took a diff (else it is a bare snapshot, which
    the first diff must straddle). Diffs older than the book are no break.
    """
    first, last, previous = message.get("U"), message.get("u"), message.get("pu")
    if not isinstance(first, int) or not isinstance(last, int) or older(message, nonce):
        return False
    if previous is None:  # spot
        return first - 1 != nonce if synced else not (first - 1 <= nonce <= last - 1)
    return not (first <= nonce or previous == nonce)  # futures


def continues(message: Any, nonce: int) -> bool:
    """Whether the buffered Binance diff `message` applies to a fresh snapshot at update id `nonce`:
    a diff newer than the snapshot that does not break its sequence (ccxt's rule)."""
    first, last = message.get("U"), message.get("u")
    return (
        isinstance(first, int)
        and isinstance(last, int)
        and not older(message, nonce)
        and not breaks_sequence(message, nonce, synced=False)
    )


class BinanceSymbolResync:
    """On a gap, fetch that symbol's snapshot again and leave the rest of the watch alone."""

    REPLACES = (
        "handle_order_book",
        "fetch_order_book_snapshot",
        "handle_order_book_message",
        "spawn",
        "safe_market",
        "is_spot_url",
    )

    def __init__(self, config: Any = None) -> None:
        super().__init__(config or {})  # type: ignore[call-arg]
        # (connection URL, market id) -> unified symbol, as ccxt's handle_order_book finds it.
        self._ff_symbols: dict[tuple[str, Any], str] = {}

    def handle_order_book(self, client: Any, message: Any) -> None:
        exchange: Any = self
        key = (client.url, message.get("s"))
        symbol = self._ff_symbols.get(key)
        if symbol is None:
            market_type = "spot" if exchange.is_spot_url(client) else "swap"
            symbol = self._ff_symbols[key] = exchange.safe_market(key[1], None, None, market_type)["symbol"]
        book = exchange.orderbooks.get(symbol)
        if (
            book is not None
            and (nonce := book["nonce"]) is not None
            and breaks_sequence(message, nonce, book["timestamp"] is not None)
        ):
            subscription = client.subscriptions.get("orderbook::" + symbol)
            if isinstance(subscription, dict):
                source = getattr(self, "_ff_source", None)
                if source is not None:
                    source.on_gap(symbol)
                book["nonce"] = None  # diffs are buffered until the snapshot (ccxt's own sync)
                book.cache = [message]
                exchange.spawn(
                    exchange.fetch_order_book_snapshot, client, message, {**subscription, "symbol": symbol}
                )
                return
        super().handle_order_book(client, message)  # type: ignore[misc]

    async def fetch_order_book_snapshot(self, client: Any, message: Any, subscription: Any) -> None:
        """ccxt's, except that a snapshot (or its failure) the book no longer waits for is dropped.

        The book waits for this fetch while its nonce is None and its buffer is
        the list it had when the fetch started: ccxt's subscription and the
        gap above each start a wait with a new list.
        """
        exchange: Any = self
        symbol = subscription["symbol"]
        message_hash = "orderbook::" + symbol
        book = exchange.orderbooks.get(symbol)
        buffer = None if book is None else book.cache

        def waited_for() -> bool:
            now = exchange.orderbooks.get(symbol)
            return now is book and now is not None and now["nonce"] is None and now.cache is buffer

        limit = subscription.get("limit") or exchange.options.get("watchOrderBookLimit", 1000)
        try:
            snapshot = await exchange.fetch_rest_order_book_safe(
                symbol, limit, subscription.get("params") or {}
            )
        except Exception as exc:
            if waited_for():
                fail_watch(client, message_hash, exc)
            return
        if not waited_for():
            return
        book.reset(snapshot)
        buffered, book.cache = book.cache, []
        for diff in buffered:
            if (nonce := book["nonce"]) is not None and continues(diff, nonce):
                exchange.handle_order_book_message(client, diff, book)
        client.resolve(book, message_hash)


class KrakenSymbolResync:
    """On a failed checksum, subscribe that pair's book again (after unsubscribing it) for a new snapshot.

    A watch's own subscription that Kraken refuses fails that watch: ccxt only
    rejects the request's id, which no watch waits on, so the pairs it names
    would never deliver while the connection stays busy with the others. The
    watcher then watches again after its backoff, and ccxt subscribes them anew.
    """

    REPLACES = ("request_id", "get_message_hash", "watch_multiple", "handle_error_message")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config or {})  # type: ignore[call-arg]
        # symbol -> the number of its latest resubscription: an earlier one still waiting gives way.
        self._ff_resubscriptions: dict[str, int] = {}
        # req_id of a watch's subscription -> its message hashes, the latest `SUBSCRIPTIONS_KEPT`.
        self._ff_requests: dict[str, list[str]] = {}

    def watch_multiple(
        self,
        url: str,
        message_hashes: list[str],
        message: Any = None,
        subscribe_hashes: list[str] | None = None,
        subscription: Any = None,
    ) -> Any:
        exchange: Any = self
        if isinstance(message, dict) and message.get("method") == "subscribe" and subscribe_hashes:
            subscriptions = exchange.client(url).subscriptions
            if any(h not in subscriptions for h in subscribe_hashes):  # it goes out
                requests = self._ff_requests
                requests[str(message.get("req_id"))] = list(subscribe_hashes)
                while len(requests) > SUBSCRIPTIONS_KEPT:
                    del requests[next(iter(requests))]
        return super().watch_multiple(  # type: ignore[misc]
            url, message_hashes, message, subscribe_hashes, subscription
        )

    def handle_error_message(self, client: Any, message: Any) -> bool:
        if (
            isinstance(message, dict)
            and message.get("method") == "subscribe"
            and message.get("success") is False
        ):
            self._ff_refused(
                client, str(message.get("error")), str(message.get("req_id")), message.get("symbol")
            )
        return bool(super().handle_error_message(client, message))  # type: ignore[misc]

    def _ff_refused(self, client: Any, error: str, request_id: str, symbol: Any) -> None:
        """Fail the watch of the pairs a refused subscription names (every pair of it, once, if it names
        none of them), with the error class ccxt gives the message."""
        if "already subscribed" in error.lower():
            return
        exchange: Any = self
        hashes = self._ff_requests.get(request_id, [])
        named = [h for h in hashes if isinstance(symbol, str) and h.endswith("@" + symbol)]
        if not named:
            named = self._ff_requests.pop(request_id, [])
        broad = exchange.exceptions["ws"]["broad"]
        key = exchange.find_broadly_matched_key(broad, error)
        kind = ccxtpro.ExchangeError if key is None else broad[key]
        for message_hash in named:
            fail_watch(client, message_hash, kind(f"kraken refused the subscription {message_hash}: {error}"))

    def _ff_resync(self, client: Any, symbol: str) -> bool:
        """Start the pair's resubscription; False if its subscription is unknown (ccxt's way then)."""
        exchange: Any = self
        message_hash = exchange.get_message_hash("orderbook", None, symbol)
        subscription = client.subscriptions.get(message_hash)
        if not isinstance(subscription, dict):
            return False
        number = self._ff_resubscriptions[symbol] = self._ff_resubscriptions.get(symbol, 0) + 1
        exchange.spawn(self._ff_resubscribe, client, symbol, message_hash, subscription.get("limit"), number)
        return True

    async def _ff_resubscribe(
        self, client: Any, symbol: str, message_hash: str, depth: int | None, number: int
    ) -> None:
        exchange: Any = self
        params: dict[str, Any] = {"channel": "book", "symbol": [symbol]}
        if depth is not None:
            params["depth"] = depth
        cost = (exchange.options.get("ws") or {}).get("cost", 1)
        methods: tuple[str, ...] = ("unsubscribe", "subscribe")
        while True:
            try:
                for method in methods:
                    if exchange.enableRateLimit:
                        await client.throttle(cost)
                    await client.send({"method": method, "params": params, "req_id": exchange.request_id()})
            except Exception as exc:  # the connection failed: the watch fails and subscribes anew
                fail_watch(client, message_hash, exc)
                return
            if await self._ff_book_back(symbol, number) or exchange.closed_by_user:
                return
            log.warning(
                "%s %s book: no snapshot %.0f s after subscribing again; subscribing again",
                exchange.id,
                symbol,
                RESUBSCRIBE_TIMEOUT_S,
            )
            methods = ("subscribe",)

    async def _ff_book_back(self, symbol: str, number: int) -> bool:
        """Whether the pair's snapshot made its book anew (`ccxt_checks`) within `RESUBSCRIBE_TIMEOUT_S`,
        or a later resubscription of it took over the wait."""
        exchange: Any = self
        waited, step = 0.0, 0.1
        while symbol not in exchange.orderbooks and self._ff_resubscriptions.get(symbol) == number:
            if waited >= RESUBSCRIBE_TIMEOUT_S or exchange.closed_by_user:
                return False
            await asyncio.sleep(step)
            waited += step
        return True


def resync_mixins(cls: type[Any]) -> tuple[type[Any], ...]:
    """The one-symbol resync that applies to a ccxt.pro exchange class, to put before it in the bases."""
    if issubclass(cls, ccxtpro.binance):
        return (BinanceSymbolResync,)
    if issubclass(cls, ccxtpro.kraken):
        return (KrakenSymbolResync,)
    return ()
