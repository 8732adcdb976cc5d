"""The ccxt hooks' pure parts: Binance's update-id continuity, the trades new in ccxt's cache, the start check."""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt.pro as ccxtpro
import pytest
from fluxforge_collector.exchange.ccxt_client import guarded_class, missing_ccxt_parts, new_trades
from fluxforge_collector.exchange.ccxt_resync import BinanceSymbolResync, KrakenSymbolResync, breaks_sequence
from fluxforge_collector.exchange.errors import ExchangeSetupError


def diff(first: int, last: int, previous: int | None = None) -> dict[str, Any]:
    return {"U": first, "u": last, **({} if previous is None else {"pu": previous})}


@pytest.mark.parametrize(
    ("message", "nonce", "synced", "breaks"),
    [
        (diff(11, 11), 10, True, False),  # spot: U = last u + 1
        (diff(11, 14), 10, True, False),
        (diff(12, 12), 10, True, True),  # one update id missing
        (diff(9, 10), 10, True, False),  # older than the book: ccxt skips it
        (diff(8, 12), 10, False, False),  # the first diff on a snapshot straddles it
        (diff(11, 12), 10, False, False),
        (diff(12, 13), 10, False, True),  # the snapshot is older than every diff left
        (diff(11, 15, previous=10), 10, True, False),  # futures: pu = last u
        (diff(12, 15, previous=11), 10, True, True),
        (diff(5, 9, previous=4), 10, True, False),
        ({"e": "depthUpdate"}, 10, True, False),  # no ids: nothing to judge
    ],
)
def test_a_diff_breaks_the_sequence_only_where_binance_says_to_resync(
    message: dict[str, Any], nonce: int, synced: bool, breaks: bool
) -> None:
    assert breaks_sequence(message, nonce, synced) is breaks


def test_new_trades_are_those_after_the_last_handed_over_by_identity() -> None:
    a, b, c, d = ({"id": str(i)} for i in range(4))
    assert new_trades([a, b, c, d], b) == [c, d]
    assert new_trades([a, b], b) == []
    assert new_trades([a, b, c], None) == [a, b, c]
    assert new_trades([c, d], {"id": "1"}) == [c, d]  # an equal but other trade is not the one handed over


def test_each_exchange_class_gets_its_resync_and_ccxt_has_all_the_hooks_replace() -> None:
    events: Any = object()
    assert BinanceSymbolResync in guarded_class(ccxtpro.binanceus, events).__mro__
    assert KrakenSymbolResync in guarded_class(ccxtpro.kraken, events).__mro__
    assert missing_ccxt_parts(ccxtpro.binanceus, (BinanceSymbolResync,)) == []


def test_a_ccxt_without_what_a_hook_replaces_is_refused_at_the_start() -> None:
    bare = type("bare", (), {"client": None, "trades": None})
    assert missing_ccxt_parts(bare, (BinanceSymbolResync,)) == [
        "bare.fetch_rest_order_book_safe",
        "bare.orderbooks",
        *(f"bare.{name}" for name in BinanceSymbolResync.REPLACES),
    ]
    with pytest.raises(
        ExchangeSetupError, match=r"the installed ccxt lacks bare\.fetch_rest_order_book_safe"
    ):
        guarded_class(bare, object())  # type: ignore[arg-type]


class FakeClient:
    """The parts of ccxt's websocket client the Binance book handlers use, recording what they settle."""

    url = "wss://stream.example/stream"

    def __init__(self) -> None:
        self.subscriptions: dict[str, Any] = {"orderbook::BTC/USDT": {}}
        self.resolved: list[int] = []
        self.rejected: list[BaseException] = []

    def resolve(self, result: Any, message_hash: str) -> None:
        self.resolved.append(result["nonce"])

    def reject(self, exc: BaseException, message_hash: str) -> None:
        self.rejected.append(exc)


def book_diff(first: int, last: int) -> dict[str, Any]:
    return {"e": "depthUpdate", "E": last, "s": "BTCUSDT", **diff(first, last), "b": [[last, 1]], "a": []}


async def two_fetches_in_flight(
    answers: list[dict[str, Any] | Exception],
) -> tuple[Any, FakeClient, list[asyncio.Event]]:
    """A Binance book subscribed twice (as ccxt does when its group is subscribed again): two held snapshot fetches.

    Each fetch answers `answers[i]` once the test sets its event `i`.
    """
    exchange: Any = type("binance", (BinanceSymbolResync, ccxtpro.binance), {})()
    exchange.asyncio_loop = asyncio.get_running_loop()
    exchange.set_markets(
        [
            {
                "id": "BTCUSDT",
                "symbol": "BTC/USDT",
                "base": "BTC",
                "quote": "USDT",
                "type": "spot",
                "spot": True,
            }
        ]
    )
    client = FakeClient()
    released = [asyncio.Event() for _ in answers]
    calls = iter(zip(released, answers, strict=True))

    async def fetch(symbol: str, limit: Any, params: Any) -> dict[str, Any]:
        release, answer = next(calls)
        await release.wait()
        if isinstance(answer, Exception):
            raise answer
        return {"symbol": symbol, "timestamp": None, **answer}

    exchange.fetch_rest_order_book_safe = fetch
    for _ in answers:
        exchange.handle_order_book_subscription(client, {}, {"symbols": ["BTC/USDT"], "type": "spot"})
        await asyncio.sleep(0)
    return exchange, client, released


