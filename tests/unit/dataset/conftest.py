"""Dataset fixtures: datasets written by the writers, and one in the legacy layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers import PartitionedParquetWriter

from tests.support.times import DAY_MS, T0

SYMBOLS = ("BTC/USDT", "ETH/USDT", "BTC/USDT:USDT")


@pytest.fixture
def written(
    storage: LocalStorage, hf_schema: pa.Schema, make_rows: Callable[..., list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """An `hf` table written by the writer: 2 exchanges x 3 symbols x 2 days, 4 rows each; returns the rows."""
    writer = PartitionedParquetWriter(storage, "hf", hf_schema)
    rows = [
        row
        for exchange in ("binanceus", "kraken")
        for symbol in SYMBOLS
        for day in (0, 1)
        for row in make_rows(exchange, symbol, T0 + day * DAY_MS, count=4)
    ]
    writer.add(rows)
    writer.flush()
    return rows


@pytest.fixture
def write_legacy_file(
    data_root: Path, hf_schema: pa.Schema, make_rows: Callable[..., list[dict[str, Any]]]
) -> Callable[..., str]:
    """`write_legacy_file(symbol, ...)`: a file where the old scripts put it, `symbol=BTC-USDT`, holding `BTC/USDT`."""

    def write(
        symbol: str = "BTC/USDT",
        exchange: str = "binanceus",
        start_ms: int = T0,
        name: str = "part_0001.parquet",
    ) -> str:
        rel = f"hf/exchange={exchange}/symbol={symbol.replace('/', '-')}/date=2025-12-12/{name}"
        (data_root / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            pa.Table.from_pylist(make_rows(exchange, symbol, start_ms), schema=hf_schema), data_root / rel
        )
        return rel

    return write
