"""The trade sequencer on its own: each id once, in id order, a gap held while its trades are fetched.

The REST history is a fake here (the real one, through ccxt against the
emulators, is proved in tests/integration/exchange/test_backfill.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt.pro as ccxtpro
from fluxforge_collector.backoff import Backoff
from fluxforge_collector.exchange.backfill import PAGE, TradeSequencer
from fluxforge_collector.exchange.stats import ExchangeStats
from fluxforge_collector.exchange.stopping import StopSignal

SYMBOL = "BTC/USDT"


def trade(n: int, symbol: str = SYMBOL) -> dict[str, Any]:
    return {"symbol": symbol, "id": str(n), "timestamp": 1_000 * n}


class History:
    """Trades `first`..`last` of one symbol; a page is up to `page` trades after an id (from the
    oldest kept, as exchanges answer, when that one is no longer kept); `grows` trades are made
    per page asked for."""

    def __init__(
        self,
        last: int,
        *,
        first: int = 1,
        grows: int = 0,
        page: int = PAGE,
        fail: BaseException | None = None,
        failures: int = 0,
    ) -> None:
        self.first, self.last, self.grows, self.page_size, self.fail = first, last, grows, page, fail
        self.failures = [ccxtpro.NetworkError("reset"), ccxtpro.ExchangeNotAvailable("503")][:failures]
        self.calls: list[int] = []
        self.release = asyncio.Event()
        self.release.set()

    async def page(self, exchange: Any, symbol: str, after_id: int, after_ts: int | None) -> list[Any]:
        self.calls.append(after_id)
        await self.release.wait()
        if self.failures:
            raise self.failures.pop(0)
        if self.fail is not None:
            raise self.fail
        start = max(after_id + 1, self.first)
        self.last += self.grows
        return [trade(n, symbol) for n in range(start, min(self.last, start + self.page_size - 1) + 1)]


class Sink:
    def __init__(self) -> None:
        self.out: list[tuple[str, bool]] = []

    def __call__(self, trades: list[Any], backfilled: bool) -> None:
        self.out += [(t["id"], backfilled) for t in trades]


def sequencer(history: History) -> tuple[TradeSequencer, Sink, ExchangeStats, StopSignal]:
    stats, sink, stop = ExchangeStats(), Sink(), StopSignal()
    seq = TradeSequencer(stats, sink, stop, lambda: Backoff(0.001, 0.002), "test")
    seq.history = history
    return seq, sink, stats, stop


def ids(a: int, b: int, backfilled: bool = False) -> list[tuple[str, bool]]:
    return [(str(n), backfilled) for n in range(a, b + 1)]


def test_a_gap_holds_the_live_trades_until_the_missing_ones_are_published_marked() -> None:
    async def main() -> None:
        history = History(last=40)
        history.release.clear()
        seq, sink, stats, _ = sequencer(history)
        sink(seq.live([trade(n) for n in range(1, 6)]), False)
        sink(seq.live([trade(n) for n in (31, 32)]), False)  # 6-30 missed
        sink(seq.live([trade(33), trade(32)]), False)  # held, a duplicate among them
        assert sink.out == ids(1, 5)
        history.release.set()
        await seq.settle()
        assert sink.out == ids(1, 5) + ids(6, 30, backfilled=True) + ids(31, 33)
        assert history.calls == [5]
        assert stats.trades_backfilled == {SYMBOL: 25} and stats.trade_id_gaps == 0
        assert stats.duplicate_trades == 1

    asyncio.run(main())


def test_a_long_gap_is_fetched_page_by_page_and_other_symbols_go_on() -> None:
    async def main() -> None:
        history = History(last=2_600, page=1000)
        seq, sink, stats, _ = sequencer(history)
        sink(seq.live([trade(1), trade(2_501)]), False)
        sink(seq.live([trade(7, "ETH/USDT")]), False)
        await seq.settle()
        assert sink.out == [("1", False), ("7", False), *ids(2, 2_500, backfilled=True), ("2501", False)]
        assert history.calls == [1, 1_001, 2_001]
        assert stats.trades_backfilled == {SYMBOL: 2_499}

    asyncio.run(main())


def test_what_the_history_no_longer_has_is_counted_unrecoverable() -> None:
    async def main() -> None:
        history = History(last=20)
        seq, sink, stats, _ = sequencer(history)
        sink(seq.live([trade(10), trade(31)]), False)  # 11-30 missed, the history has 11-20
        await seq.settle()
        assert sink.out == [("10", False), *ids(11, 20, backfilled=True), ("31", False)]
        assert stats.trades_unrecoverable == {SYMBOL: 10} and stats.trade_id_gaps == 10

    asyncio.run(main())


def test_a_gap_the_history_has_moved_past_ends_after_one_page() -> None:
    async def main() -> None:
        history = History(first=40, last=5_000)
        seq, sink, stats, _ = sequencer(history)
        sink(seq.live([trade(10), trade(31), trade(32)]), False)  # 11-30 missed, the history starts at 40
        await seq.settle()
        assert sink.out == [("10", False), ("31", False), ("32", False)]
        assert history.calls == [10]  # not a page after page of trades past the gap
        assert stats.trades_unrecoverable == {SYMBOL: 20} and stats.trades_backfilled[SYMBOL] == 0

    asyncio.run(main())


def test_an_open_gap_ends_at_the_first_live_trade_on_a_market_faster_than_the_pages() -> None:
    async def main() -> None:
        history = History(last=1_000, grows=1_500)  # 1,500 trades made per page of 1,000 fetched
        history.release.clear()
        seq, sink, stats, _ = sequencer(history)
        sink(seq.live([trade(1)]), False)
        seq.interrupted([SYMBOL])
        seq.resumed([SYMBOL])  # an open gap: all trades since 1
        sink(seq.live([trade(2_600), trade(2_601)]), False)  # live again, held
        history.release.set()
        await seq.settle()
        assert sink.out == [("1", False), *ids(2, 2_599, backfilled=True), ("2600", False), ("2601", False)]
        assert history.calls == [1, 1_001, 2_001]
        assert stats.trades_backfilled == {SYMBOL: 2_598} and not stats.trades_unrecoverable

    asyncio.run(main())


def test_an_open_gap_whose_first_live_trade_is_a_duplicate_is_still_fetched_to_the_end() -> None:
    async def main() -> None:
        history = History(last=50)
        history.release.clear()
        seq, sink, stats, _ = sequencer(history)
        sink(seq.live([trade(10)]), False)
        seq.interrupted([SYMBOL])
        seq.resumed([SYMBOL])  # an open gap: all trades since 10
        sink(seq.live([trade(10)]), False)  # the last one handed on, delivered again: held
        history.release.set()
        await seq.settle()
        assert sink.out == [("10", False), *ids(11, 50, backfilled=True)]
        assert stats.duplicate_trades == 1 and not stats.trades_unrecoverable

    asyncio.run(main())


def test_a_history_that_fails_for_good_releases_the_held_trades() -> None:
    async def main() -> None:
        history = History(last=50, fail=ccxtpro.AuthenticationError("historicalTrades needs apiKey"))
        seq, sink, stats, _ = sequencer(history)
        sink(seq.live([trade(1), trade(5), trade(6)]), False)
        await seq.settle()
        assert sink.out == [("1", False), ("5", False), ("6", False)]
        assert stats.trades_unrecoverable == {SYMBOL: 3} and len(history.calls) == 1

    asyncio.run(main())


def test_a_failure_worth_waiting_out_is_retried() -> None:
    async def main() -> None:
        history = History(last=9, failures=2)
        seq, sink, stats, _ = sequencer(history)
        sink(seq.live([trade(1), trade(10)]), False)
        await seq.settle()
        assert sink.out == [("1", False), *ids(2, 9, backfilled=True), ("10", False)]
        assert stats.errors == {"NetworkError": 1, "ExchangeNotAvailable": 1}

    asyncio.run(main())


def test_a_stop_during_a_backfill_publishes_what_was_held() -> None:
    async def main() -> None:
        history = History(last=50)
        history.release.clear()
        seq, sink, stats, stop = sequencer(history)
        sink(seq.live([trade(1), trade(20), trade(21)]), False)
        await asyncio.sleep(0)
        stop.interrupt()
        await seq.settle()
        assert sink.out == [("1", False), ("20", False), ("21", False)]
        assert stats.trades_unrecoverable == {SYMBOL: 18}

    asyncio.run(main())


def test_after_a_disconnect_a_symbol_with_no_trade_since_is_backfilled_to_the_end() -> None:
    async def main() -> None:
        history = History(last=12)
        seq, sink, stats, _ = sequencer(history)
        sink(seq.live([trade(3), trade(8, "ETH/USDT")]), False)
        seq.interrupted([SYMBOL, "ETH/USDT"])
        sink(seq.live([trade(9, "ETH/USDT")]), False)  # ETH traded since: no gap, nothing to fetch
        seq.resumed([SYMBOL, "ETH/USDT"])
        sink(seq.live([trade(11), trade(13)]), False)  # live ones during the backfill wait
        await seq.settle()
        assert sink.out == [
            ("3", False),
            ("8", False),
            ("9", False),
            *ids(4, 10, backfilled=True),  # up to the first live one held
            ("11", False),
            ("12", True),  # the one the live stream skipped
            ("13", False),
        ]
        assert history.calls == [3, 11] and stats.trade_id_gaps == 0 and stats.duplicate_trades == 0

    asyncio.run(main())
