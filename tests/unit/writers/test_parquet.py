"""PartitionedParquetWriter: partitioning, naming, atomicity, and what pyarrow and DuckDB read back."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from fluxforge_common.storage import LocalStorage, StorageBackend
from fluxforge_common.storage.space import DiskFullError
from fluxforge_common.writers import PartitionedParquetWriter
from fluxforge_common.writers.parquet import row_reader
from fluxforge_native import ReadRows

from tests.support.storage import FailingStorage
from tests.support.times import DAY_MS, T0

MakeRows = Callable[..., list[dict[str, Any]]]


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


BTC = "hf/exchange=binanceus/symbol=BTC%2FUSDT/date=2025-12-12"


@pytest.fixture
def writer(storage: StorageBackend, hf_schema: pa.Schema) -> PartitionedParquetWriter:
    return PartitionedParquetWriter(storage, "hf", hf_schema)


def test_one_file_per_partition(
    writer: PartitionedParquetWriter, storage: StorageBackend, make_rows: MakeRows
) -> None:
    assert writer.add(make_rows("binanceus", "BTC/USDT", count=3)) == [
        ("binanceus", "BTC/USDT", "2025-12-12")
    ]
    assert writer.add(
        make_rows("binanceus", "BTC/USDT:USDT", count=2) + make_rows("kraken", "BTC/USDT", count=1)
    ) == [("binanceus", "BTC/USDT:USDT", "2025-12-12"), ("kraken", "BTC/USDT", "2025-12-12")]
    writer.add(make_rows("binanceus", "BTC/USDT", T0 + DAY_MS, count=4))
    assert (writer.buffered_rows, writer.buffered_partitions) == (10, 4)
    written = writer.flush()
    assert (writer.buffered_rows, writer.buffered_partitions) == (0, 0)
    assert [(w.path.rsplit("/", 1)[0], w.rows) for w in written] == [
        (BTC, 3),
        ("hf/exchange=binanceus/symbol=BTC%2FUSDT/date=2025-12-13", 4),
        ("hf/exchange=binanceus/symbol=BTC%2FUSDT%3AUSDT/date=2025-12-12", 2),
        ("hf/exchange=kraken/symbol=BTC%2FUSDT/date=2025-12-12", 1),
    ]
    assert storage.list_files() == sorted(w.path for w in written)
    assert all(w.bytes == storage.size(w.path) for w in written)
    assert writer.flush() == []


def test_rows_keep_values_types_and_order(
    writer: PartitionedParquetWriter, storage: LocalStorage, make_rows: MakeRows, hf_schema: pa.Schema
) -> None:
    rows = make_rows("binanceus", "BTC/USDT", count=5)[::-1]
    writer.add(rows)
    (written,) = writer.flush()
    table = pq.read_table(storage.local_path(written.path))
    assert table.schema.equals(hf_schema)
    assert table.column("n").to_pylist() == [4, 3, 2, 1, 0]
    assert [t.value for t in table.column("ts")] == [r["ts"] for r in rows]


@pytest.mark.parametrize(("count", "codec"), [(5, "LZ4"), (2_000, "ZSTD")])
def test_zstd_leaves_files_too_small_for_it_to_lz4(
    writer: PartitionedParquetWriter, storage: LocalStorage, make_rows: MakeRows, count: int, codec: str
) -> None:
    writer.add(make_rows("binanceus", "BTC/USDT", count=count))
    (written,) = writer.flush()
    group = pq.ParquetFile(storage.local_path(written.path)).metadata.row_group(0)
    assert {group.column(n).compression for n in range(group.num_columns)} == {codec}


def test_statistics_are_written_for_the_columns_reads_filter_on(
    writer: PartitionedParquetWriter, storage: LocalStorage, make_rows: MakeRows
) -> None:
    writer.add(make_rows("binanceus", "BTC/USDT", count=3))
    (written,) = writer.flush()
    metadata = pq.ParquetFile(storage.local_path(written.path)).metadata
    group = metadata.row_group(0)
    stats = {metadata.schema.column(n).name: group.column(n).statistics for n in range(group.num_columns)}
    assert (stats["ts"].min, stats["ts"].max) == (utc(T0), utc(T0 + 2000))
    assert (stats["symbol"].min, stats["n"].max) == ("BTC/USDT", 2)
    assert stats["mid"] is None


def test_a_row_missing_values_among_whole_rows_converts_them_all(
    writer: PartitionedParquetWriter, storage: LocalStorage, make_rows: MakeRows
) -> None:
    rows = make_rows("x", "A/B", count=200)
    del rows[150]["mid"]
    writer.add(rows)
    (written,) = writer.flush()
    mids = pq.read_table(storage.local_path(written.path)).column("mid").to_pylist()
    assert mids == [None if i == 150 else 100.0 + i for i in range(200)]


def test_a_missing_value_of_a_mapping_with_a_default_is_null(
    writer: PartitionedParquetWriter, storage: LocalStorage
) -> None:
    rows = [defaultdict(float, exchange="x", symbol="A/B", ts=T0 + i * 1000, n=i) for i in range(200)]
    writer.add(rows)
    (written,) = writer.flush()
    assert pq.read_table(storage.local_path(written.path)).column("mid").null_count == 200
    assert "mid" not in rows[0]


def test_day_boundary_is_utc(writer: PartitionedParquetWriter, make_rows: MakeRows) -> None:
    midnight = 1_765_584_000_000  # 2025-12-13T00:00:00Z
    writer.add(make_rows("x", "A/B", midnight - 1, count=2, step_ms=1))
    assert [w.path.split("/")[3] for w in writer.flush()] == ["date=2025-12-12", "date=2025-12-13"]


def test_caller_stem_names_and_rewrites_the_same_file(
    writer: PartitionedParquetWriter, storage: StorageBackend, make_rows: MakeRows
) -> None:
    stem = "fluxforge.features.hf+3+000120-000450"
    writer.add(make_rows("binanceus", "BTC/USDT", count=3))
    (first,) = writer.flush(stem)
    assert first.path == f"{BTC}/{stem}.parquet"
    writer.add(make_rows("binanceus", "BTC/USDT", count=2))  # a replay after a crash, say
    (second,) = writer.flush(stem)
    assert second.path == first.path
    assert storage.list_files() == [first.path]
    assert second.rows == 2


def test_generated_stems_are_unique_and_time_sorted(
    writer: PartitionedParquetWriter, make_rows: MakeRows
) -> None:
    paths = []
    for start in (T0 + 5000, T0 + 5000, T0 + 20_000, T0 + 100_000):
        writer.add(make_rows("binanceus", "BTC/USDT", start, count=1))
        paths += [w.path for w in writer.flush()]
    names = [p.rsplit("/", 1)[1] for p in paths]
    assert len(set(names)) == 4
    assert names == sorted(names)
    assert names[0].startswith(f"part-{T0 + 5000}-")


@pytest.mark.parametrize("stem", ["../x", "a/b", ".hidden", "_meta", "", "x" * 201, "a\x00"])
def test_bad_stems_are_refused(writer: PartitionedParquetWriter, make_rows: MakeRows, stem: str) -> None:
    writer.add(make_rows("binanceus", "BTC/USDT"))
    with pytest.raises(ValueError, match="file stem"):
        writer.flush(stem)
    assert writer.buffered_rows == 3


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"ts": None}, "integer milliseconds"),
        ({"ts": 1.7e12}, "integer milliseconds"),
        ({"ts": True}, "integer milliseconds"),
        ({"symbol": "BTC\x00USDT"}, "control"),
        ({"exchange": ""}, "empty"),
        ({"exchange": "x" * 200}, "longer"),
        ({"colour": "red"}, "not in the schema"),
    ],
)
def test_bad_rows_are_refused_all_or_nothing(
    writer: PartitionedParquetWriter, make_rows: MakeRows, bad: dict[str, Any], why: str
) -> None:
    rows = make_rows("binanceus", "BTC/USDT", count=3)
    rows[2] |= bad
    with pytest.raises(ValueError, match=why):
        writer.add(rows)
    assert writer.buffered_rows == 0


def test_row_without_key_column(writer: PartitionedParquetWriter) -> None:
    with pytest.raises(ValueError, match="lacks column 'symbol'"):
        writer.add([{"exchange": "x", "ts": T0}])


def test_missing_value_columns_are_null(writer: PartitionedParquetWriter, storage: LocalStorage) -> None:
    writer.add([{"exchange": "x", "symbol": "A/B", "ts": T0}])
    (written,) = writer.flush()
    assert pq.read_table(storage.local_path(written.path)).column("mid").to_pylist() == [None]


def test_type_errors_surface_at_flush_and_keep_the_buffer(
    writer: PartitionedParquetWriter, make_rows: MakeRows
) -> None:
    rows = make_rows("binanceus", "BTC/USDT")
    rows[1]["n"] = "three"
    writer.add(rows)
    with pytest.raises(ValueError, match="do not fit the hf schema"):
        writer.flush()
    assert writer.buffered_rows == 3


@pytest.mark.parametrize(
    "fields",
    [
        [("exchange", pa.string()), ("symbol", pa.string())],
        [("exchange", pa.string()), ("symbol", pa.string()), ("ts", pa.int64())],
        [("exchange", pa.string()), ("symbol", pa.string()), ("ts", pa.timestamp("ms"))],
        [("exchange", pa.int32()), ("symbol", pa.string()), ("ts", pa.timestamp("ms", tz="UTC"))],
    ],
)
def test_schema_must_carry_the_key_columns(
    storage: StorageBackend, fields: list[tuple[str, pa.DataType]]
) -> None:
    with pytest.raises(ValueError, match="schema needs"):
        PartitionedParquetWriter(storage, "hf", pa.schema(fields))


def test_bad_table_name(storage: StorageBackend, hf_schema: pa.Schema) -> None:
    with pytest.raises(ValueError, match="table name"):
        PartitionedParquetWriter(storage, "../hf", hf_schema)


def test_failed_partition_stays_buffered_and_leaves_no_file(
    data_root: Path, hf_schema: pa.Schema, make_rows: MakeRows
) -> None:
    storage = FailingStorage(data_root, fail_after_opens=1)
    writer = PartitionedParquetWriter(storage, "hf", hf_schema)
    writer.add(make_rows("a", "A/B", count=2) + make_rows("b", "A/B", count=3))
    with pytest.raises(OSError, match="injected"):
        writer.flush("batch-1")
    assert storage.list_files() == ["hf/exchange=a/symbol=A%2FB/date=2025-12-12/batch-1.parquet"]
    assert (writer.buffered_rows, writer.buffered_partitions) == (3, 1)
    storage.opens_left = None
    (retried,) = writer.flush("batch-1")
    assert retried.path == "hf/exchange=b/symbol=A%2FB/date=2025-12-12/batch-1.parquet"


def test_write_failing_midway_leaves_no_file(
    data_root: Path, hf_schema: pa.Schema, make_rows: MakeRows
) -> None:
    storage = FailingStorage(data_root, fail_after_bytes=100)
    writer = PartitionedParquetWriter(storage, "hf", hf_schema)
    writer.add(make_rows("a", "A/B", count=100))
    with pytest.raises(DiskFullError, match=f"disk full at {data_root}: no space left") as full:
        writer.flush()
    assert "injected" in str(full.value.__cause__)  # the write's own error, kept as the cause
    assert storage.list_files() == []
    assert [p.name for p in data_root.rglob("*") if p.is_file()] == []


def test_pyarrow_and_duckdb_read_back_unified_symbols(
    writer: PartitionedParquetWriter, storage: LocalStorage, data_root: Path, make_rows: MakeRows
) -> None:
    for symbol in ("BTC/USDT", "BTC/USDT:USDT", "ETH/BTC"):
        writer.add(make_rows("binanceus", symbol, count=2))
    writer.flush()
    hive = ds.dataset(
        data_root / "hf",
        format="parquet",
        partitioning=ds.partitioning(
            pa.schema([("exchange", pa.string()), ("symbol", pa.string()), ("date", pa.string())]),
            flavor="hive",
        ),
    ).to_table()
    assert sorted(set(hive.column("symbol").to_pylist())) == ["BTC/USDT", "BTC/USDT:USDT", "ETH/BTC"]
    assert set(hive.column("date").to_pylist()) == {"2025-12-12"}
    rows = duckdb.execute(
        f"select symbol, count(*), min(date)::varchar from read_parquet('{data_root}/hf/**/*.parquet', "
        "hive_partitioning=true) group by symbol order by symbol"
    ).fetchall()
    assert rows == [
        ("BTC/USDT", 2, "2025-12-12"),
        ("BTC/USDT:USDT", 2, "2025-12-12"),
        ("ETH/BTC", 2, "2025-12-12"),
    ]


def test_rows_spanning_several_arrow_chunks_keep_order(
    writer: PartitionedParquetWriter, make_rows: MakeRows, storage: LocalStorage
) -> None:
    from fluxforge_common.writers.parquet import CHUNK_ROWS

    rows = make_rows("binanceus", "BTC/USDT", count=2 * CHUNK_ROWS + 5, step_ms=10)
    for start in range(0, len(rows), 100):  # many small adds, as the pipeline makes them
        writer.add(rows[start : start + 100])
    assert writer.buffered_rows == len(rows)
    (written,) = writer.flush()
    assert written.rows == len(rows) and writer.buffered_rows == 0
    table = pq.read_table(storage.local_path(written.path))
    assert table.column("n").to_pylist() == list(range(len(rows)))
    assert table.column("mid").to_pylist() == [row["mid"] for row in rows]


def test_rows_that_do_not_fit_stop_the_flush_at_their_partition(
    writer: PartitionedParquetWriter, storage: StorageBackend, make_rows: MakeRows
) -> None:
    """The partitions are converted together; a misfit is found and cut at its own partition."""
    bad = make_rows("b", "A/B", count=2)
    bad[1]["n"] = "three"
    writer.add(make_rows("a", "A/B", count=2) + bad + make_rows("c", "A/B", count=3))
    with pytest.raises(ValueError, match=r"exchange=b/.* do not fit the hf schema"):
        writer.flush("batch-1")
    assert storage.list_files() == ["hf/exchange=a/symbol=A%2FB/date=2025-12-12/batch-1.parquet"]
    assert (writer.buffered_rows, writer.buffered_partitions) == (5, 2)


class _Float(float):
    """A float the native columns do not take (pyarrow does): its rows are held as dicts."""


def test_rows_held_as_dicts_keep_their_partitions_order(
    writer: PartitionedParquetWriter, make_rows: MakeRows, storage: LocalStorage
) -> None:
    """A partition's rows go into its columns until one the columns do not take; the rows after
    it are held as dicts too, so the file keeps the order they were added in."""
    rows = {name: make_rows("binanceus", name, count=9, step_ms=10) for name in ("A/B", "C/D")}
    rows["A/B"][4]["mid"] = _Float(rows["A/B"][4]["mid"])
    for start in range(0, 9, 3):
        writer.add(rows["A/B"][start : start + 3] + rows["C/D"][start : start + 3])
    assert writer.buffered_rows == 18
    written = {w.path.split("/")[2]: w for w in writer.flush()}
    for name in ("A/B", "C/D"):
        table = pq.read_table(storage.local_path(written[f"symbol={name.replace('/', '%2F')}"].path))
        assert table.column("n").to_pylist() == list(range(9))
        assert table.column("mid").to_pylist() == [100.0 + i for i in range(9)]


def test_an_add_whose_held_rows_do_not_fit_is_undone_whole(
    writer: PartitionedParquetWriter, make_rows: MakeRows
) -> None:
    """Rows held as dicts are converted at CHUNK_ROWS; a misfit among them refuses the whole add,
    the rows it put into other partitions' columns included."""
    from fluxforge_common.writers.parquet import CHUNK_ROWS

    writer.add(make_rows("binanceus", "A/B", count=2))
    held = make_rows("kraken", "A/B", count=CHUNK_ROWS)
    held[0]["mid"] = _Float(1.0)
    held[-1]["n"] = "three"
    with pytest.raises(ValueError, match="hf rows do not fit the schema"):
        writer.add(make_rows("binanceus", "A/B", start_ms=T0 + 5_000, count=3) + held)
    assert (writer.buffered_rows, writer.buffered_partitions) == (2, 1)
    (written,) = writer.flush()
    assert written.rows == 2


