"""`fluxforge.open("s3://...")` gives exactly the rows of the local root the dataset was uploaded from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.pipeline import EmbeddedPipeline, simulator_lines
from fluxforge_common.simulator import SimulatorConfig
from fluxforge_common.storage import LocalStorage

import fluxforge
from tests.support.s3 import S3Bucket

pytestmark = pytest.mark.integration

MIDNIGHT = 1_765_584_000_000  # 2025-12-13T00:00:00Z: the run crosses it, so every table has two dates
SIMULATOR = SimulatorConfig(seed=11, start_ms=MIDNIGHT - 20_000, mean_events_per_second_per_symbol=10.0)

# (table, filters) on every key the API filters by; each must select rows.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("hf", {}),
    (
        "hf",
        {"exchange": "kraken", "symbol": "ETH/USD", "start": "2025-12-12T23:59:55", "end": MIDNIGHT + 5000},
    ),
    ("bars", {"duration": "5s", "columns": ["ts", "symbol", "close"]}),
    ("trades", {"symbol": ["BTC/USDT", "SOL/USDT"], "start": "2025-12-13"}),
    ("ticker", {"exchange": "binanceus", "end": "2025-12-13T00:00:00Z"}),
    ("raw", {"symbol": "BTC/USD", "channel": ["book", "trade"], "columns": ["channel", "ts", "line"]}),
]


def test_open_an_s3_root_returns_the_rows_of_the_local_root(
    s3: S3Bucket, tmp_path: Path, cli: Callable[..., str]
) -> None:
    root = tmp_path / "data"
    settings = FluxForgeSettings(simulator=SIMULATOR, parquet={"flush_rows": 200})
    EmbeddedPipeline(settings, LocalStorage(root)).run(simulator_lines(SIMULATOR), "sim", duration_s=40)
    cli("sync", "upload", root, s3.url("research/ff"))

    local, remote = fluxforge.open(root), fluxforge.open(s3.url("research/ff"))
    assert remote.tables() == local.tables() == ["hf", "bars", "trades", "ticker", "raw"]
    for table in ("hf", "bars", "trades", "ticker"):
        assert remote.partitions(table) == local.partitions(table), table
    for table, filters in CASES:
        want = local.table(table, **filters) if table != "raw" else local.raw(**filters)
        got = remote.table(table, **filters) if table != "raw" else remote.raw(**filters)
        expected = want.to_arrow()
        assert expected.num_rows > 0, f"{table} {filters} selects nothing: it would prove nothing"
        assert got.files == want.files, table  # the same partitions pruned, the same files opened
        assert got.to_arrow().equals(expected), (table, filters)
        assert got.to_polars().collect().equals(want.to_polars().collect()), (table, filters)
        assert got.to_pandas().equals(want.to_pandas()), (table, filters)
