"""The ccxt.pro exchange class a source watches through: ccxt's own, reporting to the source as it works.

ccxt.pro decodes and dispatches each frame inside a callback that also
schedules the next read; an exception there (invalid JSON, a handler tripping
on an odd payload) ends the connection's receive loop for good, and the feed
goes silent. The subclass reports such a frame and goes on. Every REST book
snapshot is reported too: after a symbol's first, each one is a
resynchronisation (after a gap, a reconnect or a failed sync). And every book
and trade ccxt resolves is handed over at once: a watcher only wakes after
ccxt has handled the frames already read, so it would see one book state out
of many (measured: 1 in ~120 updates at 25k frames/s), and of the trades only
those its future still holds. The faster hot paths (`ccxt_fast`), the book
checks ccxt leaves out (`ccxt_checks`) and the resync of one symbol on a gap
(`ccxt_resync`) are mixed in; each names the ccxt methods it replaces
(`REPLACES`), checked when the class is built so that a ccxt without them
fails at the start, not on the first gap.
"""

from __future__ import annotations

from typing import Any, Protocol


class ClientEvents(Protocol):
    """What the exchange class reports to its source."""

    def on_book(self, book: Any) -> None:
        """ccxt has just resolved a book state (and checked it)."""

    def on_trades(self, trades: list[Any]) -> None:
        """ccxt has just parsed these trades of one symbol (oldest first)."""

    def on_gap(self, symbol: str) -> None:
        """A book of `symbol` lost an update; it is being resynchronised alone."""

    def on_snapshot(self, symbol: str) -> None:
        """A book snapshot of `symbol` arrived (REST or in-band)."""

    def on_bad_frame(self, client: Any, exc: BaseException, data: Any) -> None:
        """ccxt could not decode or handle a frame; it was skipped."""


_guarded_classes: dict[type[Any], type[Any]] = {}
# What the class below itself relies on, in the exchange class and in its websocket client.
REPLACES = ("client", "fetch_rest_order_book_safe", "trades", "orderbooks")
CLIENT_REPLACES = ("resolve", "handle_text_or_binary_message")


def missing_ccxt_parts(cls: type[Any], mixins: tuple[type[Any], ...]) -> list[str]:
    """What `cls` (or ccxt's websocket `Client`) lacks of what the mixins and `Guarded` replace or use."""
    from ccxt.async_support.base.ws.client import Client

    names = [name for mixin in mixins for name in getattr(mixin, "REPLACES", ())]
    missing = [f"{cls.__name__}.{name}" for name in (*REPLACES, *names) if not hasattr(cls, name)]
    return missing + [f"Client.{name}" for name in CLIENT_REPLACES if not hasattr(Client, name)]


def fail_watch(client: Any, message_hash: str, error: BaseException) -> None:
    """Fail the watch waiting on `message_hash` with `error`, its subscription forgotten, so that the
    watcher's next call subscribes it anew."""
    client.subscriptions.pop(message_hash, None)
    client.reject(error, message_hash)


def new_trades(cache: Any, last: Any) -> list[Any]:
    """The trades after `last` (the newest one handed over, by identity) in ccxt's trade cache, oldest first."""
    new = []
    for trade in reversed(cache):
        if trade is last:
            break
        new.append(trade)
    new.reverse()
    return new


def guarded_class(cls: type[Any], events: ClientEvents) -> type[Any]:
    """A subclass of the ccxt.pro exchange class `cls` that reports to `events` and survives bad frames."""
    base = _guarded_classes.get(cls)
    if base is None:
        from ccxt.async_support.base.ws.cache import ArrayCache
        from ccxt.async_support.base.ws.order_book import OrderBook

        from fluxforge_collector.exchange.ccxt_checks import check_mixins
        from fluxforge_collector.exchange.ccxt_fast import fast_mixins
        from fluxforge_collector.exchange.ccxt_resync import resync_mixins
        from fluxforge_collector.exchange.errors import ExchangeSetupError

        mixins = (*fast_mixins(cls), *resync_mixins(cls), *check_mixins(cls))
        if missing := missing_ccxt_parts(cls, mixins):
            raise ExchangeSetupError(
                f"the installed ccxt lacks {', '.join(missing)}, which the collector hooks into; "
                "install the ccxt version of uv.lock (uv sync --frozen)"
            )

        class Guarded(*mixins, cls):  # type: ignore[misc]
            _ff_source: ClientEvents | None = None
            _ff_last_trades: dict[str, Any]  # symbol -> the newest trade handed over

            def __init__(self, config: Any = None) -> None:
                super().__init__(config or {})
                self._ff_last_trades = {}

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
                            self._ff_source.on_bad_frame(client, exc, data)

                    client.handle_text_or_binary_message = guarded
                    resolve = client.resolve

                    def resolve_and_capture(result: Any, message_hash: Any) -> Any:
                        source = self._ff_source
                        if source is not None:
                            if isinstance(result, OrderBook):
                                if not self._ff_book_ok(result):
                                    return result  # the book check fails the watch instead
                                source.on_book(result)
                            elif type(result) is ArrayCache and len(result):
                                self._ff_hand_over_trades(result)
                        return resolve(result, message_hash)

                    client.resolve = resolve_and_capture
                return client

            def _ff_hand_over_trades(self, cache: Any) -> None:
                """The trades ccxt added to a symbol's public trade cache since the last hand-over."""
                symbol = cache[-1].get("symbol")
                if self.trades.get(symbol) is not cache or self._ff_source is None:
                    return  # not the public trade cache of a symbol
                trades = new_trades(cache, self._ff_last_trades.get(symbol))
                self._ff_last_trades[symbol] = cache[-1]
                self._ff_source.on_trades(trades)

            async def fetch_rest_order_book_safe(
                self, symbol: Any, limit: Any = None, params: Any = None
            ) -> Any:
                if self._ff_source is not None:
                    self._ff_source.on_snapshot(str(symbol))
                return await super().fetch_rest_order_book_safe(symbol, limit, params or {})

        Guarded.__name__ = cls.__name__
        base = _guarded_classes[cls] = Guarded
    sub: type[Any] = type(cls.__name__, (base,), {"_ff_source": events})
    return sub
