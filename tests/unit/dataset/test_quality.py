"""`quality_report` finds what was injected into a simulated run, and calls a clean run clean."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.dataset.quality import QualityReport, quality_report
from fluxforge_common.pipeline import EmbeddedPipeline, simulator_lines
from fluxforge_common.simulator import SimulatorConfig
from fluxforge_common.storage import LocalStorage

SIMULATOR = SimulatorConfig(seed=9, mean_events_per_second_per_symbol=10.0)
START = SIMULATOR.start_ms
SECONDS = 150


def event(tick: dict[str, Any]) -> int:
    return int(tick["recv_ts"] if tick["ts"] is None else tick["ts"])


def market() -> Iterator[bytes]:
    for line in simulator_lines(SIMULATOR):
        if event(orjson.loads(line)) >= START + SECONDS * 1000:
            return
        yield line


def record(root: Path, lines: Iterator[bytes], *, days_later: int = 0) -> QualityReport:
    """The report of the day recorded, its input run `days_later` (its dead letters are filed then)."""
    settings = FluxForgeSettings(simulator=SIMULATOR)
    now = START / 1000 + days_later * 86_400
    EmbeddedPipeline(settings, LocalStorage(root), clock=lambda: now).run(lines, "test")
    return quality_report(root, date="2025-12-12")


def bad_books(ts: int) -> list[bytes]:
    """A crossed book, a book with an empty side, one that breaks the schema, and bytes that are not JSON."""
    book = {"type": "book", "exchange": "binanceus", "symbol": "SOL/USDT", "ts": ts, "recv_ts": ts + 5}
    return [
        orjson.dumps(book | {"bids": [[221.0, 1.0]], "asks": [[220.0, 1.0]]}),
        orjson.dumps(book | {"bids": [], "asks": [[220.0, 1.0]]}),
        orjson.dumps(book | {"bids": [[219.0, 1.0]], "asks": [[220.0, 1.0]], "recv_ts": "soon"}),
        b"{not json",
    ]


def faulty() -> Iterator[bytes]:
    """The market with a silent feed, a resync after a gap, bad input, a late trade, a lost trade and
    a backfilled one (published after later ticks, as the collector does after an outage)."""
    pending = {"resync", "lost", "late", "bad", "backfilled"}
    backfilled: list[bytes] = []
    for line in market():
        tick = orjson.loads(line)
        key, ts, kind = (tick["exchange"], tick["symbol"]), event(tick), tick["type"]
        if key == ("kraken", "BTC/USD") and START + 40_000 <= ts < START + 80_000:
            continue  # the feed goes silent for 40 s
        if (
            key == ("binanceus", "ETH/USDT")
            and kind == "book"
            and ts >= START + 60_000
            and "resync" in pending
        ):
            pending.discard("resync")  # the collector's mark on the first book after a sequence-gap resync
            line = orjson.dumps(tick | {"resync": "gap"})
        if (
            key == ("binanceus", "BTC/USDT")
            and kind == "trade"
            and ts >= START + 70_000
            and "lost" in pending
        ):
            pending.discard("lost")  # a trade the exchange never delivered: its id is missing
            continue
        if (
            key == ("kraken", "ETH/USD")
            and kind == "trade"
            and ts >= START + 50_000
            and "backfilled" in pending
        ):
            pending.discard("backfilled")  # fetched over REST after an outage: published 20 s later
            backfilled.append(orjson.dumps(tick | {"backfilled": True, "recv_ts": ts + 20_000}))
            continue
        if backfilled and key == ("kraken", "ETH/USD") and ts >= START + 70_000:
            yield backfilled.pop()
        yield line
        if key == ("binanceus", "BTC/USDT") and ts >= START + 90_000 and "late" in pending:
            pending.discard("late")
            trade = {"type": "trade", "exchange": "binanceus", "symbol": "BTC/USDT", "ts": ts - 5000}
            yield orjson.dumps(
                trade | {"recv_ts": ts, "id": "late", "price": 1.0, "amount": 1.0, "side": "buy"}
            )
        if key[1] == "SOL/USDT" and ts >= START + 100_000 and "bad" in pending:
            pending.discard("bad")
            yield from bad_books(ts)
    assert not pending, pending


def found_clean(report: QualityReport, exchange: str, symbol: str) -> Any:
    return next(s for s in report.symbols if (s.exchange, s.symbol) == (exchange, symbol))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> QualityReport:
    return record(tmp_path_factory.mktemp("clean"), market())


def test_a_clean_simulated_run_is_reported_clean(clean: QualityReport) -> None:
    assert clean.clean, clean.to_json()
    assert len(clean.symbols) == 5
    for symbol in clean.symbols:
        assert symbol.hf_rows >= SECONDS - 1 and symbol.ticks > 1000
        assert (
            0
            < symbol.latency_ms["p50"]
            <= symbol.latency_ms["p90"]
            <= symbol.latency_ms["p99"]
            <= symbol.latency_ms["max"]
        )
        assert 0.9 < symbol.coverage <= 1.0


def test_the_report_finds_every_injected_fault_at_its_symbol(tmp_path: Path, clean: QualityReport) -> None:
    report = record(tmp_path, faulty())
    found = {(s.exchange, s.symbol): s for s in report.symbols}
    silent = found["kraken", "BTC/USD"]
    assert len(silent.silent_stretches) == 1
    start, end = silent.silent_stretches[0]
    assert start + 1000 >= START + 40_000 and end <= START + 81_000 and end - start >= 38_000
    assert silent.coverage < found["kraken", "ETH/USD"].coverage
    assert (found["binanceus", "ETH/USDT"].sequence_gaps, found["binanceus", "ETH/USDT"].resyncs) == (1, 1)
    btc = found["binanceus", "BTC/USDT"]
    assert btc.trade_id_gaps == 1
    assert btc.late_ticks == 1 and dict(btc.dead_letters) == {"late event": 1}
    sol = found["binanceus", "SOL/USDT"]
    assert (sol.crossed_books, sol.empty_books) == (1, 1)
    assert dict(sol.dead_letters) == {"crossed or locked book": 1, "empty book": 1, "schema": 1}
    assert dict(report.unattributed_dead_letters) == {"invalid JSON": 1}
    eth = found["kraken", "ETH/USD"]
    assert eth.backfilled_trades == 1 and eth.trade_id_gaps == 0
    assert eth.latency_ms == found_clean(clean, "kraken", "ETH/USD").latency_ms  # not the backfill's 20 s
    assert dict(eth.dead_letters) == {"late event": 1}  # live, it came too late for the engine
    assert not report.clean
    assert report.to_json()["symbols"][0]["clean"] is False


def test_dead_letters_count_for_the_day_of_their_ticks_not_the_day_they_were_filed(tmp_path: Path) -> None:
    """A day reprocessed or replayed later files its dead letters under that later date: the report
    of the recorded day still has them, and the later day does not get them."""
    report = record(tmp_path, faulty(), days_later=400)
    assert {p.name for p in (tmp_path / "deadletter").iterdir()} == {"date=2027-01-16"}
    found = {(s.exchange, s.symbol): s for s in report.symbols}
    assert dict(found["binanceus", "BTC/USDT"].dead_letters) == {"late event": 1}
    assert dict(found["binanceus", "SOL/USDT"].dead_letters) == {
        "crossed or locked book": 1,
        "empty book": 1,
        "schema": 1,
    }
    assert not report.clean
    later = quality_report(tmp_path, date="2027-01-16")
    assert later.symbols == [] and dict(later.unattributed_dead_letters) == {"invalid JSON": 1}


def test_a_dead_letter_whose_ts_validation_refused_counts_for_its_receive_day(tmp_path: Path) -> None:
    """A ts in microseconds dates the tick to no day: its recv_ts does."""
    bad = {"type": "trade", "exchange": "binanceus", "symbol": "BTC/USDT", "ts": START * 1000,
           "recv_ts": START + 5, "id": "us", "price": 1.0, "amount": 1.0, "side": "buy"}  # fmt: skip
    lines = [*itertools.islice(market(), 2_000), orjson.dumps(bad)]
    report = record(tmp_path, iter(lines), days_later=3)
    found = {(s.exchange, s.symbol): s for s in report.symbols}
    reason = f"ts={START * 1000} is not milliseconds since the epoch within 2000..2100"
    assert dict(found["binanceus", "BTC/USDT"].dead_letters) == {reason: 1}
    assert not report.clean


def test_a_stretch_with_no_rows_at_all_is_missing_not_clean(tmp_path: Path, clean: QualityReport) -> None:
    """The recorder down for 40 s: no rows of any symbol then. Coverage counts those grid points as not
    fresh, and the day needs a look."""
    lines = [line for line in market() if not START + 50_000 <= event(orjson.loads(line)) < START + 90_000]
    settings = FluxForgeSettings(simulator=SIMULATOR)
    root = tmp_path / "first"
    EmbeddedPipeline(settings, LocalStorage(root), clock=lambda: START / 1000).run(
        [line for line in lines if event(orjson.loads(line)) < START + 50_000], "before"
    )
    EmbeddedPipeline(settings, LocalStorage(root), clock=lambda: START / 1000).run(
        [line for line in lines if event(orjson.loads(line)) >= START + 90_000], "after"
    )
    report = quality_report(root, date="2025-12-12")
    for s in report.symbols:
        ((first, end),) = s.missing_stretches
        assert START + 49_000 <= first <= START + 52_000 and START + 90_000 <= end <= START + 92_000
        assert s.missing_rows == (end - first) // 1000
        assert s.coverage < found_clean(clean, s.exchange, s.symbol).coverage
        assert not s.clean
    assert not report.clean
    assert all(s.missing_stretches == [] and s.missing_rows == 0 for s in clean.symbols)
