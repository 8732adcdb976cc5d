"""A corpus of raw lines the pipeline must refuse, each with a fragment of the expected reason."""

from __future__ import annotations

import orjson

T = 1_765_500_000_000
GOOD_BOOK = {
    "type": "book", "exchange": "binanceus", "symbol": "BTC/USDT", "ts": T, "recv_ts": T + 5, "seq": 1,
    "bids": [[100.0, 1.0], [99.5, 2.0]], "asks": [[100.5, 1.0], [101.0, 3.0]],
}  # fmt: skip
GOOD_TRADE = {
    "type": "trade",
    "exchange": "binanceus",
    "symbol": "BTC/USDT",
    "ts": T,
    "recv_ts": T + 5,
    "id": "1",
    "price": 100.2,
    "amount": 0.5,
    "side": "buy",
}
GOOD_TICKER = {
    "type": "ticker",
    "exchange": "binanceus",
    "symbol": "BTC/USDT",
    "ts": T,
    "recv_ts": T + 5,
    "bid": 100.0,
    "ask": 100.5,
}


def _with(base: dict[str, object], **changes: object) -> bytes:
    return orjson.dumps({**base, **changes})


def _without(base: dict[str, object], key: str) -> bytes:
    return orjson.dumps({k: v for k, v in base.items() if k != key})