def test_held_rows_beyond_what_arrow_holds_undo_the_add_at_chunk_rows_and_refuse_the_flush(
    writer: PartitionedParquetWriter, make_rows: MakeRows
) -> None:
    """An int beyond int64 is not taken by the columns, and pyarrow raises OverflowError for it."""
    from fluxforge_common.writers.parquet import CHUNK_ROWS

    held = make_rows("kraken", "A/B", count=CHUNK_ROWS)
    held[-1]["n"] = 2**64
    with pytest.raises(ValueError, match="hf rows do not fit the schema"):
        writer.add(make_rows("binanceus", "A/B", count=3) + held)
    assert (writer.buffered_rows, writer.buffered_partitions) == (0, 0)
    writer.add(make_rows("binanceus", "A/B", count=3) + held[-2:])
    with pytest.raises(ValueError, match=r"exchange=kraken/.* do not fit the hf schema"):
        writer.flush()
    assert (writer.buffered_rows, writer.buffered_partitions) == (2, 1)  # binanceus, before it, written


def _read(schema: pa.Schema, rows: list[dict[str, Any]]) -> ReadRows:
    reader = row_reader(schema)
    assert reader is not None
    read = reader.read(orjson.dumps(rows))
    assert read is not None
    return read


def test_rows_read_from_messages_are_written_as_the_same_rows_added(
    storage: LocalStorage, hf_schema: pa.Schema, make_rows: MakeRows
) -> None:
    """Messages read natively, interleaved over partitions and flushes, give the files their rows
    give when added as dicts."""
    messages = [
        make_rows("binanceus", "A/B", start_ms=T0 + 10_000 * i, count=2)
        + make_rows("kraken", "A/B", start_ms=T0 + 10_000 * i, count=1)
        for i in range(4)
    ] + [make_rows("binanceus", "A/B", start_ms=T0 + DAY_MS, count=2)]
    files: dict[str, list[pa.Table]] = {}
    for way in ("dicts", "read"):
        writer = PartitionedParquetWriter(storage, "hf", hf_schema)
        written = []
        for i, rows in enumerate(messages):
            if way == "dicts":
                writer.add(rows)
            else:
                keys = {(row["exchange"], row["symbol"], utc(row["ts"]).date().isoformat()) for row in rows}
                assert set(writer.add_read(_read(hf_schema, rows)) or []) == keys
            if i == 1:
                written += writer.flush(file_stem=f"{way}-1")
        assert (writer.buffered_rows, writer.buffered_partitions) == (8, 3)
        written += writer.flush(file_stem=f"{way}-2")
        assert [w.rows for w in written] == [4, 2, 4, 2, 2]
        files[way] = [pq.read_table(storage.local_path(w.path)) for w in written]
    assert files["read"] == files["dicts"]


