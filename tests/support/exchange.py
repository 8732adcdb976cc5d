"""The ccxt.pro collector against the Binance emulator (the `emulator` fixture): record a run, inject a fault, check it.

`record` runs the real `ExchangeSource` (ccxt.pro's binanceus class, URLs
pointed at the emulator) until every symbol has a book, injects the fault,
lets it run on, stops it the way SIGTERM does, and returns what was
published and the trades ccxt holds (what it received). `check_published` then holds every envelope against the
emulator's truth: each book equals the true top levels at its update id,
each symbol's books in increasing update order, each trade exactly what the
emulator sent, once, in order; `check_every_update_id` that no update id is
skipped but where a book says it follows a resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from fluxforge_collector.exchange import ExchangeSource, ExchangeStats
from fluxforge_collector.exchange.source import ENVELOPE_QUEUE_SIZE
from fluxforge_common.config import ExchangeConfig
from fluxforge_common.messages import Rejection, decode_tick
from fluxforge_common.simulator import SimulatorConfig
from fluxforge_emulator import EmulatorConfig, EmulatorThread, ExchangeEmulator
from fluxforge_emulator.starve import starve

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
# The collector watches Binance's aggregate trades (`options.DEFAULT_OPTIONS`): their stream and id field.
TRADE_STREAM, TRADE_ID = "aggTrade", "a"
LEVELS = 10
# Longest wait for the next symbol's first book: ccxt paces Binance's REST snapshots (~0.25 s each
# when idle), so a watch of many symbols syncs them one after another, slower on a loaded machine.
READY_TIMEOUT_S = 30.0
# Longest wait after a fault with neither a symbol recovering nor the slowest channel publishing
# later market data: a burst takes a starved collector on a loaded machine a minute and more.
RECOVERY_TIMEOUT_S = 60.0
# The stall watchdog's timeout in the tests of a stall, so that they take seconds. The other tests
# keep the default (`ExchangeConfig.stall_timeout_s`): the emulator shares a process, and so the
# GIL, with the collector under test, and on a loaded machine it can fall silent for a second or
# two while the collector works through a burst, which a 1.5 s watchdog took for a stalled feed.
STALL_TIMEOUT_S = 1.5


@contextlib.contextmanager
def recording(thread: EmulatorThread) -> Iterator[EmulatorThread]:
    """The emulator of `thread`, started with every message it sends logged (`sent_log`) from its
    first: a log begun once it runs misses what it sent meanwhile, which a Kraken subscription's
    snapshot of recent trades can still hand to the collector."""
    thread.emulator.sent_log = []
    with thread as emu:
        yield emu


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with recording(
        EmulatorThread(EmulatorConfig(simulator=market(SYMBOLS), history_levels=LEVELS, ping_interval_s=0.5))
    ) as emu:
        yield emu


def market(symbols: list[str], exchange: str = "binanceus", rate: float = 40) -> SimulatorConfig:
    """The simulated market of `symbols`: `rate` events per second each."""
    return SimulatorConfig(seed=11, exchanges={exchange: symbols}, mean_events_per_second_per_symbol=rate)


def exchange_config(emu: EmulatorThread, **overrides: Any) -> ExchangeConfig:
    values: dict[str, Any] = {
        "symbols": SYMBOLS,
        "urls": emu.ccxt_urls(),
        "options": {**emu.ccxt_options(), "watchOrderBookLimit": 100},
        "reconnect_initial_s": 0.1,
        "reconnect_max_s": 2.0,
        **overrides,
    }
    return ExchangeConfig(**values)


# (envelope type, symbol) -> the latest exchange time published.
Latest = dict[tuple[str, str], int]


@dataclass
class Run:
    envelopes: list[tuple[float, dict[str, Any]]]  # (time.monotonic() when yielded, envelope)
    raw: list[bytes]
    stats: ExchangeStats
    fault_at: float | None
    received_trades: dict[str, list[str]] = field(
        default_factory=dict
    )  # symbol -> ids in ccxt's caches at the end
    symbols: list[str] = field(default_factory=lambda: list(SYMBOLS))
    emulator_stats: dict[str, Any] = field(default_factory=dict)

    def trade_ids(self, symbol: str) -> list[str]:
        return [e["id"] for _, e in self.envelopes if e["type"] == "trade" and e["symbol"] == symbol]

    def books(self, symbol: str, after: float = 0.0) -> list[tuple[float, dict[str, Any]]]:
        return [
            (t, e) for t, e in self.envelopes if e["type"] == "book" and e["symbol"] == symbol and t >= after
        ]

    def longest_book_silence(self, after: float) -> float:
        """Longest time any symbol went without a published book, from `after` (the fault) to the end."""
        worst = 0.0
        for symbol in self.symbols:
            times = [after] + [t for t, _ in self.books(symbol, after)]
            worst = max(worst, *(b - a for a, b in itertools.pairwise(times)))
        return worst


class MarketFault:
    """A fault for `record` that remembers the market time (ms) it came at, so that a run can go on
    until what it asserts was published after the fault (`until=fault.published_past(...)`)."""

    def __init__(self, act: Callable[[ExchangeEmulator], object]) -> None:
        self.act = act
        self.start_ms = 0

    def __call__(self, emu: ExchangeEmulator) -> None:
        self.start_ms = emu.feed.next_ts + emu.feed.offset_ms
        self.act(emu)

    def published_past(
        self, seconds: float, symbols: list[str], kinds: tuple[str, ...] = ("book",)
    ) -> Callable[[Latest], bool]:
        """Whether every symbol published each of `kinds` with market time `seconds` after the fault."""
        return lambda latest: all(
            latest.get((kind, s), 0) >= self.start_ms + seconds * 1000 for kind in kinds for s in symbols
        )


def record(
    emu: EmulatorThread,
    config: ExchangeConfig,
    fault: Callable[[ExchangeEmulator], object] | None = None,
    *,
    run_after_s: float = 2.0,
    recovered: set[str] | None = None,
    recover_after_s: float = 0.2,
    ready: Callable[[set[str]], bool] | None = None,
    ready_trades: bool = False,
    exchange_id: str = "binanceus",
    until: Callable[[Latest], bool] = lambda latest: True,
    queue_size: int = ENVELOPE_QUEUE_SIZE,
    cpu_share_taken: float = 0.0,
) -> Run:
    """Run a source until every symbol has a book (and a trade, with `ready_trades`), inject `fault`, go on until the `recovered` symbols
    (default all) published books `recover_after_s` after it, at least `run_after_s` passed and
    `until` holds for what was published, then stop as SIGTERM does. With `cpu_share_taken`, that share
    of the collector's event loop is taken by a co-task from the start (`fluxforge_emulator.starve`)."""
    symbols = list(config.symbols)
    expect = set(symbols) if recovered is None else recovered
    ready = ready or (lambda seen: seen == set(symbols))

    async def main() -> Run:
        source = ExchangeSource(exchange_id, config, max_levels=LEVELS, queue_size=queue_size)
        envelopes: list[tuple[float, dict[str, Any]]] = []
        raw: list[bytes] = []
        last_book: dict[str, float] = {}
        latest: Latest = {}
        fault_at: list[float] = []

        async def drive() -> None:
            try:
                seen, deadline = -1, 0.0
                while not ready(set(last_book)) or (
                    ready_trades and not all(("trade", s) in latest for s in symbols)
                ):
                    if len(last_book) + len(latest) > seen:
                        seen, deadline = len(last_book) + len(latest), time.monotonic() + READY_TIMEOUT_S
                    assert time.monotonic() < deadline, (
                        f"books of only {sorted(last_book)}, none new for {READY_TIMEOUT_S} s"
                    )
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
                if fault is not None:
                    fault_at.append(time.monotonic())
                    emu.call(fault)
                start = time.monotonic()
                # Books and trades of each symbol, all of which must go on publishing (tickers are
                # the latest a watcher finds, and a starved watcher finds few).
                channels = [key for key in latest if key[0] in ("book", "trade") and key[1] in expect]
                progress: tuple[int, int] = (-1, -1)
                while (
                    time.monotonic() < start + run_after_s
                    or not all(last_book.get(s, 0.0) > start + recover_after_s for s in expect)
                    or not until(latest)
                ):
                    recovered = sum(last_book.get(s, 0.0) > start + recover_after_s for s in expect)
                    if (now := (recovered, min((latest[k] for k in channels), default=0))) != progress:
                        progress, deadline = now, time.monotonic() + RECOVERY_TIMEOUT_S
                    assert time.monotonic() < deadline, (
                        f"the source did not recover: no progress for {RECOVERY_TIMEOUT_S} s"
                    )
                    await asyncio.sleep(0.05)
            finally:
                source.request_stop()

        driver = asyncio.create_task(drive())
        starving = starve(cpu_share_taken) if cpu_share_taken else None
        thief = None if starving is None else asyncio.create_task(starving)
        try:
            async with contextlib.aclosing(source.lines()) as lines:
                async for line in lines:
                    now = time.monotonic()
                    envelope = orjson.loads(line)
                    envelopes.append((now, envelope))
                    raw.append(line)
                    if envelope["type"] == "book":
                        last_book[envelope["symbol"]] = now
                    if envelope["ts"] is not None:
                        latest[envelope["type"], envelope["symbol"]] = envelope["ts"]
        finally:
            if not driver.done():
                driver.cancel()
            if thief is not None:
                thief.cancel()
        await driver
        received = {s: [str(t["id"]) for t in cache] for s, cache in (source.exchange.trades or {}).items()}
        known = [s for s in symbols if s not in source.stats.failed_symbols]
        return Run(envelopes, raw, source.stats, fault_at[0] if fault_at else None, received, known)

    run = asyncio.run(main())
    run.emulator_stats = emu.call(lambda e: e.stats.as_dict())
    return run


