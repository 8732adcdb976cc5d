"""Invariant 1, same rows three ways: embedded, stack (collector -> Kafka -> engine -> sink), reprocess.

One raw file (90 s of simulated market) goes through `fluxforge run --input` and through the
stack. The stack gives exactly the embedded rows of hf, bars, trades and ticker except the ones
only the end of the input makes due (the embedded run's final `FeatureEngine.flush`, see the
conftest), for raw batches of 1 and of 100 ticks; the raw archive the sink wrote, reprocessed,
gives the embedded rows, flush included.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pytest
from fluxforge_common.config import FluxForgeSettings

from tests.support.dataset import assert_same_dataset, read_dataset
from tests.support.stack import (
    Expected,
    Stack,
    archived_ticks,
    counted,
    dead_letters,
    raw_of,
    run_cli,
)

pytestmark = pytest.mark.e2e

KEYS = {
    "hf": ("exchange", "symbol", "ts"),
    "bars": ("exchange", "symbol", "ts", "duration_s"),
    "trades": ("exchange", "symbol", "ts", "recv_ts", "id", "price", "amount", "side"),
    "ticker": ("exchange", "symbol", "ts", "recv_ts"),
}


def _keys(table: pa.Table, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Row keys as the engine emits them (times in integer ms)."""
    values = [
        table.column(c).cast(pa.int64()) if c in ("ts", "recv_ts") else table.column(c) for c in columns
    ]
    return list(zip(*(v.to_pylist() for v in values), strict=True))


def test_the_stream_rows_are_the_embedded_rows_without_the_final_flush(expected: Expected) -> None:
    """The reference itself: `fluxforge run --input` minus what `FeatureEngine.flush` emitted, and
    that is, per symbol with latest event time M, the rows of its ticks later than M - L, the HF
    rows at the grid points in (M - L, grid point after M] and the bars ending there."""
    embedded, stream = read_dataset(expected.embedded_root), read_dataset(expected.stream_root)
    features = FluxForgeSettings().features
    interval, lateness = features.interval_ms, features.allowed_lateness_ms
    ticks = [orjson.loads(line) for line in expected.lines]
    latest: dict[tuple[str, str], int] = {}
    for tick in ticks:
        key = (tick["exchange"], tick["symbol"])
        latest[key] = max(latest.get(key, 0), tick["ts"] if tick["ts"] is not None else tick["recv_ts"])
    grid = {
        (*key, g)
        for key, t in latest.items()
        for g in range(
            (t - lateness) // interval * interval + interval,
            t // interval * interval + 1 + interval,
            interval,
        )
    }
    assert {(r["exchange"], r["symbol"], r["ts"]) for r in expected.flush_rows["hf"]} == grid
    assert len(expected.flush_rows["hf"]) == len(grid)
    for row in expected.flush_rows["bars"]:
        assert (row["exchange"], row["symbol"], row["ts"] + row["duration_s"] * 1000) in grid
    held = sorted(
        (tick["type"], tick["exchange"], tick["symbol"], tick["recv_ts"])
        for tick in ticks
        if tick["type"] != "book"
        and (tick["ts"] if tick["ts"] is not None else tick["recv_ts"])
        > latest[tick["exchange"], tick["symbol"]] - lateness
    )
    flushed_ticks = [
        (kind, r["exchange"], r["symbol"], r["recv_ts"])
        for kind, table in (("trade", "trades"), ("ticker", "ticker"))
        for r in expected.flush_rows[table]
    ]
    assert sorted(flushed_ticks) == held
    for table, columns in KEYS.items():
        flushed = {tuple(row[c] for c in columns) for row in expected.flush_rows[table]}
        keep = [key not in flushed for key in _keys(embedded[table], columns)]
        assert embedded[table].num_rows - sum(keep) == len(flushed), table
        assert embedded[table].filter(pa.array(keep)).equals(stream[table]), table
    assert expected.flush_rows["hf"] and expected.flush_rows["trades"]


@pytest.mark.parametrize("batch_max_ticks", [1, 100])
def test_stack_gives_the_embedded_rows(stack: Stack, expected: Expected, batch_max_ticks: int) -> None:
    stack.create_topics()
    stack.engine()
    stack.sink()
    collector = stack.collector(expected.input_path, batch_max_ticks=batch_max_ticks)
    stack.wait_until_processed(timeout_s=120)
    stack.stop("sink", "engine")

    assert_same_dataset(stack.root, expected.stream_root)
    records = dead_letters(stack.root)
    assert sorted((r["reason"], raw_of(r)) for r in records) == sorted(expected.rejections)
    summary = collector.log_text()
    batches, ticks = counted(summary, "batches out"), len(expected.lines)
    assert counted(summary, "ticks in") == ticks, summary[-2000:]
    if batch_max_ticks == 1:
        assert batches == ticks
    else:
        assert batches is not None and batches < ticks / 20, summary[-2000:]

    # The sink's raw archive holds every tick once and replays into the embedded rows.
    assert archived_ticks(stack.root) == ticks
    out = stack.tmp / "reprocessed"
    dates = ["--date", expected.dates[0]] if len(expected.dates) == 1 else \
        ["--start-date", expected.dates[0], "--end-date", expected.dates[-1]]  # fmt: skip
    run_cli("reprocess", "--source-root", stack.root, "-o", out, *dates, "-q", config=expected.config_path)
    assert_same_dataset(out, expected.embedded_root)
