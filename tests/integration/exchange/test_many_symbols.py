"""Many symbols per watch, through the real ccxt.pro code: a backlog burst and a gap in one symbol.

Binance and Kraken emulators serve `N` symbols, watched by one multi-symbol
watch per channel. A burst (`BURST_S` seconds of market delivered back to
back after sync) must lose nothing: every book update (Binance: every update
id; Kraken: every change, each the true book) and every trade, once, in order,
also the last trades of the burst, which ccxt once surfaced only with the
symbol's next trade; also with the collector starved of CPU (a co-task
taking `STARVED` of its event loop, `fluxforge_emulator.starve`). A gap in
one symbol must resync that symbol alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from fluxforge_emulator import EmulatorConfig, EmulatorThread
from fluxforge_emulator.kraken import BOOK_TRUTH, KrakenEmulator

from tests.support.exchange import (
    LEVELS,
    TRADE_ID,
    TRADE_STREAM,
    Latest,
    MarketFault,
    Run,
    check_every_update_id,
    check_published,
    exchange_config,
    market,
    record,
    recording,
    report,
    sent_events,
)

pytestmark = pytest.mark.e2e

N = 50
SYMBOLS = [f"S{i:02d}/USDT" for i in range(N)]
RATE = 20.0  # events per second per symbol: 1,000/s in all, 30,000 in a burst
BURST_S = 30.0
GAPPED = "S07/USDT"
STARVED = 0.75  # share of the collector's event loop taken in the CPU-starved runs


@pytest.fixture
def binance() -> Iterator[EmulatorThread]:
    config = EmulatorConfig(simulator=market(SYMBOLS, rate=RATE), history_levels=LEVELS, ping_interval_s=0.5)
    with recording(EmulatorThread(config)) as emu:
        yield emu


@pytest.fixture
def kraken() -> Iterator[EmulatorThread]:
    config = EmulatorConfig(simulator=market(SYMBOLS, "kraken", RATE), exchange="kraken", ping_interval_s=0.5)
    with recording(EmulatorThread(config, KrakenEmulator)) as emu:
        yield emu


def config(emu: EmulatorThread, exchange_id: str) -> Any:
    options = emu.ccxt_options() if exchange_id == "kraken" else None
    extra = {"options": options} if options is not None else {}
    return exchange_config(emu, symbols=SYMBOLS, symbols_per_watch=N, **extra)


class Burst(MarketFault):
    """The fault: a burst of `BURST_S`."""

    def __init__(self) -> None:
        super().__init__(lambda emu: emu.burst(BURST_S))

    def last_trades(self, emu: EmulatorThread, exchange_id: str) -> dict[str, int]:
        """Per symbol, the id of the last trade of the burst."""
        return last_trade_before(emu, exchange_id, self.start_ms + BURST_S * 1000)

    def past(self, seconds: float) -> Callable[[Latest], bool]:
        """Whether every symbol published a book `seconds` of market time after the burst began, and a
        trade after its end (the trades' connection may lag the books')."""
        books_past = self.published_past(seconds, SYMBOLS)
        trades_past = self.published_past(BURST_S, SYMBOLS, ("trade",))
        return lambda latest: books_past(latest) and trades_past(latest)


def trades_sent(emu: EmulatorThread, exchange_id: str) -> dict[str, list[tuple[int, int]]]:
    """Per symbol, (trade id, market time ms) of every trade the emulator sent."""
    out: dict[str, list[tuple[int, int]]] = {}
    for sid, events in sent_events(emu, "trade" if exchange_id == "kraken" else TRADE_STREAM).items():
        symbol = next(s for s in SYMBOLS if s.replace("/", "") == sid)
        if exchange_id == "kraken":
            trades = [t["data"][0] for t in events]
            out[symbol] = [(t["trade_id"], _ms(t["timestamp"])) for t in trades]
        else:
            out[symbol] = [(t[TRADE_ID], t["T"]) for t in events]
    return out


def check_every_trade(
    emu: EmulatorThread, run: Run, exchange_id: str, upto_id: dict[str, int], *, each_symbol: bool = True
) -> int:
    """Every trade ccxt received is published; every sent trade from the first published up to
    `upto_id` is, once, in id order. Returns how many trades were published. Without `each_symbol`
    (a run stopped early), a symbol may have none, if ccxt received none of its trades either."""
    sent = trades_sent(emu, exchange_id)
    total = 0
    for symbol in SYMBOLS:
        ids = [int(i) for i in run.trade_ids(symbol)]
        received = {int(i) for i in run.received_trades.get(symbol, [])}
        if not ids and not each_symbol:
            assert not received, f"{symbol}: ccxt received {sorted(received)[:5]}, none published"
            continue
        assert ids, symbol
        assert ids == sorted(set(ids)), f"{symbol}: trades twice or out of order"
        assert received <= set(ids), (
            f"{symbol}: ccxt received {sorted(received - set(ids))[:5]}, not published"
        )
        expected = [t for t, _ in sent[symbol] if ids[0] <= t <= upto_id[symbol]]
        assert ids[: len(expected)] == expected, f"{symbol}: trades missing"
        total += len(ids)
    return total


def _ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)


def last_trade_before(emu: EmulatorThread, exchange_id: str, at_ms: float) -> dict[str, int]:
    """Per symbol, the id of its last trade sent with a market time before `at_ms`."""
    sent = trades_sent(emu, exchange_id)
    return {s: max(t for t, ts in trades if ts < at_ms) for s, trades in sent.items()}


def kraken_truth(emu: EmulatorThread) -> dict[str, list[Any]]:
    """Per symbol, the true top 10 after each change, in order."""
    truth: dict[str, list[Any]] = {}
    for sid, entries in sent_events(emu, BOOK_TRUTH).items():
        truth[next(s for s in SYMBOLS if s.replace("/", "") == sid)] = [
            (e["bids"], e["asks"]) for e in entries if e["depth"] == 10
        ]
    return truth


def check_every_kraken_book(emu: EmulatorThread, run: Run, symbols: list[str]) -> int:
    """Each symbol published the true book after every change, in order, from the first update on its
    snapshot on, each stamped with the exchange's time (the snapshot, which has none, comes first only
    if no update came on it within the hold)."""
    truth = kraken_truth(emu)
    total = 0
    for symbol in symbols:
        envelopes = [e for _, e in run.books(symbol)]
        if envelopes and envelopes[0]["ts"] is None:  # the snapshot, if no update came on it within the hold
            envelopes = envelopes[1:]
        assert all(isinstance(e["ts"], int) for e in envelopes), (
            f"{symbol}: a book without the exchange's time"
        )
        books = [(e["bids"], e["asks"]) for e in envelopes]
        assert books == truth[symbol][: len(books)], (
            f"{symbol}: resyncs {run.stats.resyncs[symbol]}, stalls {run.stats.stalls}"
        )
        total += len(books)
    return total


def record_burst(emu: EmulatorThread, exchange_id: str, **options: Any) -> tuple[Burst, Run]:
    """A collector of every symbol, from the start through the whole burst and 2 s past it."""
    burst = Burst()
    run = record(
        emu,
        config(emu, exchange_id),
        burst,
        run_after_s=0.0,
        until=burst.past(BURST_S + 2),
        exchange_id=exchange_id,
        **options,
    )
    return burst, run


# The share of the collector's event loop a co-task takes: none, or a CPU-starved collector.
CPU_TAKEN = pytest.mark.parametrize("cpu_taken", [0.0, STARVED], ids=["full-cpu", "cpu-starved"])


@CPU_TAKEN
def test_binance_burst_publishes_every_update_id_and_every_trade(
    binance: EmulatorThread, cpu_taken: float
) -> None:
    burst, run = record_burst(binance, "binanceus", cpu_share_taken=cpu_taken)
    counts = check_published(binance, run)
    resyncs = check_every_update_id(binance, run, SYMBOLS)
    counts["trade"] = check_every_trade(binance, run, "binanceus", burst.last_trades(binance, "binanceus"))
    report(f"binance, {BURST_S:.0f} s burst of {N} symbols, {cpu_taken:.0%} of the CPU taken", run, counts)
    s = run.stats
    assert not any(resyncs.values()) and s.stalls == s.reconnects == 0, "a burst is no reason to resync"
    assert s.books_conflated == 0 and s.trade_id_gaps == 0 and not s.resyncs and not s.gaps
    assert s.trades_parsed == s.trades_published  # no trade id came twice


@CPU_TAKEN
def test_kraken_burst_publishes_every_true_book_and_every_trade(
    kraken: EmulatorThread, cpu_taken: float
) -> None:
    burst, run = record_burst(kraken, "kraken", cpu_share_taken=cpu_taken)
    counts = {"book": check_every_kraken_book(kraken, run, SYMBOLS)}
    counts["trade"] = check_every_trade(kraken, run, "kraken", burst.last_trades(kraken, "kraken"))
    report(f"kraken, {BURST_S:.0f} s burst of {N} symbols, {cpu_taken:.0%} of the CPU taken", run, counts)
    s = run.stats
    assert s.stalls == s.reconnects == 0, "a burst is no reason to reconnect"
    assert s.books_conflated == 0 and s.trade_id_gaps == 0 and not s.resyncs and not s.gaps


def _trade_times(run: Run) -> dict[str, int]:
    """Per symbol, the market time of its last published trade."""
    return {e["symbol"]: e["ts"] for _, e in run.envelopes if e["type"] == "trade"}


def test_a_collector_that_falls_behind_conflates_books_but_never_drops_a_trade(
    binance: EmulatorThread,
) -> None:
    burst, run = record_burst(binance, "binanceus", queue_size=200)
    counts = check_published(binance, run)  # every book published is still a true one
    counts["trade"] = check_every_trade(binance, run, "binanceus", burst.last_trades(binance, "binanceus"))
    report(f"binance, {BURST_S:.0f} s burst, queue of 200", run, counts)
    assert run.stats.books_conflated > 0 and run.stats.trade_id_gaps == 0


@pytest.mark.parametrize(
    ("exchange_id", "emulator_fixture"), [("binanceus", "binance"), ("kraken", "kraken")]
)
def test_a_stop_in_the_middle_of_a_burst_publishes_every_trade_ccxt_received(
    request: pytest.FixtureRequest, exchange_id: str, emulator_fixture: str
) -> None:
    emu: EmulatorThread = request.getfixturevalue(emulator_fixture)
    burst = Burst()
    halfway = burst.start_ms + BURST_S * 500

    def mid_burst(latest: Latest) -> bool:
        return burst.start_ms > 0 and any(
            ts >= halfway for (kind, _), ts in latest.items() if kind == "trade"
        )

    run = record(
        emu, config(emu, exchange_id), burst, run_after_s=0.0, until=mid_burst, exchange_id=exchange_id
    )
    last = {s: max((int(i) for i in run.trade_ids(s)), default=0) for s in SYMBOLS}
    counts = {"trade": check_every_trade(emu, run, exchange_id, last, each_symbol=False)}
    report(f"{exchange_id}, stopped in a burst", run, counts)
    assert max(_trade_times(run).values()) < burst.start_ms + BURST_S * 1000  # the stop came mid-burst
    # Trades of the burst were in ccxt's caches at the stop (Kraken's are watched without the
    # subscription snapshot of recent trades, so all of them are the burst's).
    assert sum(len(ids) for ids in run.received_trades.values()) > 0


def test_binance_gap_in_one_of_many_symbols_resyncs_only_that_symbol(binance: EmulatorThread) -> None:
    gap = MarketFault(lambda emu: emu.gap(GAPPED))
    # Every symbol goes on publishing: the run lasts until each one's book moved 2 s of market
    # time past the fault (`record` fails when that stops progressing), which on a loaded
    # machine can take longer than 3 s of wall clock.
    run = record(
        binance, config(binance, "binanceus"), gap, run_after_s=3.0, until=gap.published_past(2.0, SYMBOLS)
    )
    counts = check_published(binance, run)  # a book across the gap would differ from the truth
    report(f"binance, gap in 1 of {N} symbols", run, counts)
    assert run.emulator_stats["dropped_depth"] == 1
    assert run.stats.gaps == {GAPPED: 1} and run.stats.resyncs == {GAPPED: 1}
    assert run.emulator_stats["snapshots"] == N + 1 and run.stats.reconnects == 0
    resyncs = check_every_update_id(binance, run, SYMBOLS)
    assert {s: n for s, n in resyncs.items() if n} == {GAPPED: 1}


def test_kraken_failed_checksum_in_one_of_many_symbols_resubscribes_only_that_symbol(
    kraken: EmulatorThread,
) -> None:
    gap = MarketFault(lambda emu: emu.gap(GAPPED))
    # Until every symbol's book moved 2 s of market time past the fault (some pairs' top 10 stand
    # still for seconds).
    run = record(
        kraken,
        config(kraken, "kraken"),
        gap,
        run_after_s=3.0,
        exchange_id="kraken",
        until=gap.published_past(2.0, SYMBOLS),
    )
    report(f"kraken, lost update in 1 of {N} symbols", run, {})
    assert run.emulator_stats["dropped_depth"] >= 1  # more while the client could not tell (emulator)
    assert run.stats.gaps == {GAPPED: 1} and run.stats.resyncs == {GAPPED: 1}
    assert all(run.stats.snapshots[s] == 1 for s in SYMBOLS if s != GAPPED) and run.stats.reconnects == 0
    check_every_kraken_book(kraken, run, [s for s in SYMBOLS if s != GAPPED])
    true_states = {orjson.dumps(book) for book in kraken_truth(kraken)[GAPPED]}
    books = [orjson.dumps((e["bids"], e["asks"])) for _, e in run.books(GAPPED)]
    assert all(book in true_states for book in books), f"{GAPPED}: a book that was never true"
