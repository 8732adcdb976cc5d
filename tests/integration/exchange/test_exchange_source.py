"""The ccxt.pro collector source through the real ccxt.pro code against the Binance emulator.

Every test checks all it published against the emulator's truth
(`check_published`: books equal the true top levels at their update id,
trades exactly as sent, once, in order) and prints its counts and, for a
fault, how long the collector took to recover by itself.
"""

from __future__ import annotations

import time

import pytest
from fluxforge_emulator import EmulatorConfig, EmulatorThread, ExchangeEmulator

from tests.support.exchange import (
    LEVELS,
    STALL_TIMEOUT_S,
    SYMBOLS,
    TRADE_ID,
    TRADE_STREAM,
    Latest,
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


def test_every_book_update_and_trade_arrives_once_in_order_and_books_match_the_true_book(
    emulator: EmulatorThread,
) -> None:
    run = record(emulator, exchange_config(emulator), run_after_s=3.0)
    counts = check_published(emulator, run)
    report("no fault", run, counts)
    assert counts["book"] > 150 and counts["trade"] > 30 and counts["ticker"] > 5
    assert run.stats.reconnects == 0 and not run.stats.resyncs and run.stats.trade_id_gaps == 0
    assert run.stats.books_conflated == 0
    trades, diffs = sent_events(emulator, TRADE_STREAM), sent_events(emulator, "depth")
    for symbol in SYMBOLS:
        sid = symbol.replace("/", "")
        ids = [int(e["id"]) for _, e in run.envelopes if e["type"] == "trade" and e["symbol"] == symbol]
        seqs = [e["seq"] for _, e in run.books(symbol)]
        assert ids and seqs, symbol
        # From the first trade and book received on, nothing the exchange sent is missing:
        # each diff's book state is published, not only the latest when a watcher wakes.
        assert ids == [t[TRADE_ID] for t in trades[sid] if ids[0] <= t[TRADE_ID] <= ids[-1]], symbol
        assert seqs == [d["u"] for d in diffs[sid] if seqs[0] <= d["u"] <= seqs[-1]], symbol


def test_disconnect_reconnects_and_resyncs_every_book(emulator: EmulatorThread) -> None:
    run = record(
        emulator,
        exchange_config(emulator),
        lambda e: e.drop_connections(),
        run_after_s=2.0,
        recover_after_s=0.5,
    )
    counts = check_published(emulator, run)
    report("disconnect", run, counts)
    assert run.stats.reconnects >= 3  # book, trade and ticker connections
    assert all(run.stats.resyncs[s] >= 1 for s in SYMBOLS)
    assert all(run.books(s, after=run.fault_at + 0.5) for s in SYMBOLS if run.fault_at)


def test_stalled_feed_is_detected_and_resubscribed(emulator: EmulatorThread) -> None:
    config = exchange_config(emulator, stall_timeout_s=STALL_TIMEOUT_S)
    run = record(emulator, config, lambda e: e.stall(), recover_after_s=2.5)
    counts = check_published(emulator, run)
    report("stall", run, counts)
    assert run.stats.stalls >= 3 and run.stats.reconnects >= 3
    assert all(run.stats.resyncs[s] >= 1 for s in SYMBOLS)
    assert run.fault_at is not None
    assert all(run.books(s, after=run.fault_at + 2.5) for s in SYMBOLS)


def test_sequence_gap_resyncs_the_book_and_never_publishes_across_it(emulator: EmulatorThread) -> None:
    run = record(
        emulator, exchange_config(emulator), lambda e: e.gap("BTC/USDT"), run_after_s=2.0, recover_after_s=1.0
    )
    counts = check_published(emulator, run)  # a book across the gap would differ from the truth
    report("gap", run, counts)
    assert run.emulator_stats["dropped_depth"] == 1
    assert run.stats.resyncs["BTC/USDT"] >= 1
    assert run.fault_at is not None and run.books("BTC/USDT", after=run.fault_at + 1.0)
    # The first book after the resync says so, for the data-quality report of the dataset.
    marks = [
        (e["symbol"], e.get("resync")) for _, e in run.envelopes if e["type"] == "book" and "resync" in e
    ]
    assert ("BTC/USDT", "gap") in marks and {symbol for symbol, _ in marks} == {"BTC/USDT"}


def test_malformed_frame_is_skipped_and_the_book_resyncs(emulator: EmulatorThread) -> None:
    run = record(
        emulator,
        exchange_config(emulator),
        lambda e: e.malformed("ETH/USDT"),
        run_after_s=2.0,
        recover_after_s=1.0,
    )
    counts = check_published(emulator, run)
    report("malformed frame", run, counts)
    assert run.emulator_stats["malformed"] == 1 and run.stats.bad_frames == 1
    assert run.stats.resyncs["ETH/USDT"] >= 1
    assert run.stats.reconnects == 0  # the connection itself survived
    assert run.fault_at is not None and run.books("ETH/USDT", after=run.fault_at + 1.0)


@pytest.mark.parametrize("status", [429, 503])
def test_refused_snapshots_are_retried_until_the_book_is_back(emulator: EmulatorThread, status: int) -> None:
    def fault(e: ExchangeEmulator) -> None:
        e.http_error(
            status, count=5, path="/depth", retry_after_s=1 if status == 429 else None
        )  # > ccxt's 3 tries
        e.gap("SOL/USDT")

    run = record(emulator, exchange_config(emulator), fault, recover_after_s=1.0)
    counts = check_published(emulator, run)
    report(f"HTTP {status} on snapshots", run, counts)
    assert run.emulator_stats["http_errors"] == {str(status): 5}
    assert run.stats.resyncs["SOL/USDT"] >= 1
    assert run.fault_at is not None and run.books("SOL/USDT", after=run.fault_at + 1.0)


@pytest.mark.parametrize("status", [429, 503])
def test_refused_start_and_handshakes_are_waited_out(emulator: EmulatorThread, status: int) -> None:
    emulator.call(lambda e: e.http_error(status, count=2, path="exchangeInfo", retry_after_s=1))
    emulator.call(lambda e: e.ws_reject(status, count=2))
    run = record(emulator, exchange_config(emulator), run_after_s=1.0)
    counts = check_published(emulator, run)
    report(f"HTTP {status} on exchangeInfo and handshakes", run, counts)
    assert run.emulator_stats["http_errors"] == {str(status): 2} and run.emulator_stats["ws_rejected"] == 2
    if status == 429:
        assert run.stats.rate_limited >= 1
    assert sum(run.stats.errors.values()) >= 3


def test_a_failing_symbol_does_not_stop_the_others(emulator: EmulatorThread) -> None:
    emulator.call(lambda e: e.http_error(503, count=10**6, path="symbol=SOLUSDT"))
    config = exchange_config(emulator, symbols=[*SYMBOLS, "NOPE/USDT"], split_after_failures=2)
    run = record(
        emulator,
        config,
        ready=lambda seen: {"BTC/USDT", "ETH/USDT"} <= seen,
        recovered={"BTC/USDT", "ETH/USDT"},
    )
    counts = check_published(emulator, run)
    report("one symbol failing", run, counts)
    assert run.stats.failed_symbols == ["NOPE/USDT"]
    assert run.stats.splits >= 1
    assert not run.books("SOL/USDT")
    assert len(run.books("BTC/USDT")) > 10 and len(run.books("ETH/USDT")) > 10


def test_a_snapshot_answered_after_its_book_went_live_skips_no_update_id() -> None:
    """ccxt subscribes a whole group again when one symbol's snapshot fails, and fetches every
    symbol of it again: ETH/USDT's first fetch, answered 3 s late, comes after its second one put
    the book live (~0.6 s after the first; the order is checked). The diffs trail REST by 0.5 s, so that late snapshot is ahead of the live book:
    applied, it would skip the ids in between with the resync mark already spent."""
    config = EmulatorConfig(
        simulator=market(SYMBOLS), history_levels=LEVELS, ping_interval_s=0.5, depth_lag_s=0.5
    )
    with recording(EmulatorThread(config)) as emu:
        emu.call(lambda e: e.http_error(503, count=3, path="depth?symbol=BTCUSDT"))  # ccxt's 3 tries
        emu.call(lambda e: e.slow_snapshot("ETH/USDT", 3.0))
        slow_answered: list[float] = []
        give_up = time.monotonic() + 60.0

        def a_second_after_the_slow_answer(latest: Latest) -> bool:
            """The run goes on until the collector has had a second to take the late answer in."""
            if not slow_answered and emu.call(lambda e: "ETHUSDT (slow)" in e.stats.snapshots_answered):
                slow_answered.append(time.monotonic())
            assert slow_answered or time.monotonic() < give_up, "the slow snapshot was never answered"
            return bool(slow_answered) and time.monotonic() > slow_answered[0] + 1.0

        run = record(emu, exchange_config(emu), run_after_s=1.0, until=a_second_after_the_slow_answer)
        counts = check_published(emu, run)
        resyncs = check_every_update_id(emu, run, SYMBOLS)
    report("a late snapshot of a book already live", run, counts)
    assert run.emulator_stats["http_errors"] == {"503": 3} and run.emulator_stats["slow_snapshots"] == 1
    # Every symbol fetched twice (its first fetch, then the group's subscription again); all but
    # BTC/USDT's first fetch answered.
    assert all(run.stats.snapshots[s] == 2 for s in SYMBOLS) and run.emulator_stats["snapshots"] == 5
    assert not any(resyncs.values()) and not run.stats.gaps
    eth = [answer for answer in run.emulator_stats["snapshots_answered"] if answer.startswith("ETHUSDT")]
    assert eth == ["ETHUSDT", "ETHUSDT (slow)"], run.emulator_stats["snapshots_answered"]