def sent_events(emu: EmulatorThread, kind: str) -> dict[str, list[dict[str, Any]]]:
    """Every `kind` event (trade, depth...) the emulator sent (or would have, without subscribers), per symbol id."""
    log = emu.call(lambda e: list(e.sent_log or []))
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sid, sent_kind, payload in log:
        if sent_kind == kind:
            events[sid].append(orjson.loads(payload))
    return events


def check_published(emu: EmulatorThread, run: Run) -> dict[str, int]:
    """Everything published is right; returns counts per envelope type."""
    histories = emu.call(lambda e: {s: dict(e.feed.symbol(s).history) for s in run.symbols})
    counts: dict[str, int] = defaultdict(int)
    for raw in run.raw:
        assert not isinstance(decode_tick(raw, 1 << 20), Rejection), raw
    last_seq: dict[str, int] = {}
    for _, env in run.envelopes:
        counts[env["type"]] += 1
        if env["type"] != "book":
            continue
        symbol, seq = env["symbol"], env["seq"]
        assert seq > last_seq.get(symbol, 0), f"{symbol}: book {seq} after {last_seq.get(symbol)}"
        last_seq[symbol] = seq
        true_bids, true_asks = histories[symbol][seq]
        assert [tuple(level) for level in env["bids"]] == true_bids, f"{symbol} bids differ at {seq}"
        assert [tuple(level) for level in env["asks"]] == true_asks, f"{symbol} asks differ at {seq}"
    truth = sent_events(emu, TRADE_STREAM)
    for symbol in run.symbols:
        sid = symbol.replace("/", "")
        sent = {str(t[TRADE_ID]): t for t in truth[sid]}
        ids = [e["id"] for _, e in run.envelopes if e["type"] == "trade" and e["symbol"] == symbol]
        assert len(ids) == len(set(ids)), f"{symbol}: a trade published twice"
        assert [int(i) for i in ids] == sorted(int(i) for i in ids), f"{symbol}: trades out of order"
        for _, env in run.envelopes:
            if env["type"] == "trade" and env["symbol"] == symbol:
                t = sent[env["id"]]
                assert (env["price"], env["amount"], env["ts"]) == (float(t["p"]), float(t["q"]), t["T"])
                assert env["side"] == ("sell" if t["m"] else "buy")
    return dict(counts)