async def settle(release: asyncio.Event) -> None:
    release.set()
    for _ in range(3):
        await asyncio.sleep(0)


def test_a_snapshot_fetched_for_a_wait_that_a_later_fetch_superseded_is_dropped() -> None:
    async def main() -> None:
        exchange, client, (first, second) = await two_fetches_in_flight(
            [{"bids": [[99, 1]], "asks": [], "nonce": 100}, {"bids": [[98, 1]], "asks": [], "nonce": 103}]
        )
        book = exchange.orderbooks["BTC/USDT"]
        exchange.handle_order_book(client, book_diff(101, 102))
        await settle(first)
        assert book["nonce"] is None and client.resolved == []  # still waiting for the second fetch
        exchange.handle_order_book(client, book_diff(103, 104))
        await settle(second)
        exchange.handle_order_book(client, book_diff(105, 106))
        assert client.resolved == [104, 106]
        assert [level[0] for level in book["bids"]] == [106, 104, 98]

    asyncio.run(main())


def test_a_snapshot_arriving_after_the_book_synced_leaves_it_where_the_diffs_put_it() -> None:
    async def main() -> None:
        exchange, client, (first, second) = await two_fetches_in_flight(
            [{"bids": [[98, 1]], "asks": [], "nonce": 103}, {"bids": [[99, 1]], "asks": [], "nonce": 100}]
        )
        book = exchange.orderbooks["BTC/USDT"]
        exchange.handle_order_book(client, book_diff(101, 102))
        await settle(second)
        exchange.handle_order_book(client, book_diff(103, 104))
        await settle(first)  # the older fetch answers last, with a newer snapshot
        exchange.handle_order_book(client, book_diff(105, 106))
        assert client.resolved == [102, 104, 106] and client.rejected == []
        assert [level[0] for level in book["bids"]] == [106, 104, 102, 99]

    asyncio.run(main())


def test_a_superseded_fetch_that_fails_does_not_fail_the_watch() -> None:
    async def main() -> None:
        exchange, client, (first, second) = await two_fetches_in_flight(
            [ccxtpro.RequestTimeout("slow"), {"bids": [], "asks": [], "nonce": 100}]
        )
        await settle(first)
        assert client.rejected == [] and "orderbook::BTC/USDT" in client.subscriptions
        await settle(second)
        exchange.handle_order_book(client, book_diff(101, 102))
        assert client.resolved == [100, 102]

    asyncio.run(main())


class RecordingClient:
    """The websocket client's subscriptions and the futures it rejects."""

    def __init__(self, hashes: list[str]) -> None:
        self.subscriptions: dict[str, Any] = dict.fromkeys(hashes, True)
        self.rejected: list[tuple[str, BaseException]] = []

    def reject(self, error: BaseException, message_hash: Any = None) -> None:
        self.rejected.append((message_hash, error))


@pytest.mark.parametrize(
    ("error", "symbol", "refused"),
    [
        ("EGeneral:Too many requests", "BTC/USD", ["orderbook@BTC/USD"]),
        ("Currency pair not supported BTC/USD", None, ["orderbook@BTC/USD", "orderbook@ETH/USD"]),
        ("Already subscribed", "BTC/USD", []),
    ],
)
def test_a_refused_kraken_subscription_fails_the_watch_of_the_pairs_it_names(
    error: str, symbol: str | None, refused: list[str]
) -> None:
    class Kraken(KrakenSymbolResync, ccxtpro.kraken):  # type: ignore[misc]
        pass

    exchange = Kraken()
    hashes = ["orderbook@BTC/USD", "orderbook@ETH/USD"]
    exchange._ff_requests["7"] = hashes
    client = RecordingClient(hashes)
    answer = {"error": error, "method": "subscribe", "success": False, "req_id": 7}
    for _ in range(2):  # a refusal naming no pair fails the request's pairs once
        exchange.handle_error_message(client, answer if symbol is None else {**answer, "symbol": symbol})
    watches = [(h, type(e).__name__) for h, e in client.rejected if h in hashes]
    kind = "BadSymbol" if "not supported" in error else "ExchangeError"
    expected = refused * 2 if symbol is not None else refused
    assert watches == [(h, kind) for h in expected]
    assert sorted(client.subscriptions) == sorted(set(hashes) - set(refused))
