"""The ccxt.pro exchange class a source watches through: ccxt's own, reporting to the source as it works.

ccxt.pro decodes and dispatches each frame inside a callback that also
schedules the next read; an exception there (invalid JSON, a handler tripping
on an odd payload) ends the connection's receive loop for good, and the feed
goes silent. The subclass reports such a frame and goes on. Every REST book
snapshot is reported too: after a symbol's first, each one is a
resynchronisation (after a gap, a reconnect or a failed sync). And every book
ccxt resolves is handed over at once: a watcher only wakes after ccxt has
handled the frames already read, so it would see one state out of many
(measured: 1 in ~120 updates at 25k frames/s). The faster hot paths
(`ccxt_fast`) and the book checks ccxt leaves out (`ccxt_checks`) are mixed in.
"""

from __future__ import annotations

from typing import Any, Protocol


class ClientEvents(Protocol):
    """What the exchange class reports to its source."""

    def on_book(self, book: Any) -> None:
        """ccxt has just resolved a book state (and checked it)."""

    def on_snapshot(self, symbol: str) -> None:
        """A book snapshot of `symbol` arrived (REST or in-band)."""

    def on_bad_frame(self, client: Any, exc: BaseException, data: Any) -> None:
        """ccxt could not decode or handle a frame; it was skipped."""


_guarded_classes: dict[type[Any], type[Any]] = {}


def guarded_class(cls: type[Any], events: ClientEvents) -> type[Any]:
    """A subclass of the ccxt.pro exchange class `cls` that reports to `events` and survives bad frames."""
    base = _guarded_classes.get(cls)
    if base is None:
        from ccxt.async_support.base.ws.order_book import OrderBook

        from fluxforge_collector.exchange.ccxt_checks import check_mixins
        from fluxforge_collector.exchange.ccxt_fast import fast_mixins

        class Guarded(*fast_mixins(cls), *check_mixins(cls), cls):  # type: ignore[misc]
            _ff_source: ClientEvents | None = None

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
                        if self._ff_source is not None and isinstance(result, OrderBook):
                            if not self._ff_book_ok(result):
                                return result  # the book check fails the watch instead
                            self._ff_source.on_book(result)
                        return resolve(result, message_hash)

                    client.resolve = resolve_and_capture
                return client

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
