"""read_table and list_partitions: filters, empty results, schema unification, and the legacy layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from fluxforge_common.dataset.reader import DatasetWarning, list_partitions, read_table
from fluxforge_common.dataset.schema import KEY_SCHEMA
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers import PartitionedParquetWriter

from tests.support.times import DAY_MS, T0

Rows = list[dict[str, Any]]
pytestmark = pytest.mark.filterwarnings("error::fluxforge_common.dataset.reader.DatasetWarning")


def keys(table: pa.Table) -> list[tuple[str, str, int]]:
    return sorted(
        zip(
            table.column("exchange").to_pylist(),
            table.column("symbol").to_pylist(),
            [t.value for t in table.column("ts")],
            strict=True,
        )
    )


def expected(rows: Rows, **match: Any) -> list[tuple[str, str, int]]:
    return sorted(
        (r["exchange"], r["symbol"], r["ts"]) for r in rows if all(r[k] == v for k, v in match.items())
    )


def test_reads_everything(data_root: Path, written: Rows) -> None:
    table = read_table(data_root, "hf")
    assert table.num_rows == len(written)
    assert keys(table) == expected(written)
    assert table.schema.field("ts").type == KEY_SCHEMA.field("ts").type


@pytest.mark.parametrize(
    "match",
    [
        {"exchange": "kraken"},
        {"symbol": "BTC/USDT"},
        {"symbol": "BTC/USDT:USDT", "exchange": "binanceus"},
    ],
)
def test_filters_by_exchange_and_unified_symbol(
    data_root: Path, written: Rows, match: dict[str, str]
) -> None:
    table = read_table(data_root, "hf", exchange=match.get("exchange"), symbol=match.get("symbol"))
    assert keys(table) == expected(written, **match)


def test_time_range_is_half_open_and_crosses_dates(data_root: Path, written: Rows) -> None:
    start, end = T0 + 2000, T0 + DAY_MS + 1000
    table = read_table(data_root, "hf", symbol="ETH/USDT", exchange="kraken", start_ms=start, end_ms=end)
    want = [k for k in expected(written, symbol="ETH/USDT", exchange="kraken") if start <= k[2] < end]
    assert keys(table) == want
    assert [k[2] - T0 for k in want] == [2000, 3000, DAY_MS]


def test_columns(data_root: Path, written: Rows) -> None:
    table = read_table(
        data_root, "hf", symbol="BTC/USDT", start_ms=T0 + 3000, end_ms=T0 + DAY_MS, columns=["ts", "mid"]
    )
    assert table.column_names == ["ts", "mid"]
    assert table.column("mid").to_pylist() == [103.0] * 2  # binanceus and kraken
    with pytest.raises(ValueError, match=r"no column\(s\) \['nope'\]"):
        read_table(data_root, "hf", columns=["mid", "nope"])


def test_missing_table_gives_an_empty_table_and_says_so(data_root: Path) -> None:
    with pytest.warns(DatasetWarning, match="'bars' has no data files"):
        table = read_table(data_root, "bars")
    assert table.num_rows == 0
    assert table.schema.equals(KEY_SCHEMA)


def test_no_matching_partition_says_what_exists(data_root: Path, written: Rows, hf_schema: pa.Schema) -> None:
    with pytest.warns(DatasetWarning, match=r"symbols \['BTC/USDT', 'BTC/USDT:USDT', 'ETH/USDT'\]"):
        table = read_table(data_root, "hf", symbol="DOGE/USDT")
    assert table.num_rows == 0
    assert table.schema.equals(hf_schema)
    with pytest.warns(DatasetWarning, match="dates 2025-12-12..2025-12-13"):
        read_table(data_root, "hf", start_ms=T0 + 5 * DAY_MS)
    with pytest.warns(DatasetWarning):
        assert read_table(data_root, "hf", symbol="DOGE/USDT", columns=["mid", "x"]).column_names == [
            "mid",
            "x",
        ]


def test_matching_partitions_without_matching_rows(data_root: Path, written: Rows) -> None:
    with pytest.warns(DatasetWarning, match="no rows of 'hf'"):
        table = read_table(data_root, "hf", start_ms=T0 + 10_000, end_ms=T0 + 20_000)
    assert table.num_rows == 0


def test_added_columns_are_unified(
    storage: LocalStorage, data_root: Path, hf_schema: pa.Schema, make_rows: Callable[..., Rows]
) -> None:
    old = PartitionedParquetWriter(storage, "hf", hf_schema)
    old.add(make_rows("x", "A/B", count=2))
    old.flush()
    newer = PartitionedParquetWriter(storage, "hf", hf_schema.append(pa.field("vwap", pa.float64())))
    newer.add([r | {"vwap": 1.5} for r in make_rows("x", "A/B", T0 + 10_000, count=2)])
    newer.flush()
    table = read_table(data_root, "hf")
    assert table.column("vwap").to_pylist() == [None, None, 1.5, 1.5]


def test_legacy_layout_is_read_by_the_file_column_and_reported(
    data_root: Path, written: Rows, write_legacy_file: Callable[..., str]
) -> None:
    write_legacy_file("SOL/USDT")
    with pytest.warns(DatasetWarning, match="legacy layout.*rewrite_legacy_layout"):
        table = read_table(data_root, "hf", symbol="SOL/USDT")
    assert set(table.column("symbol").to_pylist()) == {"SOL/USDT"}
    assert table.num_rows == 3
    with pytest.warns(DatasetWarning, match="legacy layout"):
        assert read_table(data_root, "hf", symbol="BTC/USDT").num_rows == len(
            expected(written, symbol="BTC/USDT")
        )


def test_hive_readers_get_the_legacy_layout_wrong(
    data_root: Path, write_legacy_file: Callable[..., str]
) -> None:
    """Why the reader does not trust the path: pyarrow's hive read replaces the column by `BTC-USDT`."""
    write_legacy_file("BTC/USDT")
    hive = ds.dataset(data_root / "hf", format="parquet", partitioning="hive").to_table()
    assert set(hive.column("symbol").to_pylist()) == {"BTC-USDT"}


