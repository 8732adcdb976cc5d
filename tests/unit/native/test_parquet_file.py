"""encode_parquet: the file reads back as the table it was given, with the footer, Parquet types and
row groups pyarrow's writer gives the same table, for any slicing of its batches."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fluxforge_common.writers.parquet import ColumnEncodings, encode_parquet, parquet_footer
from fluxforge_native import ParquetEncoder
from hypothesis import assume, given, settings
from hypothesis import strategies as st

SCHEMA = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
        ("local", pa.timestamp("us")),
        ("price", pa.float64()),
        ("ratio", pa.float32()),
        ("count", pa.int64()),
        ("small", pa.int8()),
        ("medium", pa.int16()),
        ("wide", pa.int32()),
        ("day", pa.date32()),
        ("flag", pa.bool_()),
        ("note", pa.string()),
        ("text", pa.large_string()),
        ("levels", pa.list_(pa.list_(pa.float64()))),
        ("pair", pa.list_(pa.int64(), 2)),
        ("names", pa.large_list(pa.string())),
    ],
    metadata={"fluxforge": '{"mode": "test"}'},
)
INT64 = st.integers(-(2**63), 2**63 - 1)
ROW = st.fixed_dictionaries(
    {
        "exchange": st.text(max_size=8),
        "ts": st.integers(0, 2**50),
        "local": st.none() | st.integers(-(2**60), 2**60),
        "price": st.none() | st.floats(),
        "ratio": st.none() | st.floats(width=32),
        "count": st.none() | INT64,
        "small": st.none() | st.integers(-128, 127),
        "medium": st.none() | st.integers(-(2**15), 2**15 - 1),
        "wide": st.none() | st.integers(-(2**31), 2**31 - 1),
        "day": st.none() | st.integers(-(2**20), 2**20),
        "flag": st.none() | st.booleans(),
        "note": st.none() | st.text(),
        "text": st.none() | st.text(),
        "levels": st.none()
        | st.lists(st.none() | st.lists(st.none() | st.floats(allow_nan=False), max_size=3), max_size=3),
        "pair": st.none() | st.lists(st.none() | INT64, min_size=2, max_size=2),
        "names": st.none() | st.lists(st.none() | st.text(max_size=3), max_size=3),
    }
)


ENCODER_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "row_group_size": 5,
    "dictionary": ["exchange"],
    "statistics": ["exchange", "ts"],
}


def _table(rows: list[dict[str, Any]], cuts: list[int]) -> pa.Table:
    """`rows` as a table whose batches are slices of one batch, cut at `cuts`."""
    batch = pa.RecordBatch.from_pylist(rows, schema=SCHEMA)
    bounds = sorted({0, len(rows), *(cut % (len(rows) + 1) for cut in cuts)})
    pieces = [batch.slice(start, end - start) for start, end in pairwise(bounds)]
    return pa.Table.from_batches(pieces, schema=SCHEMA)


def _read(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))


def _bits(table: pa.Table) -> pa.Table:
    """`table` with its flat floats as their bit patterns, so that a NaN equals itself (and -0.0 not
    0.0); floats in lists are drawn without NaN."""
    views = {pa.float64(): pa.int64(), pa.float32(): pa.int32()}
    columns = [
        column.combine_chunks().view(views[column.type]) if column.type in views else column.combine_chunks()
        for column in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(ROW, max_size=40), cuts=st.lists(st.integers(0, 40), max_size=4), group=st.integers(1, 17)
)
def test_a_file_reads_back_as_its_table_in_the_row_groups_pyarrow_makes(
    rows: list[dict[str, Any]], cuts: list[int], group: int
) -> None:
    table = _table(rows, cuts)
    data = encode_parquet(table, compression="none", row_group_size=group)
    reference = pa.BufferOutputStream()
    pq.write_table(table, reference, compression="none", row_group_size=group)
    read = _read(data)
    # As from pyarrow's file: a list's values are named `element` in Parquet and when read back.
    assert read.schema.equals(_read(reference.getvalue()).schema, check_metadata=True)
    assert _bits(read).equals(_bits(table.cast(read.schema)))
    ours, theirs = (
        pq.read_metadata(pa.BufferReader(data)),
        pq.read_metadata(pa.BufferReader(reference.getvalue())),
    )
    assert ours.metadata == theirs.metadata  # the schema's own pairs and ARROW:schema
    assert ours.schema.equals(theirs.schema)  # the same Parquet types and repetitions
    assert [ours.row_group(i).num_rows for i in range(ours.num_row_groups)] == [
        theirs.row_group(i).num_rows for i in range(theirs.num_row_groups)
    ]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(ROW, max_size=12), min_size=2, max_size=4))
def test_one_encoder_writes_each_file_as_an_encoder_of_its_own(tables: list[list[dict[str, Any]]]) -> None:
    """An encoder is made once per table and writes file after file, from several threads: nothing
    of one file (rows, footer) carries into the next."""
    shared = ParquetEncoder(SCHEMA.__arrow_c_schema__(), **ENCODER_OPTIONS)
    files = [(_table(rows, [5]), [("n", str(n)), *parquet_footer(SCHEMA)]) for n, rows in enumerate(tables)]

    def pieces(table: pa.Table) -> list[tuple[object, object, int, int]]:
        return [(*batch.__arrow_c_array__(), 0, batch.num_rows) for batch in table.to_batches()]

    with ThreadPoolExecutor(2) as threads:
        written = list(threads.map(lambda file: shared.encode(pieces(file[0]), file[1]), files))
    for data, (table, footer) in zip(written, files, strict=True):
        alone = ParquetEncoder(SCHEMA.__arrow_c_schema__(), **ENCODER_OPTIONS).encode(pieces(table), footer)
        assert data == alone
        assert _bits(_read(data)).equals(_bits(table.cast(_read(data).schema)))
        assert pq.read_metadata(pa.BufferReader(data)).metadata == {k.encode(): v.encode() for k, v in footer}


@pytest.mark.parametrize("compression", ["zstd", "lz4", "snappy", "gzip", "none"])
def test_every_compression_of_the_settings_reads_back(compression: str) -> None:
    rows = [{"exchange": "ex", "ts": n, "price": n / 7, "note": "abc" * (n % 5)} for n in range(1000)]
    table = _table(rows, [300])
    data = encode_parquet(table, compression=compression)  # type: ignore[arg-type]
    reference = pa.BufferOutputStream()
    pq.write_table(table, reference, compression=compression)

    def codecs(file: Any) -> set[str]:
        group = pq.read_metadata(pa.BufferReader(file)).row_group(0)
        return {group.column(i).compression for i in range(group.num_columns)}

    assert (
        codecs(data)
        == codecs(reference.getvalue())
        == {"UNCOMPRESSED" if compression == "none" else compression.upper()}
    )
    assert _read(data).equals(table.combine_chunks())


def test_statistics_and_dictionaries_only_where_the_encodings_say() -> None:
    table = _table([{"exchange": "ex", "ts": n, "price": float(n), "count": n} for n in range(50)], [])
    data = encode_parquet(
        table, encodings=ColumnEncodings(dictionary=("exchange",), statistics=("ts", "count"))
    )
    group = pq.read_metadata(pa.BufferReader(data)).row_group(0)
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    assert {name for name, c in columns.items() if c.is_stats_set} == {"ts", "count"}
    assert columns["count"].statistics.min == 0 and columns["count"].statistics.max == 49
    assert columns["exchange"].has_dictionary_page and not columns["note"].has_dictionary_page


def test_duckdb_and_polars_read_the_file(tmp_path: Path) -> None:
    rows = [{"exchange": "ex", "ts": n, "price": n / 3, "flag": n % 2 == 0, "note": None} for n in range(20)]
    path = tmp_path / "file.parquet"
    path.write_bytes(encode_parquet(_table(rows, [7])))
    frame = pl.read_parquet(path)
    assert frame["price"].to_list() == [n / 3 for n in range(20)]
    assert frame["ts"].dtype == pl.Datetime("ms", "UTC") and frame["note"].null_count() == 20
    with duckdb.connect() as db:
        found = db.execute(
            "SELECT count(*), sum(price), count(*) FILTER (WHERE flag), min(exchange) FROM read_parquet(?)",
            [str(path)],
        ).fetchone()
    assert found == (20, sum(n / 3 for n in range(20)), 10, "ex")


def test_a_column_of_another_kind_is_refused_by_name() -> None:
    schema = pa.schema([("exchange", pa.string()), ("tags", pa.struct([("a", pa.int64())]))])
    table = pa.table({"exchange": ["ex"], "tags": [{"a": 1}]}, schema=schema)
    with pytest.raises(TypeError, match='column "tags"'):
        encode_parquet(table)
    coded = pa.table({"exchange": pa.array(["ex"]).dictionary_encode()})
    with pytest.raises(TypeError, match='column "exchange"'):
        encode_parquet(coded)


def test_a_null_in_a_column_that_is_not_nullable_is_refused() -> None:
    schema = pa.schema([pa.field("exchange", pa.string(), nullable=False)])
    table = pa.Table.from_arrays([pa.array(["ex", None])], schema=schema)
    with pytest.raises(ValueError, match="not nullable"):
        encode_parquet(table)


def test_capsules_that_are_not_the_batches_of_the_schema_are_refused() -> None:
    table = pa.table({"exchange": ["ex"], "count": pa.array([1], pa.int64())})
    (schema, array), other = (
        table.to_batches()[0].__arrow_c_array__(),
        pa.table({"count": pa.array([1], pa.int8())}),
    )
    options: dict[str, Any] = {
        "compression": "none",
        "row_group_size": 10,
        "dictionary": [],
        "statistics": [],
    }
    rows = table.num_rows
    with pytest.raises(TypeError, match="arrow_schema"):
        ParquetEncoder(array, **options)
    encoder = ParquetEncoder(schema, **options)
    with pytest.raises(TypeError, match="arrow_array"):
        encoder.encode([(schema, schema, 0, rows)], [])
    with pytest.raises(ValueError, match="batch 0 does not have the table's schema"):
        encoder.encode([(*other.to_batches()[0].__arrow_c_array__(), 0, 1)], [])
    with pytest.raises(ValueError, match=f"rows 1..{rows + 1} are not all in batch 0 of {rows} rows"):
        encoder.encode([(schema, array, 1, rows)], [])
    with pytest.raises(ValueError, match=f"rows {2**64 - 1}..{2**64 - 1} are not all in batch 0"):
        encoder.encode([(schema, array, 2**64 - 1, 1)], [])  # no wrapped sum
    with pytest.raises(ValueError, match="row_group_size must be positive"):
        ParquetEncoder(schema, **(options | {"row_group_size": 0}))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=4))
def test_pieces_of_a_batch_are_written_as_its_slices(bounds: list[tuple[int, int]]) -> None:
    """A batch exported once and written in pieces (offset, length), as the writer's files share
    one, gives the file of the same slices; the exported batch may itself be a slice."""
    batch = _table([{"exchange": f"x{i}", "ts": i} for i in range(60)], [50]).to_batches()[0].slice(5)
    schema, array = batch.__arrow_c_array__()
    pieces = [
        (start, min(length, batch.num_rows - start)) for start, length in bounds if start < batch.num_rows
    ]
    assume(pieces)
    table = pa.Table.from_batches([batch.slice(start, length) for start, length in pieces])
    encoder = ParquetEncoder(schema, compression="none", row_group_size=7, dictionary=[], statistics=[])
    data = encoder.encode(
        [(schema, array, start, length) for start, length in pieces], parquet_footer(table.schema)
    )
    assert pq.read_table(pa.BufferReader(data)).equals(table)


def test_a_null_in_a_list_of_values_that_are_not_nullable_names_the_column() -> None:
    kind = pa.list_(pa.field("item", pa.float64(), nullable=False))
    table = pa.Table.from_arrays(
        [pa.array([[1.0, None]], pa.list_(pa.float64())).cast(kind, safe=False)], names=["levels"]
    )
    with pytest.raises(ValueError, match='column "levels" is not nullable'):
        encode_parquet(table)


def test_string_statistics_are_exact_as_pyarrow_writes_them() -> None:
    names = ["a" * 100, "😀" * 30]
    table = _table([{"exchange": name, "ts": 0} for name in names], [])
    data = encode_parquet(table, encodings=ColumnEncodings(dictionary=(), statistics=("exchange",)))
    statistics = pq.read_metadata(pa.BufferReader(data)).row_group(0).column(0).statistics
    assert (statistics.min, statistics.max) == (min(names), max(names))