BAD_LINES: list[tuple[bytes, str]] = [
    (b"{not json", "invalid JSON"),
    (b'{"type":"book"', "invalid JSON"),
    (b"\xff\xfe\x00garbage", "invalid JSON"),
    (_with(GOOD_TRADE, exchange="EX").replace(b"EX", b"\xff"), "a string is not UTF-8"),
    (_with(GOOD_BOOK, symbol="S/T").replace(b"S/T", b"S/\xc3"), "a string is not UTF-8"),
    # Nested far past any parser's recursion (a crash once, when skipping the unknown field recursed).
    (_with(GOOD_BOOK, x=[]).replace(b"[]", b"[" * 300_000 + b"]" * 300_000), "nested too deeply"),
    (b"[]", "schema"),
    (b"42", "schema"),
    (b'"book"', "schema"),
    (_without(GOOD_BOOK, "bids"), "missing required field `bids`"),
    (_without(GOOD_BOOK, "symbol"), "missing required field `symbol`"),
    (_without(GOOD_TRADE, "price"), "missing required field `price`"),
    (_without(GOOD_TRADE, "recv_ts"), "missing required field `recv_ts`"),
    (_with(GOOD_TRADE, price="100.2"), "Expected `float`, got `str`"),
    (_with(GOOD_TRADE, amount=True), "Expected `float`, got `bool`"),
    (_with(GOOD_BOOK, bids=[["100.0", 1.0]]), "Expected `float`, got `str`"),
    (_with(GOOD_BOOK, ts="1765500000000"), "got `str`"),
    (_with(GOOD_BOOK, ts=1765500000.5), "got `float`"),
    (
        b'{"type":"trade","exchange":"binanceus","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000005,"price":NaN,"amount":1,"side":"buy"}',
        "invalid JSON",
    ),
    (
        b'{"type":"trade","exchange":"binanceus","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000005,"price":Infinity,"amount":1,"side":"buy"}',
        "invalid JSON",
    ),
    (
        b'{"type":"trade","exchange":"binanceus","symbol":"BTC/USDT","ts":1765500000000,"recv_ts":1765500000005,"price":1e999,"amount":1,"side":"buy"}',
        "out of range",
    ),
    (_with(GOOD_BOOK, bids=[[100.0, -1.0]]), "size -1.0 is not positive"),
    (_with(GOOD_BOOK, asks=[[100.5, 0.0]]), "size 0.0 is not positive"),
    (_with(GOOD_BOOK, bids=[[-100.0, 1.0]]), "price -100.0 is not positive"),
    (_with(GOOD_BOOK, bids=[[101.0, 1.0]]), "crossed or locked"),
    (_with(GOOD_BOOK, bids=[[100.5, 1.0]]), "crossed or locked"),
    (_with(GOOD_BOOK, bids=[]), "empty book"),
    (_with(GOOD_BOOK, asks=[]), "empty book"),
    (_with(GOOD_BOOK, bids=[[99.0, 1.0], [99.5, 1.0]]), "not strictly descending"),
    (_with(GOOD_BOOK, asks=[[100.5, 1.0], [100.5, 1.0]]), "not strictly ascending"),
    (_with(GOOD_BOOK, bids=[[100.0, 1.0, 7]]), "length 2"),
    (_with(GOOD_BOOK, type="orderbook"), "Invalid value 'orderbook'"),
    (_without(GOOD_BOOK, "type"), "missing required field `type`"),
    (_with(GOOD_TRADE, side="hold"), "Invalid enum value 'hold'"),
    (_with(GOOD_TRADE, backfilled="yes"), "Expected `bool`, got `str`"),
    (_with(GOOD_TRADE, price=0.0), "price 0.0 is not positive"),
    (_with(GOOD_TRADE, price=-5.0), "price -5.0 is not positive"),
    (_with(GOOD_TRADE, amount=0.0), "amount 0.0 is not positive"),
    (_with(GOOD_TRADE, amount=1.7e308), "trade price or amount 1.7e+308 is outside 1e-30..1e+30"),
    (_with(GOOD_TRADE, price=1e30), "trade price or amount 1e+30 is outside 1e-30..1e+30"),
    (_with(GOOD_TRADE, price=1e-300), "trade price or amount 1e-300 is outside 1e-30..1e+30"),
    (_with(GOOD_BOOK, bids=[[100.0, 1e307]]), "bids level 1: 1e+307 is outside 1e-30..1e+30"),
    (_with(GOOD_BOOK, bids=[[1e-300, 1.0]]), "bids level 1: 1e-300 is outside 1e-30..1e+30"),
    (_with(GOOD_BOOK, asks=[[100.5, 1.0], [1e31, 1.0]]), "asks level 2: 1e+31 is outside 1e-30..1e+30"),
    (_with(GOOD_TICKER, quote_volume=2e30), "ticker quote_volume 2e+30 is outside 1e-30..1e+30"),
    (_with(GOOD_TICKER, bid=1e-31), "ticker bid 1e-31 is outside 1e-30..1e+30"),
    (_with(GOOD_TICKER, bid=-1.0), "ticker bid -1.0 is not positive"),
    (_with(GOOD_TICKER, bid=101.0), "crossed ticker"),
    (_with(GOOD_TICKER, base_volume=-3.0), "negative"),
    (_with(GOOD_TICKER, ask="100.5"), "got `str`"),
    # orjson writes no integer past 64 bits: the seq is put in as text.
    (
        _with(GOOD_BOOK, seq=7).replace(b'"seq":7', b'"seq":18446744073709551616'),
        "book seq 18446744073709551616 is outside",
    ),
    (
        _with(GOOD_BOOK, seq=7).replace(b'"seq":7', b'"seq":-9223372036854775809'),
        "book seq -9223372036854775809 is outside",
    ),
    (
        _with(GOOD_BOOK, seq=7).replace(b'"seq":7', b'"seq":1' + b"0" * 400),
        "book seq of 1329 bits is outside",
    ),
    (_with(GOOD_BOOK, symbol="../../etc"), "not a ccxt unified symbol"),
    (_with(GOOD_BOOK, symbol=""), "not a ccxt unified symbol"),
    (_with(GOOD_BOOK, symbol="BTC/USDT\n"), "not a ccxt unified symbol"),
    (_with(GOOD_BOOK, exchange="../x"), "not an exchange id"),
    (_with(GOOD_BOOK, exchange="a" * 65), "not an exchange id"),
    (_with(GOOD_BOOK, symbol="B" * 200 + "/USDT"), "not a ccxt unified symbol"),
    (_with(GOOD_BOOK, ts=1765500000), "not milliseconds since the epoch"),
    (_with(GOOD_BOOK, recv_ts=1765500000000000), "not milliseconds since the epoch"),
    (_with(GOOD_BOOK, bids=[[100.0 - i * 0.01, 1.0] for i in range(60_000)]), "exceeds the"),
]
