"""The collector's watermarks: made for quiet symbols only, from the exchange's time minus the
lateness; final ones close each symbol's last interval; never backwards, across restarts too."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import msgspec
import orjson
import pytest
from fluxforge_collector.collector import Collector
from fluxforge_collector.launch import CollectOptions, make_collector
from fluxforge_collector.metrics import CollectorMetrics
from fluxforge_collector.watermarks import WatermarkClock, WatermarkMemory
from fluxforge_common.config import CollectorConfig, FluxForgeSettings, KafkaConfig
from fluxforge_common.features import closing_watermark
from fluxforge_common.messages import Rejection, Watermark, decode_batch
from fluxforge_common.pipeline.lines import simulator_lines
from fluxforge_common.simulator import SimulatorConfig
from prometheus_client import CollectorRegistry

from tests.support.collector import FakeProducer, ListSource, elements_of
from tests.support.ticks import event_ms

BTC, ETH, KRAKEN = b"binanceus:BTC/USDT", b"binanceus:ETH/USDT", b"kraken:BTC/USD"
T = 1_765_500_000_000


def clock(memory: WatermarkMemory | None = None) -> WatermarkClock:
    return WatermarkClock(interval_ms=1000, lateness_ms=250, memory=memory, wall_ms=lambda: T + 99_000)


def marks(records: list[tuple[bytes, bytes]]) -> dict[bytes, int]:
    decoded = {key: msgspec.json.decode(value, type=Watermark) for key, value in records}
    assert all(f"{w.exchange}:{w.symbol}".encode() == key for key, w in decoded.items())
    return {key: w.ts for key, w in decoded.items()}


def test_only_quiet_symbols_behind_their_exchange_get_one() -> None:
    c = clock()
    for key, ms in [(BTC, T + 100), (ETH, T + 200), (KRAKEN, T + 900)]:
        c.seen(key, ms)
    assert c.quiet() == []  # every symbol had a tick in this round
    c.seen(ETH, T + 2_000)
    # BTC is quiet and behind ETH; KRAKEN is quiet but the latest of its exchange; ETH is busy.
    assert marks(c.quiet()) == {BTC: T + 2_000 - 250}
    assert c.quiet() == []  # nothing new: never the same watermark twice
    c.seen(ETH, T + 3_500)
    assert marks(c.quiet()) == {BTC: T + 3_250}


def test_the_exchange_time_is_that_of_its_stamps_not_of_a_receive_clock() -> None:
    """Kraken's tickers carry no `ts`: their receive time runs ahead of Kraken's stamps by the latency."""
    eth, sol, doge = b"kraken:ETH/USD", b"kraken:SOL/USD", b"kraken:DOGE/USD"
    c = clock()
    c.seen(KRAKEN, T + 100)
    c.seen(eth, T + 1_000)
    c.seen(doge, T + 900, stamped=False)  # tickers only: the symbol runs on the receive clock
    assert c.quiet() == []
    c.seen(eth, T + 1_500)
    c.seen(sol, T + 1_800, stamped=False)  # a ticker received 300 ms after Kraken's T + 1_500
    c.seen(eth, T + 1_200, stamped=False)
    # Both quiet symbols get Kraken's T + 1_500 less the lateness, not SOL's receive time less it.
    assert marks(c.quiet()) == {KRAKEN: T + 1_250, doge: T + 1_250}
    # ETH's book feed stops, its tickers go on: Kraken's clock moving on gives it watermarks all the same.
    c.seen(KRAKEN, T + 4_000)
    c.seen(eth, T + 4_400, stamped=False)
    assert marks(c.quiet()) == {eth: T + 3_750, sol: T + 3_750, doge: T + 3_750}
    # An exchange that stamps nothing has only the receive clock.
    other = clock()
    other.seen(b"x:A/B", T + 100, stamped=False)
    other.seen(b"x:C/D", T + 100, stamped=False)
    other.quiet()
    other.seen(b"x:C/D", T + 3_000, stamped=False)
    assert marks(other.quiet()) == {b"x:A/B": T + 2_750}


def test_final_watermarks_close_each_symbols_last_interval_and_never_go_back() -> None:
    c = clock()
    c.seen(BTC, T + 100)
    c.seen(ETH, T + 5_100)
    assert marks(c.quiet()) == {}  # both had ticks this round
    assert marks(c.quiet()) == {BTC: T + 4_850}
    # BTC's quiet watermark already passed its closing one: no lower one follows.
    assert marks(c.final()) == {ETH: closing_watermark(T + 5_100, 1000)} == {ETH: T + 6_000}
    assert c.count == 2


def test_the_memory_keeps_watermarks_from_going_back_across_a_restart(tmp_path: Path) -> None:
    first = clock(WatermarkMemory(tmp_path, "a.raw"))
    first.seen(BTC, T + 100)
    first.seen(ETH, T + 7_000)
    assert marks(first.final()) == {BTC: T + 1_000, ETH: T + 8_000}

    again = clock(WatermarkMemory(tmp_path, "a.raw"))
    again.seen(BTC, T + 500)
    again.seen(ETH, T + 9_100)
    assert marks(again.final()) == {ETH: T + 10_000}  # BTC's T + 1_000 is already out
    other_topic = clock(WatermarkMemory(tmp_path, "b.raw"))
    other_topic.seen(BTC, T + 500)
    assert marks(other_topic.final()) == {BTC: T + 1_000}
    assert orjson.loads((tmp_path / "watermarks.json").read_bytes()) == {
        "a.raw": {"binanceus:BTC/USDT": T + 1_000, "binanceus:ETH/USDT": T + 10_000},
        "b.raw": {"binanceus:BTC/USDT": T + 1_000},
    }


def test_lag_is_wall_clock_minus_the_symbols_watermark() -> None:
    c = clock()
    c.seen(BTC, T + 100)
    c.seen(ETH, T + 5_100)
    c.quiet()
    c.quiet()
    assert c.lag_ms(T + 10_000) == {
        ("binanceus", "BTC/USDT"): 10_000 - 4_850,
        ("binanceus", "ETH/USDT"): 10_000 - 4_850,
    }


def test_a_paced_collector_watermarks_a_symbol_that_went_quiet_and_nothing_else(fake: FakeProducer) -> None:
    """6 s of market at 5x, a quiet period of 1 s of market; BTC/USDT stops after 1 s. Its
    watermarks follow the exchange's time and move forward; busy symbols get only the final one.
    The other symbols' longest pause is 632 ms of market, so a busy one looks quiet only if the
    test's event loop stalls for more than ~70 ms of wall clock."""
    lines = list(itertools.islice(simulator_lines(SimulatorConfig(seed=3)), 5_000))
    start = event_ms(lines[0])
    lines = [line for line in lines if event_ms(line) < start + 6_000]
    silent = [line for line in lines if not (b'"BTC/USDT"' in line and event_ms(line) > start + 1_000)]
    settings = FluxForgeSettings(
        kafka=KafkaConfig(topic_prefix="unit"), collector=CollectorConfig(watermark_quiet_s=0.2)
    )
    collector = Collector(settings, ListSource(silent), speed=5.0)
    stats = asyncio.run(collector.run())

    elements = elements_of(fake)
    btc = elements[BTC]
    last_tick = max(i for i, e in enumerate(btc) if e["type"] != "watermark")
    quiet = [e["ts"] for e in btc[last_tick + 1 :]]
    assert all(e["type"] == "watermark" for e in btc[last_tick + 1 :])
    assert len(quiet) >= 3, quiet  # ~5 quiet periods after BTC's last tick
    assert quiet == sorted(set(quiet))
    exchange_end = max(event_ms(line) for line in silent if b'"binanceus"' in line)
    assert exchange_end - 250 - 2 * 1_000 <= quiet[-1] <= exchange_end - 250
    for key, batch in elements.items():
        if key != BTC:
            assert [e["type"] for e in batch].count("watermark") == 1, key  # the final one
            assert batch[-1]["ts"] == closing_watermark(
                max(e["ts"] or e["recv_ts"] for e in batch[:-1]), 1000
            )
    assert stats.watermarks == len(quiet) + len(elements) - 1
    values = [value for _, key, value in fake.sent if key is not None]
    assert all(type(item) is not Rejection for value in values for item in decode_batch(value))

    # Counted and exposed: records made, and per symbol the lag of its watermark behind the wall clock.
    registry = CollectorRegistry()
    registry.register(CollectorMetrics(collector))
    source = {"source": "list"}
    assert registry.get_sample_value("fluxforge_collector_watermarks_total", source) == stats.watermarks
    lags = {
        symbol: registry.get_sample_value(
            "fluxforge_collector_watermark_lag_seconds", {**source, "exchange": exchange, "symbol": symbol}
        )
        for exchange, symbol in (("binanceus", "BTC/USDT"), ("binanceus", "ETH/USDT"))
    }
    assert all(lag is not None and lag > 0 for lag in lags.values()), lags  # a replay of a recorded day