def test_rows_read_for_a_partition_holding_dicts_are_left_to_add(
    writer: PartitionedParquetWriter, make_rows: MakeRows, hf_schema: pa.Schema
) -> None:
    """A partition with rows held as dicts takes the next ones as dicts too (its order stays)."""
    held = make_rows("binanceus", "A/B", count=1)
    held[0]["mid"] = _Float(1.0)
    writer.add(held)
    rows = make_rows("kraken", "A/B", count=2) + make_rows("binanceus", "A/B", start_ms=T0 + 5_000, count=1)
    assert writer.add_read(_read(hf_schema, rows)) is None
    assert (writer.buffered_rows, writer.buffered_partitions) == (1, 1)
    assert [w.rows for w in writer.flush()] == [1]  # nothing of the refused rows in the columns


def test_rows_read_with_an_unusable_partition_name_are_refused_whole(
    writer: PartitionedParquetWriter, make_rows: MakeRows, hf_schema: pa.Schema
) -> None:
    rows = make_rows("binanceus", "A/B", count=2) + make_rows("x" * 200, "A/B", count=1)
    with pytest.raises(ValueError, match="longer"):
        writer.add_read(_read(hf_schema, rows))
    assert (writer.buffered_rows, writer.buffered_partitions) == (0, 0)
    assert writer.flush() == []  # nothing of the refused rows in the columns
