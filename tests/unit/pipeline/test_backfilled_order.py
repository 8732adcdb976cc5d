"""Backfilled trades read back from the archive at their event time's place: reprocessing applies them all.

Live, a trade backfilled after an outage reaches the engine seconds after
ticks stamped later, and is dead-lettered as late; the archive keeps it.
Reprocessing that archive must give every trade and the HF rows and bars of
the market as it happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import orjson
import pytest
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.pipeline import EmbeddedPipeline, archive_dates, archive_lines, reprocess
from fluxforge_common.pipeline.ingest_order import backfilled_trades, in_event_time_place
from fluxforge_common.pipeline.ingest_stamp import stamp
from fluxforge_common.pipeline.shards import Shard
from fluxforge_common.simulator import MarketSimulator, SimulatorConfig
from fluxforge_common.storage import LocalStorage

from tests.support.dataset import read_dataset

SIM = SimulatorConfig(seed=3, exchanges={"binanceus": ["BTC/USDT", "ETH/USDT"]})


def tick(kind: str, symbol: str, ts: int, **extra: object) -> bytes:
    return orjson.dumps({"type": kind, "exchange": "x", "symbol": symbol, "ts": ts, "recv_ts": ts, **extra})


def test_a_backfilled_trade_goes_before_the_first_tick_of_its_symbol_stamped_later() -> None:
    late = stamp(tick("trade", "A/B", 150, id="7", backfilled=True), 1, 6)
    lines = [
        stamp(tick("book", "A/B", 100), 1, 1),
        stamp(tick("book", "C/D", 120), 1, 2),
        stamp(tick("book", "A/B", 150), 1, 3),  # same time as the trade: stays before it
        stamp(tick("book", "C/D", 160), 1, 4),
        stamp(tick("book", "A/B", 200), 1, 5),
        late,
        stamp(tick("book", "A/B", 210), 1, 7),
    ]
    backfilled = backfilled_trades([lines[5]])
    assert list(in_event_time_place(iter(lines), backfilled)) == [*lines[:4], late, lines[4], lines[6]]
    assert backfilled_trades([tick("trade", "A/B", 1, backfilled=False)]) == {}


def test_a_backfilled_flag_on_another_tick_moves_nothing() -> None:
    """Only trades are backfilled: a book or ticker that carries the flag stays where it came (it
    was dropped while the archive had backfilled trades, and kept by a shard that had none)."""
    late = stamp(tick("trade", "A/B", 150, id="7", backfilled=True), 1, 4)
    lines = [
        stamp(tick("book", "A/B", 100), 1, 1),
        stamp(tick("book", "C/D", 120, backfilled=True), 1, 2),
        stamp(tick("book", "A/B", 200), 1, 3),
        late,
    ]
    assert backfilled_trades(lines) == backfilled_trades([late])
    assert list(in_event_time_place(iter(lines), backfilled_trades([late]))) == [*lines[:2], late, lines[2]]


def delayed(lines: list[bytes], start_ms: int, end_ms: int, delay_ms: int) -> Iterator[bytes]:
    """The stream as the live path sees it after an outage: the trades stamped in [start, end) come
    marked backfilled, after the first tick stamped `delay_ms` past the end."""
    held: list[bytes] = []
    for line in lines:
        obj = orjson.loads(line)
        if obj["type"] == "trade" and start_ms <= obj["ts"] < end_ms:
            held.append(orjson.dumps({**obj, "backfilled": True}))
            continue
        if held and obj["ts"] >= end_ms + delay_ms:
            yield from (orjson.dumps({**orjson.loads(h), "recv_ts": obj["recv_ts"]}) for h in held)
            held = []
        yield line


def run(lines: Iterator[bytes], root: Path) -> int:
    pipeline = EmbeddedPipeline(FluxForgeSettings(), LocalStorage(root))
    return pipeline.run(lines, "test").late


def trade_ids(root: Path) -> list[str]:
    trades = read_dataset(root)["trades"]
    return sorted(trades["id"].to_pylist()) if trades.num_rows else []


@pytest.mark.parametrize("workers", [1, 3])
def test_reprocessing_an_archive_with_backfilled_trades_gives_every_trade_and_the_true_rows(
    tmp_path: Path, workers: int
) -> None:
    lines = list(islice(MarketSimulator(SIM).ticks(), 12_000))
    first = orjson.loads(lines[0])["ts"]
    start, end = first + 20_000, first + 25_000
    outage_trades = sum(b'"trade"' in line and start <= orjson.loads(line)["ts"] < end for line in lines)
    assert outage_trades > 20

    assert run(iter(lines), tmp_path / "true") == 0
    assert run(delayed(lines, start, end, 3_000), tmp_path / "live") >= outage_trades - 5  # late live
    assert len(trade_ids(tmp_path / "live")) <= len(trade_ids(tmp_path / "true")) - outage_trades + 5

    settings = FluxForgeSettings()
    dates = archive_dates(LocalStorage(tmp_path / "live"))
    archived = list(archive_lines(LocalStorage(tmp_path / "live")))
    shards = [Shard(i, 3) for i in range(3)]  # one per symbol, and one without any
    parts = [list(archive_lines(LocalStorage(tmp_path / "live"), shard=shard)) for shard in shards]
    for shard, kept in zip(shards, parts, strict=True):  # a shard reads its symbols' lines, in place
        assert kept == [line for line in archived if shard.keeps(line)]
    assert sorted(map(len, parts))[0] == 0 and sum(map(len, parts)) == len(archived)
    summary, _ = reprocess(settings, tmp_path / "live", tmp_path / "again", dates, workers=workers)
    assert summary.late == 0
    again, true = read_dataset(tmp_path / "again"), read_dataset(tmp_path / "true")
    assert trade_ids(tmp_path / "again") == trade_ids(tmp_path / "true")
    assert again["hf"].num_rows > 0 and again["hf"].equals(true["hf"])
    assert again["bars"].num_rows > 0 and again["bars"].equals(true["bars"])
