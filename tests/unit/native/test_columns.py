"""ColumnBuffer: rows it takes become the arrays pyarrow makes of them; rows it does not take are
left whole for pyarrow to convert."""

from __future__ import annotations

import struct
from collections import defaultdict
from typing import Any

import pyarrow as pa
import pytest
from fluxforge_common.dataset.schema import column_kinds
from fluxforge_common.writers.parquet import Row, columns_to_batch, rows_to_batch
from fluxforge_native import ColumnBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("price", pa.float64()),
        ("count", pa.int64()),
        ("flag", pa.bool_()),
    ]
)
ROWS = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.none() | st.text(),
            "ts": st.none() | st.integers(-(2**63), 2**63 - 1),
            "price": st.none() | st.floats(allow_nan=True) | st.integers(-(2**53), 2**53),
            "count": st.none() | st.integers(-(2**63), 2**63 - 1),
            "flag": st.none() | st.booleans(),
        },
    ),
    max_size=30,
)


def _buffer(schema: pa.Schema = SCHEMA) -> ColumnBuffer:
    kinds = column_kinds(schema)
    assert kinds is not None
    return ColumnBuffer(kinds)


def _same(a: pa.RecordBatch, b: pa.RecordBatch) -> bool:
    """Equal, a NaN equal to a NaN (`equals` holds them unequal)."""
    if a.schema != b.schema:
        return False
    for x, y in zip(a.columns, b.columns, strict=True):
        if pa.types.is_floating(x.type):
            u, v = x.to_pylist(), y.to_pylist()
            if [None if p is None else struct.pack("<d", p) for p in u] != [
                None if q is None else struct.pack("<d", q) for q in v
            ]:
                return False
        elif not x.equals(y):
            return False
    return True


@settings(max_examples=300, deadline=None)
@given(ROWS)
def test_taken_rows_are_the_batch_pyarrow_makes_of_them(rows: list[Row]) -> None:
    buffer = _buffer()
    assert buffer.append(rows, 0)
    assert len(buffer) == len(rows)
    counts, batch = columns_to_batch(buffer, SCHEMA)
    assert counts == ([len(rows)] if rows else [])
    assert _same(batch, rows_to_batch(rows, SCHEMA))
    assert len(buffer) == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), ROWS), max_size=8))
def test_rows_are_handed_over_grouped_by_partition_in_append_order(
    appends: list[tuple[int, list[Row]]],
) -> None:
    buffer = _buffer()
    for partition, rows in appends:
        assert buffer.append(rows, partition)
    counts, batch = columns_to_batch(buffer, SCHEMA)
    grouped = [rows for p in range(len(counts)) for q, part in appends if q == p for rows in part]
    assert counts == [sum(len(rows) for q, rows in appends if q == p) for p in range(len(counts))]
    assert _same(batch, rows_to_batch(grouped, SCHEMA))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"price": 2**53 + 1}, id="int beyond a double's exact range"),
        pytest.param({"price": True}, id="bool as a float"),
        pytest.param({"price": "1.5"}, id="string as a float"),
        pytest.param({"price": type("F", (float,), {})(1.5)}, id="float subclass"),
        pytest.param({"count": 1.0}, id="float as an int"),
        pytest.param({"count": 2**63}, id="int beyond int64"),
        pytest.param({"count": False}, id="bool as an int"),
        pytest.param({"flag": 1}, id="int as a bool"),
        pytest.param({"name": b"x"}, id="bytes as a string"),
        pytest.param({"name": "\ud800"}, id="lone surrogate"),
    ],
)
def test_a_row_holding_a_value_not_taken_leaves_the_whole_append_undone(value: dict[str, Any]) -> None:
    buffer = _buffer()
    assert buffer.append([{"name": "a", "ts": 1, "price": 1.0, "count": 1, "flag": True}], 1)
    assert not buffer.append([{"name": "b", "ts": 2, "price": 2.0}, {"ts": 3, **value}], 0)
    assert len(buffer) == 1
    counts, batch = columns_to_batch(buffer, SCHEMA)
    assert counts == [0, 1] and batch.column("name").to_pylist() == ["a"]


def test_rows_that_are_not_plain_dicts_are_not_taken() -> None:
    buffer = _buffer()
    assert not buffer.append([defaultdict(lambda: None, {"name": "a"})], 0)
    assert len(buffer) == 0


def test_truncate_drops_the_rows_after_and_take_empties() -> None:
    buffer = _buffer()
    assert buffer.append([{"name": f"r{i}", "ts": i, "price": i / 2, "count": i} for i in range(5)], 0)
    buffer.truncate(2)
    with pytest.raises(ValueError, match="cannot truncate 2 rows to 3"):
        buffer.truncate(3)
    assert columns_to_batch(buffer, SCHEMA)[1].column("name").to_pylist() == ["r0", "r1"]
    assert buffer.append([{"name": "again"}], 0)
    assert columns_to_batch(buffer, SCHEMA)[1].column("name").to_pylist() == ["again"]


def test_nested_columns_have_no_kind() -> None:
    assert column_kinds(pa.schema([("levels", pa.list_(pa.float64()))])) is None
    with pytest.raises(ValueError, match="no column kind"):
        ColumnBuffer([("levels", "list")])