def check_every_update_id(emu: EmulatorThread, run: Run, symbols: list[str]) -> dict[str, int]:
    """Each symbol published every update id the emulator sent, from its first book to its last,
    but for those a resync skipped: a skip may end only at a book the collector marked as the first
    after a resync (its snapshot), and from there every id is published again. Returns the resyncs
    per symbol that skipped ids."""
    diffs = sent_events(emu, "depth")
    resyncs: dict[str, int] = {}
    for symbol in symbols:
        segments: list[list[int]] = [[]]  # update ids published, split at each book marked resync
        for _, book in run.books(symbol):
            if "resync" in book and segments[-1]:
                segments.append([])
            segments[-1].append(book["seq"])
        sent = [d["u"] for d in diffs[symbol.replace("/", "")]]
        for i, seqs in enumerate(segments):
            # A resync's first book is its snapshot, whose update id need not be one a diff ended at.
            first, published = (seqs[0], seqs[1:]) if i else (seqs[0] - 1, seqs)
            expected = [u for u in sent if first < u <= seqs[-1]]
            assert published == expected, (
                f"{symbol}: {len(expected) - len(published)} update ids not published between "
                f"{first} and {seqs[-1]} ({len(segments) - 1} resyncs marked; {run.stats.line()})"
            )
        resyncs[symbol] = len(segments) - 1
    return resyncs


def report(name: str, run: Run, counts: dict[str, int]) -> None:
    s = run.stats
    recovery = ""
    if run.fault_at is not None:
        after = [r for r in s.recoveries if r.at >= run.fault_at]
        watcher = max((r.at - run.fault_at for r in after), default=0.0)
        recovery = (
            f"; recovery: longest book silence after the fault {run.longest_book_silence(run.fault_at):.2f} s, "
            f"last watcher back {watcher:.2f} s after it"
        )
    print(
        f"\n[{name}] published {dict(counts)}; resyncs {dict(s.resyncs)}, gaps {dict(s.gaps)}, "
        f"reconnects {s.reconnects}, stalls {s.stalls}, bad frames {s.bad_frames}, rate-limited {s.rate_limited}, "
        f"splits {s.splits}, errors {dict(s.errors)}{recovery}"
    )
