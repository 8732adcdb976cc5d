"""A book snapshot without an exchange time waits for the first update on it (`ExchangeSource`)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from fluxforge_collector.exchange import source as source_module
from fluxforge_collector.exchange.source import ExchangeSource
from fluxforge_common.config import ExchangeConfig

SYMBOL = "BTC/USD"
OTHER = "ETH/USD"
HOLD_S = 0.05


def kraken_book(ts: int | None, bid: float) -> dict[str, Any]:
    return {"symbol": SYMBOL, "timestamp": ts, "nonce": None, "bids": [[bid, 1.0]], "asks": [[bid + 1, 1.0]]}


async def published(source: ExchangeSource) -> list[dict[str, Any]]:
    """The envelopes queued once the hold has passed."""
    await asyncio.sleep(HOLD_S * 4)
    assert source._queue is not None
    lines = [source._queue.get_nowait() for _ in range(source._queue.qsize())]
    return [orjson.loads(line) for line in lines if line is not None]


def run(body: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.setattr(source_module, "SNAPSHOT_HOLD_S", HOLD_S)

    async def main() -> list[dict[str, Any]]:
        source = ExchangeSource("kraken", ExchangeConfig(symbols=[SYMBOL]), max_levels=10)
        source._queue = asyncio.Queue()
        source.exchange = SimpleNamespace(orderbooks={})
        body(source)
        return await published(source)

    return asyncio.run(main())


def test_the_first_update_on_a_snapshot_is_published_instead_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def body(source: ExchangeSource) -> None:
        source.on_snapshot(SYMBOL)
        source.exchange.orderbooks[SYMBOL] = book = kraken_book(None, 100.0)
        source.on_book(book)
        book.update(kraken_book(1_765_512_000_400, 101.0))
        source.on_book(book)

    envelopes = run(body, monkeypatch)
    assert [(e["ts"], e["bids"]) for e in envelopes] == [(1_765_512_000_400, [[101.0, 1.0]])]


def test_a_snapshot_without_an_update_within_the_hold_is_published_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def body(source: ExchangeSource) -> None:
        source.on_snapshot(SYMBOL)
        source.exchange.orderbooks[SYMBOL] = book = kraken_book(None, 100.0)
        source.on_book(book)

    envelopes = run(body, monkeypatch)
    assert [(e["ts"], e["bids"]) for e in envelopes] == [(None, [[100.0, 1.0]])]


def failed_checksum_on_the_first_update(source: ExchangeSource) -> None:
    """A snapshot (bid 100) whose first update fails the checksum, then the pair's new snapshot (102)
    and the update on it (103), as ccxt and `ccxt_checks` report them."""
    books = source.exchange.orderbooks
    source.on_snapshot(SYMBOL)
    books[SYMBOL] = book = kraken_book(None, 100.0)
    source.on_book(book)
    book.update(kraken_book(1_765_512_000_900, 99.0))  # applied, then refused by the checksum
    del books[SYMBOL]
    source.on_gap(SYMBOL)
    source.on_snapshot(SYMBOL)
    books[SYMBOL] = book = kraken_book(None, 102.0)
    source.on_book(book)
    book.update(kraken_book(1_765_512_002_600, 103.0))
    source.on_book(book)


def test_a_failed_checksum_on_the_first_update_publishes_the_snapshot_as_it_came(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ccxt applies the update, the check fails and drops the book (`ccxt_checks`): the snapshot was
    true, and goes out with its own receive time; the next snapshot's update is marked as the resync."""
    clock = iter([1_765_512_000.5, 1_765_512_002.0, 1_765_512_002.7])

    def body(source: ExchangeSource) -> None:
        source.clock = lambda: next(clock)
        failed_checksum_on_the_first_update(source)

    envelopes = run(body, monkeypatch)
    assert [(e["ts"], e["recv_ts"], e["bids"], e.get("resync")) for e in envelopes] == [
        (None, 1_765_512_000_500, [[100.0, 1.0]], None),
        (1_765_512_002_600, 1_765_512_002_700, [[103.0, 1.0]], "gap"),
    ]