def test_slashless_symbol_that_matches_its_files_is_not_legacy_form(
    storage: LocalStorage, data_root: Path, hf_schema: pa.Schema, make_rows: Callable[..., Rows]
) -> None:
    writer = PartitionedParquetWriter(storage, "hf", hf_schema)
    writer.add(make_rows("x", "BTCUSDT-PERP"))
    writer.flush()
    assert read_table(data_root, "hf", symbol="BTCUSDT-PERP").num_rows == 3  # no warning (would be an error)


def test_list_partitions(data_root: Path, written: Rows, write_legacy_file: Callable[..., str]) -> None:
    legacy = write_legacy_file("SOL/USDT")
    (data_root / "hf/exchange=kraken/symbol=%ZZ/date=2025-12-12").mkdir(parents=True)
    (data_root / "hf/exchange=kraken/symbol=EMPTY/date=2025-12-12").mkdir(parents=True)
    with pytest.warns(DatasetWarning, match="skipped 1 malformed partition directory"):
        partitions = list_partitions(data_root, "hf")
    assert len(partitions) == 2 * 3 * 2 + 1
    btc = next(p for p in partitions if p.symbol == "BTC/USDT:USDT" and p.exchange == "kraken")
    assert btc.path == "hf/exchange=kraken/symbol=BTC%2FUSDT%3AUSDT/date=2025-12-12"
    assert len(btc.files) == 1
    assert btc.files[0].startswith(btc.path + "/part-")
    assert any(p.files == (legacy,) and p.symbol == "SOL-USDT" for p in partitions)
    assert list_partitions(data_root, "bars") == []


def test_hidden_and_underscore_files_are_not_read(
    data_root: Path, written: Rows, hf_schema: pa.Schema
) -> None:
    partition = data_root / "hf/exchange=kraken/symbol=ETH%2FUSDT/date=2025-12-12"
    extra = pa.Table.from_pylist([written[0]], schema=hf_schema)
    pq.write_table(extra, partition / "_metadata.parquet")
    pq.write_table(extra, partition / ".tmp-abc-x")
    assert read_table(data_root, "hf").num_rows == len(written)