def test_a_restarted_collector_publishes_no_watermark_at_or_below_its_last_ones(fake: FakeProducer) -> None:
    """The same file twice into one spool directory and topic: the second run's final watermarks
    are the first's, already published, so none goes out again; a longer file moves them on."""
    lines = list(itertools.islice(simulator_lines(SimulatorConfig(seed=3)), 3_000))
    settings = FluxForgeSettings(kafka=KafkaConfig(topic_prefix="unit"))

    def run(source: list[bytes]) -> dict[bytes, list[int]]:
        fake.sent.clear()
        asyncio.run(Collector(settings, ListSource(source)).run())
        return {
            key: [e["ts"] for e in batch if e["type"] == "watermark"]
            for key, batch in elements_of(fake).items()
        }

    first = run(lines[:2_000])
    assert all(len(marks) == 1 for marks in first.values()) and len(first) == 5
    assert Path("data/spool/list/watermarks.json").exists()  # the spool directory keeps them
    assert all(marks == [] for marks in run(lines[:2_000]).values())
    longer = run(lines)
    assert all(longer[key][0] > first[key][0] for key in first)


def test_a_recorded_input_read_unpaced_gets_no_quiet_watermarks(
    fake: FakeProducer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Read as fast as it goes, a file's symbol that stops early ends at its own last interval, as in
    `fluxforge run`, however long the reading takes: quiet rounds by the wall clock would carry it
    forward to the exchange's end (how far depends on the machine's speed)."""
    lines = list(itertools.islice(simulator_lines(SimulatorConfig(seed=3)), 20_000))
    start = event_ms(lines[0])
    kept = [line for line in lines if not (b'"BTC/USDT"' in line and event_ms(line) > start + 1_000)]
    path = tmp_path / "market.ndjson"
    path.write_bytes(b"\n".join(kept) + b"\n")
    settings = FluxForgeSettings(
        kafka=KafkaConfig(topic_prefix="unit"), collector=CollectorConfig(watermark_quiet_s=0.001)
    )
    asyncio.run(make_collector(settings, CollectOptions(input=str(path))).run())
    # Said as the run starts (in the configured log format), not while the collector is made.
    assert [r.levelname for r in caplog.records if "watermark_quiet_s is not used" in r.message] == [
        "WARNING"
    ]

    elements = elements_of(fake)
    for key, batch in elements.items():
        assert [e["type"] for e in batch].count("watermark") == 1, key  # the final one alone
        assert batch[-1]["ts"] == closing_watermark(max(e["ts"] or e["recv_ts"] for e in batch[:-1]), 1000)
    assert closing_watermark(start + 1_000, 1000) >= elements[BTC][-1]["ts"]
