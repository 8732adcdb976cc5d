"""The ccxt.pro overrides give ccxt's own results: the same date strings, the same handler per frame."""

from __future__ import annotations

from typing import Any

import ccxt.pro as ccxtpro
import pytest
from ccxt.base.exchange import Exchange
from fluxforge_collector.exchange.ccxt_fast import BinanceMarketDispatch, iso8601
from hypothesis import given
from hypothesis import strategies as st

HANDLERS = (
    "handle_order_book",
    "handle_trade",
    "handle_tickers",
    "handle_bids_asks",
    "handle_subscription_status",
    "handle_ws_error",
)
DEPTH = {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 5, "u": 5, "b": [["1.0", "2.0"]], "a": []}
TRADE = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 9, "p": "1.0", "q": "0.5", "T": 1, "m": True, "M": True}
TICKER = {"e": "24hrTicker", "E": 1, "s": "BTCUSDT", "c": "1.0"}
FRAMES = [
    {"stream": "btcusdt@depth", "data": DEPTH},
    DEPTH,
    {"stream": "btcusdt@trade", "data": TRADE},
    TRADE,
    {"stream": "btcusdt@ticker", "data": TICKER},
    {**TICKER, "e": "24hrMiniTicker"},
    {"u": 7, "s": "BTCUSDT", "b": "1.0", "B": "1", "a": "1.1", "A": "2"},  # bookTicker: no event name
    {"result": None, "id": 1},
    {"error": {"code": 2, "msg": "Invalid request"}, "id": 3},
    {"stream": "btcusdt@trade", "data": {**TRADE, "id": "7"}},  # an id: ccxt looks up subscriptions
    [TICKER, TICKER],  # an array of tickers (the @arr streams)
]


@given(st.integers(min_value=-(10**3), max_value=10**17) | st.floats(allow_nan=True) | st.none() | st.text())
def test_iso8601_is_ccxt_s(timestamp: Any) -> None:
    assert iso8601(timestamp) == Exchange.iso8601(timestamp)


@given(st.integers(min_value=0, max_value=253_402_300_799_999))
def test_iso8601_is_ccxt_s_for_every_millisecond_of_the_calendar(timestamp: int) -> None:
    assert iso8601(timestamp) == Exchange.iso8601(timestamp)


def _dispatched(cls: type[Any], frame: dict[str, Any] | list[Any]) -> list[tuple[str, Any]]:
    exchange = cls()
    calls: list[tuple[str, Any]] = []
    for name in HANDLERS:
        setattr(exchange, name, lambda client, message, name=name: calls.append((name, message)))
    exchange.handle_message(type("Client", (), {"subscriptions": {}, "url": "wss://x/stream"})(), frame)
    return calls


@pytest.mark.parametrize("frame", FRAMES, ids=range(len(FRAMES)))
def test_binance_dispatch_picks_ccxt_s_handler(frame: dict[str, Any] | list[Any]) -> None:
    fast = type("binanceus", (BinanceMarketDispatch, ccxtpro.binanceus), {})
    assert _dispatched(fast, frame) == _dispatched(ccxtpro.binanceus, frame)
    assert _dispatched(fast, frame)  # every frame here reaches some handler
