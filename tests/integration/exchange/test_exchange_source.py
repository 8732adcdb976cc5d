"""The ccxt.pro collector source through the real ccxt.pro code against the Binance emulator.

Every test checks all it published against the emulator's truth
(`check_published`: books equal the true top levels at their update id,
trades exactly as sent, once, in order) and prints its counts and, for a
fault, how long the collector took to recover by itself.
"""

from __future__ import annotations

import pytest
from fluxforge_collector.emulator import EmulatorThread

from .conftest import SYMBOLS, check_published, exchange_config, record, report, sent_trades

pytestmark = pytest.mark.e2e


def test_books_match_the_true_book_and_every_trade_arrives_once_in_order(emulator: EmulatorThread) -> None:
    run = record(emulator, exchange_config(emulator), run_after_s=4.0)
    counts = check_published(emulator, run)
    report("no fault", run, counts)
    assert counts["book"] > 300 and counts["trade"] > 30 and counts["ticker"] > 5
    assert run.stats.reconnects == 0 and not run.stats.resyncs and run.stats.trade_id_gaps == 0
    truth = sent_trades(emulator)
    for symbol in SYMBOLS:
        ids = [int(e["id"]) for _, e in run.envelopes if e["type"] == "trade" and e["symbol"] == symbol]
        sent = [t["t"] for t in truth[symbol.replace("/", "")]]
        assert ids, symbol
        # From the first trade received on, nothing the exchange sent is missing.
        assert ids == [t for t in sent if ids[0] <= t <= ids[-1]], symbol
