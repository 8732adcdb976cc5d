"""Which book states become envelopes: each once, the bare REST snapshot through the first diff on it."""

from __future__ import annotations

from typing import Any

import orjson
from fluxforge_collector.exchange.envelopes import Envelopes
from fluxforge_collector.exchange.stats import ExchangeStats

SYMBOL = "BTC/USD"
RECV = 1_765_512_000_100


def book(bid: float, ts: int | None, nonce: int | None = None) -> dict[str, Any]:
    return {"symbol": SYMBOL, "timestamp": ts, "nonce": nonce, "bids": [[bid, 1.0]], "asks": [[bid + 1, 1.0]]}


def made(envelopes: Envelopes, state: dict[str, Any]) -> dict[str, Any] | None:
    line = envelopes.book(state, RECV)
    return None if line is None else orjson.loads(line)


def test_books_of_an_exchange_that_never_stamps_them_are_all_made() -> None:
    envelopes = Envelopes("plain", 10, ExchangeStats())
    states = [made(envelopes, book(100.0 + n, None)) for n in range(3)]
    assert [s["bids"][0][0] if s else None for s in states] == [100.0, 101.0, 102.0]
    assert all(s is not None and s["ts"] is None and s["recv_ts"] == RECV for s in states)


def test_each_nonce_once_and_a_lower_nonce_with_a_later_time_is_a_restart_of_the_ids() -> None:
    envelopes = Envelopes("binance", 10, ExchangeStats())
    assert made(envelopes, book(100.0, None, nonce=900_000)) is None  # Binance's REST snapshot
    assert made(envelopes, book(100.5, 1_000, nonce=900_001)) is not None
    assert made(envelopes, book(100.5, 1_000, nonce=900_001)) is None  # the same state again
    assert made(envelopes, book(100.2, 1_000, nonce=899_990)) is None  # older: made already
    assert made(envelopes, book(100.0, None)) is None  # ccxt cleared the nonce: resynchronising
    restarted = made(envelopes, book(99.0, 2_000, nonce=1))  # the exchange restarted its ids
    assert restarted is not None and restarted["seq"] == 1
    assert made(envelopes, book(99.5, 2_001, nonce=2)) is not None
    assert made(envelopes, book(99.5, 2_001, nonce=2)) is None