def test_a_snapshot_published_after_a_failed_checksum_keeps_its_place_ahead_of_the_next_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the queue full, the symbol's earlier book waits in the backlog as a mark (the state due
    when room frees up): the snapshot takes that place, or the mark would become the book after the
    resync and go out before it."""
    monkeypatch.setattr(source_module, "SNAPSHOT_HOLD_S", HOLD_S)

    async def main() -> list[dict[str, Any]]:
        source = ExchangeSource("kraken", ExchangeConfig(symbols=[SYMBOL, OTHER]), max_levels=10)
        queue = source._queue = asyncio.Queue(1)
        source.exchange = SimpleNamespace(orderbooks={})
        books = source.exchange.orderbooks
        books[OTHER] = {**kraken_book(1_765_512_000_000, 50.0), "symbol": OTHER}
        source.on_book(books[OTHER])  # fills the queue
        books[SYMBOL] = book = kraken_book(1_765_512_000_100, 90.0)
        source.on_book(book)  # left out: a mark in the backlog
        failed_checksum_on_the_first_update(source)
        lines = []
        while source._backlog or not queue.empty():
            lines.append(orjson.loads(await asyncio.wait_for(queue.get(), 5.0)))  # type: ignore[arg-type]
        return lines

    envelopes = asyncio.run(main())
    assert [(e["symbol"], e["bids"], e.get("resync")) for e in envelopes] == [
        (OTHER, [[50.0, 1.0]], None),
        (SYMBOL, [[100.0, 1.0]], None),
        (SYMBOL, [[103.0, 1.0]], "gap"),
    ]


def test_a_book_without_an_exchange_time_that_is_no_snapshot_goes_out_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def body(source: ExchangeSource) -> None:
        source.exchange.orderbooks[SYMBOL] = book = kraken_book(None, 100.0)
        source.on_book(book)
        assert source._queue is not None and source._queue.qsize() == 1

    assert len(run(body, monkeypatch)) == 1


def test_a_released_snapshot_leaves_the_queue_to_the_books_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    other = OTHER

    def body(source: ExchangeSource) -> None:
        release = source._release_snapshot

        def release_then_another_book(symbol: str) -> None:  # in the same callback: no task ran between
            release(symbol)
            source.on_book({**kraken_book(1_765_512_000_400, 50.0), "symbol": other})

        source._release_snapshot = release_then_another_book  # type: ignore[method-assign]
        source.on_snapshot(SYMBOL)
        source.exchange.orderbooks[SYMBOL] = book = kraken_book(None, 100.0)
        source.on_book(book)

    envelopes = run(body, monkeypatch)
    assert [(e["symbol"], e["ts"]) for e in envelopes] == [(SYMBOL, None), (other, 1_765_512_000_400)]


@pytest.mark.parametrize("queue_full", [False, True], ids=["room", "queue-full"])
def test_a_stop_publishes_a_held_snapshots_book_as_it_is_then_once(
    monkeypatch: pytest.MonkeyPatch, queue_full: bool
) -> None:
    monkeypatch.setattr(source_module, "SNAPSHOT_HOLD_S", HOLD_S)

    async def main() -> list[dict[str, Any]]:
        source = ExchangeSource("kraken", ExchangeConfig(symbols=[SYMBOL]), max_levels=10)
        source._queue = asyncio.Queue(1)
        source.exchange = SimpleNamespace(orderbooks={})
        if queue_full:  # the queue holds a book, another symbol's waits for room, then a mark of this one
            books = source.exchange.orderbooks
            books[OTHER] = {**kraken_book(1_765_512_000_000, 50.0), "symbol": OTHER}
            books[SYMBOL] = book = kraken_book(1_765_512_000_000, 90.0)
            for conflated in (book, books[OTHER], book):
                source.on_book(conflated)
        source.on_snapshot(SYMBOL)
        source.exchange.orderbooks[SYMBOL] = book = kraken_book(None, 100.0)
        source.on_book(book)
        source.request_stop()
        await asyncio.sleep(0)
        assert source.stop_signal.is_set
        book.update(kraken_book(1_765_512_000_400, 101.0))  # ccxt applies frames until the connection closes
        source.on_book(book)  # not taken: the source is stopping
        await asyncio.sleep(HOLD_S / 2)  # the stop gets under way while the backlog waits for room
        lines = []
        while (line := await source._queue.get()) is not None:
            lines.append(orjson.loads(line))
        return lines

    envelopes = asyncio.run(main())
    first = [(SYMBOL, [[90.0, 1.0]]), (OTHER, [[50.0, 1.0]])] if queue_full else []
    assert [(e["symbol"], e["bids"]) for e in envelopes] == [*first, (SYMBOL, [[101.0, 1.0]])]
