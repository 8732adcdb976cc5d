"""Trades a disconnect lost, backfilled over REST through the real ccxt.pro code (Binance and Kraken emulators).

The emulator cuts every websocket and refuses new ones for `OUTAGE_S` while
its market trades on and its REST trade history answers. After the collector
reconnects, every trade id of the outage must have been published once, in
id order, marked backfilled, with the trades of the exchange, and nothing
counted unrecoverable.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fluxforge_common.messages import Rejection, TradeTick, decode_tick
from fluxforge_common.simulator import SimulatorConfig
from fluxforge_emulator import EmulatorConfig, EmulatorThread, ExchangeEmulator
from fluxforge_emulator.kraken import TRADE_SNAPSHOT, KrakenEmulator

from tests.support.exchange import (
    LEVELS,
    SYMBOLS,
    TRADE_ID,
    TRADE_STREAM,
    Latest,
    Run,
    exchange_config,
    record,
    recording,
    report,
    sent_events,
)

pytestmark = pytest.mark.e2e

OUTAGE_S = 10.0
RATE = 50.0  # events per second per symbol, 40% of them trades: Kraken's 50 of a new subscription cover
TRADE_SHARE = 0.4  # a fraction of an outage
DENSE_RATE = 3_000.0  # events per second: 1,200 trades a second, more than Kraken's page of 1,000


@pytest.fixture(params=["binanceus", "kraken"])
def exchange(request: pytest.FixtureRequest) -> Iterator[tuple[str, EmulatorThread]]:
    exchange_id: str = request.param
    sim = SimulatorConfig(
        seed=5,
        exchanges={exchange_id: SYMBOLS},
        mean_events_per_second_per_symbol=RATE,
        trade_share=TRADE_SHARE,
    )
    if exchange_id == "kraken":
        thread = EmulatorThread(
            EmulatorConfig(simulator=sim, exchange="kraken", ping_interval_s=0.5), KrakenEmulator
        )
    else:
        thread = EmulatorThread(EmulatorConfig(simulator=sim, history_levels=LEVELS, ping_interval_s=0.5))
    with recording(thread) as emu:
        yield exchange_id, emu


class Outage:
    """The fault: a disconnect of `seconds`; remembers the exchange time (ms) it began at."""

    def __init__(self, seconds: float = OUTAGE_S, symbols: list[str] = SYMBOLS) -> None:
        self.seconds = seconds
        self.symbols = symbols
        self.start_ms = 0

    def __call__(self, emu: ExchangeEmulator) -> None:
        self.start_ms = emu.feed.next_ts + emu.feed.offset_ms
        emu.disconnect(self.seconds)

    @property
    def end_ms(self) -> int:
        return self.start_ms + int(self.seconds * 1000)

    def over(self, latest: Latest) -> bool:
        """Every symbol published a trade stamped a second after the outage."""
        return self.start_ms > 0 and all(
            latest.get(("trade", s), 0) > self.end_ms + 1000 for s in self.symbols
        )


def sent_trades(emu: EmulatorThread, exchange_id: str) -> dict[str, list[tuple[str, int, float, float, str]]]:
    """Per symbol, (id, exchange time, price, amount, side) of every trade the emulator made, in order."""
    out: dict[str, list[tuple[str, int, float, float, str]]] = {}
    for symbol in SYMBOLS:
        sid = symbol.replace("/", "")
        if exchange_id == "kraken":
            events = [e["data"][0] for e in sent_events(emu, "trade")[sid]]
            out[symbol] = [
                (str(t["trade_id"]), _ms(t["timestamp"]), t["price"], t["qty"], t["side"]) for t in events
            ]
        else:
            out[symbol] = [
                (str(t[TRADE_ID]), t["T"], float(t["p"]), float(t["q"]), "sell" if t["m"] else "buy")
                for t in sent_events(emu, TRADE_STREAM)[sid]
            ]
    return out


def _ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)


def published_trades(run: Run, symbol: str) -> list[dict[str, Any]]:
    return [e for _, e in run.envelopes if e["type"] == "trade" and e["symbol"] == symbol]


def test_a_disconnect_while_trades_flow_is_backfilled_once_in_id_order(
    exchange: tuple[str, EmulatorThread],
) -> None:
    exchange_id, emu = exchange
    outage = Outage()
    config = (
        exchange_config(emu, options=emu.ccxt_options()) if exchange_id == "kraken" else exchange_config(emu)
    )
    run = record(
        emu,
        config,
        outage,
        run_after_s=OUTAGE_S,
        until=outage.over,
        exchange_id=exchange_id,
        ready_trades=True,
    )
    truth = sent_trades(emu, exchange_id)
    backfilled: dict[str, int] = {}
    for symbol in SYMBOLS:
        got = published_trades(run, symbol)
        ids = [int(e["id"]) for e in got]
        assert ids == sorted(set(ids)), f"{symbol}: trades twice or out of order"
        sent = [t for t in truth[symbol] if ids[0] <= int(t[0]) <= ids[-1]]
        assert [(e["id"], e["ts"], e["price"], e["amount"], e["side"]) for e in got] == sent, (
            f"{symbol}: not every trade the exchange made, as it made it"
        )
        outage_trades = [e for e in got if outage.start_ms <= e["ts"] < outage.end_ms]
        marked = [e for e in outage_trades if e.get("backfilled")]
        assert outage_trades, symbol  # trades flowed during the outage
        # None of them comes live: Kraken's trades are watched without its subscription snapshot of
        # the last 50, which would hold outage trades unmarked, behind the books received since.
        assert len(marked) == len(outage_trades), f"{symbol}: outage trades not backfilled"
        # Before the outage all live; from it on, the backfilled ones, then live ones.
        flags = [bool(e.get("backfilled")) for e in got if e["ts"] >= outage.start_ms]
        assert flags == sorted(flags, reverse=True), f"{symbol}: backfilled trades after live ones"
        assert not any(e.get("backfilled") for e in got if e["ts"] < outage.start_ms)
        backfilled[symbol] = len(marked)
        assert run.stats.trades_backfilled[symbol] >= len(marked)
    for raw in run.raw:
        tick = decode_tick(raw, 1 << 20)
        assert not isinstance(tick, Rejection), raw
        assert not isinstance(tick.tick, TradeTick) or tick.tick.backfilled == (b'"backfilled":true' in raw)
    report(f"{exchange_id}, {OUTAGE_S:.0f} s disconnect", run, backfilled)
    assert sum(backfilled.values()) > TRADE_SNAPSHOT
    assert run.stats.trade_id_gaps == 0 and not run.stats.trades_unrecoverable
    assert run.emulator_stats["ws_rejected"] > 0 and run.stats.reconnects > 0


def test_kraken_backfill_pages_through_a_second_of_more_than_a_page_of_trades() -> None:
    """Kraken's history is read by time: from the second before the last trade, a busy market has
    more trades than one page holds, all of them published already; the next pages must follow."""
    symbols = SYMBOLS[:1]
    sim = SimulatorConfig(
        seed=5,
        exchanges={"kraken": symbols},
        mean_events_per_second_per_symbol=DENSE_RATE,
        trade_share=TRADE_SHARE,
    )
    # The history keeps ~80 s of this market (Kraken's keeps years): ccxt pages it at one request a
    # second, 1,000 trades a page, slower than this market trades, so the emulator's default 10,000
    # trades (~8 s) could roll past the end of a gap before the backfill reached it (it did, in CI).
    busy = EmulatorConfig(simulator=sim, exchange="kraken", ping_interval_s=0.5, trade_history=100_000)
    thread = EmulatorThread(busy, KrakenEmulator)
    outage = Outage(seconds=1.0, symbols=symbols)
    with recording(thread) as emu:
        config = exchange_config(emu, symbols=symbols, options=emu.ccxt_options())
        run = record(
            emu, config, outage, run_after_s=1.0, until=outage.over, exchange_id="kraken", ready_trades=True
        )
    ids = [int(e["id"]) for e in published_trades(run, symbols[0])]
    busiest = max(Counter(e["ts"] // 1000 for e in published_trades(run, symbols[0])).values())
    assert busiest > 1000, (
        f"the market was not busy enough to test this: {busiest} trades in its busiest second"
    )
    assert ids == list(range(ids[0], ids[-1] + 1)), "trades missing or twice"
    assert run.stats.trades_backfilled[symbols[0]] > 0
    assert run.stats.trade_id_gaps == 0 and not run.stats.trades_unrecoverable
