"""The collector against Kraken's protocol style (in-band snapshots, no update ids, CRC32 checksums).

The same `ExchangeSource` runs ccxt.pro's real `kraken` class against the
Kraken emulator. Books are held against the emulator's true book after each
change (published in order from the first update on the subscription's
snapshot on, every one, each with the exchange's time),
trades against what was sent; a lost update must be caught by the checksum
and never published across.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fluxforge_collector.exchange import ccxt_resync
from fluxforge_common.simulator import SimulatorConfig
from fluxforge_emulator import EmulatorConfig, EmulatorThread
from fluxforge_emulator.kraken import BOOK_TRUTH, KrakenEmulator

from tests.support.exchange import (
    STALL_TIMEOUT_S,
    SYMBOLS,
    MarketFault,
    Run,
    exchange_config,
    record,
    recording,
    report,
    sent_events,
)

pytestmark = pytest.mark.e2e

Book = tuple[list[list[float]], list[list[float]]]
# ccxt sends Kraken one subscription a second on a new connection: after a fault (the stall
# watchdog takes `STALL_TIMEOUT_S` in the stall test) the third channel is back within ~4.5 s.
RESUBSCRIBED_S = 5.5


@pytest.fixture
def kraken() -> Iterator[EmulatorThread]:
    sim = SimulatorConfig(seed=11, exchanges={"kraken": SYMBOLS}, mean_events_per_second_per_symbol=40)
    config = EmulatorConfig(simulator=sim, exchange="kraken", ping_interval_s=0.5)
    with recording(EmulatorThread(config, KrakenEmulator)) as emu:
        yield emu


def true_books(emu: EmulatorThread) -> dict[str, list[Book]]:
    """Per unified symbol, the true top 10 after each change, in order."""
    books: dict[str, list[Book]] = {}
    for sid, entries in sent_events(emu, BOOK_TRUTH).items():
        symbol = next(s for s in SYMBOLS if s.replace("/", "") == sid)
        books[symbol] = [(e["bids"], e["asks"]) for e in entries if e["depth"] == 10]
    return books


def published_books(run: Run, symbol: str) -> list[Book]:
    return [(e["bids"], e["asks"]) for _, e in run.books(symbol)]


def check_trades(emu: EmulatorThread, run: Run) -> int:
    """Each symbol's trades are those sent, once, in order, from the first received on; returns how many."""
    sent = sent_events(emu, "trade")
    total = 0
    for symbol in SYMBOLS:
        truth = [t["data"][0] for t in sent[symbol.replace("/", "")]]
        got = [e for _, e in run.envelopes if e["type"] == "trade" and e["symbol"] == symbol]
        assert got, symbol
        first = next(i for i, t in enumerate(truth) if str(t["trade_id"]) == got[0]["id"])
        expected = truth[first : first + len(got)]
        assert [e["id"] for e in got] == [str(t["trade_id"]) for t in expected], symbol
        assert [(e["price"], e["amount"], e["side"]) for e in got] == [
            (t["price"], t["qty"], t["side"]) for t in expected
        ], symbol
        total += len(got)
    return total


def kraken_config(emu: EmulatorThread, **overrides: Any) -> Any:
    return exchange_config(emu, options=emu.ccxt_options(), **overrides)


def test_every_book_update_matches_the_true_book_and_every_trade_arrives_once(kraken: EmulatorThread) -> None:
    run = record(kraken, kraken_config(kraken), run_after_s=3.0, exchange_id="kraken")
    truth = true_books(kraken)
    counts = {"book": 0, "trade": check_trades(kraken, run)}
    for symbol in SYMBOLS:
        books = published_books(run, symbol)
        # From the first update on the subscription's snapshot, one book per change, each the true one,
        # stamped with the exchange's time (the snapshot, which has none, waits for that update, and
        # goes first only if none came within the hold).
        stamped = [isinstance(e["ts"], int) for _, e in run.books(symbol)]
        books = books[1:] if not stamped[0] else books
        assert all(stamped[1:]), symbol
        assert len(books) > 20, symbol
        assert books == truth[symbol][: len(books)], (
            f"{symbol}: resyncs {run.stats.resyncs[symbol]}, stalls {run.stats.stalls}"
        )
        counts["book"] += len(books)
    report("kraken, no fault", run, counts)
    assert run.stats.stalls == run.stats.reconnects == 0
    assert not run.stats.gaps and run.stats.bad_frames == 0 and run.stats.books_conflated == 0
    assert not run.stats.resyncs and all(run.stats.snapshots[s] == 1 for s in SYMBOLS)


def check_true_states(emu: EmulatorThread, run: Run) -> dict[str, int]:
    """Every published book is a state the true book was in; the counts."""
    truth = true_books(emu)
    counts = {"book": 0, "trade": check_trades(emu, run)}
    for symbol in SYMBOLS:
        books = published_books(run, symbol)
        valid = {orjson.dumps(book) for book in truth[symbol]}
        wrong = [i for i, book in enumerate(books) if orjson.dumps(book) not in valid]
        assert not wrong, f"{symbol}: books {wrong[:5]} are not a true state"
        counts["book"] += len(books)
    return counts


def test_a_lost_update_fails_the_checksum_and_the_book_is_resubscribed(kraken: EmulatorThread) -> None:
    gap = lambda e: e.gap("BTC/USDT")  # noqa: E731
    run = record(
        kraken, kraken_config(kraken), gap, run_after_s=2.0, recover_after_s=1.0, exchange_id="kraken"
    )
    counts = check_true_states(kraken, run)
    report("kraken, lost update", run, counts)
    assert run.emulator_stats["dropped_depth"] >= 1  # more while the client could not tell (emulator)
    assert run.stats.resyncs["BTC/USDT"] >= 1  # one subscription for all symbols: all get snapshots
    assert run.stats.gaps["BTC/USDT"] == 1 and not run.stats.gaps["ETH/USDT"]
    assert run.fault_at is not None and run.books("BTC/USDT", after=run.fault_at + 1.0)


def test_a_dropped_connection_resubscribes_and_the_trade_snapshot_fills_the_outage(
    kraken: EmulatorThread,
) -> None:
    drop = MarketFault(lambda e: e.drop_connections())
    # Books and trades come back: the run goes on until every symbol published both from 0.5 s of
    # market time after the drop (`record` fails if that stops progressing).
    run = record(
        kraken,
        kraken_config(kraken),
        drop,
        run_after_s=RESUBSCRIBED_S,
        exchange_id="kraken",
        until=drop.published_past(0.5, SYMBOLS, ("book", "trade")),
    )
    counts = check_true_states(kraken, run)  # trades: none missing from the first on, across the outage
    report("kraken, disconnect", run, counts)
    assert run.stats.reconnects >= 3 and run.emulator_stats["ws_connections"] >= 2
    assert run.stats.trade_id_gaps == 0
    assert all(run.stats.resyncs[s] >= 1 for s in SYMBOLS)


def test_a_malformed_book_frame_is_skipped_and_the_checksum_resubscribes_the_book(
    kraken: EmulatorThread,
) -> None:
    malformed = lambda e: e.malformed("ETH/USDT")  # noqa: E731
    run = record(
        kraken, kraken_config(kraken), malformed, run_after_s=2.0, recover_after_s=1.0, exchange_id="kraken"
    )
    counts = check_true_states(kraken, run)
    report("kraken, malformed frame", run, counts)
    assert run.stats.bad_frames == 1 and run.emulator_stats["malformed"] == 1
    assert run.stats.gaps["ETH/USDT"] == 1  # the lost update, caught by the next checksum
    assert run.fault_at is not None and run.books("ETH/USDT", after=run.fault_at + 1.0)


def test_a_stalled_connection_is_failed_and_everything_resubscribes(kraken: EmulatorThread) -> None:
    stall = lambda e: e.stall()  # noqa: E731
    run = record(
        kraken,
        kraken_config(kraken, stall_timeout_s=STALL_TIMEOUT_S),
        stall,
        run_after_s=RESUBSCRIBED_S,
        recover_after_s=2.5,
        exchange_id="kraken",
    )
    counts = check_true_states(kraken, run)
    report("kraken, stall", run, counts)
    assert run.stats.stalls >= 1 and run.stats.reconnects >= 3 and run.stats.trade_id_gaps == 0
    assert run.fault_at is not None
    assert all(run.books(s, after=run.fault_at + 2.5) for s in SYMBOLS)


def test_a_refused_resubscription_is_sent_again_until_the_snapshot_comes(
    kraken: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ccxt_resync, "RESUBSCRIBE_TIMEOUT_S", 1.0)

    def fault(emu: KrakenEmulator) -> None:
        emu.gap("BTC/USDT")
        emu.refuse_book_subscription("BTC/USDT", 2)

    run = record(kraken, kraken_config(kraken), fault, run_after_s=5.0, exchange_id="kraken")  # type: ignore[arg-type]
    counts = check_true_states(kraken, run)
    report("kraken, lost update, resubscription refused twice", run, counts)
    assert run.stats.gaps == {"BTC/USDT": 1} and run.stats.resyncs == {"BTC/USDT": 1}
    # Refused twice 1 s apart, then subscribed: no book without the second and third requests.
    assert run.fault_at is not None and run.books("BTC/USDT", after=run.fault_at + 2.0)


def test_a_refused_first_subscription_fails_the_watch_which_subscribes_again(kraken: EmulatorThread) -> None:
    kraken.call(lambda emu: emu.refuse_book_subscription("BTC/USDT"))  # type: ignore[attr-defined]
    run = record(kraken, kraken_config(kraken), run_after_s=1.0, exchange_id="kraken")
    counts = check_true_states(kraken, run)
    report("kraken, first book subscription refused", run, counts)
    # Before the change ccxt left the refusal unseen and BTC/USDT never had a book ("books of only").
    assert run.stats.errors["ExchangeError"] >= 1
    assert all(run.books(s) for s in SYMBOLS)
