"""The columns every Parquet row carries, whatever its table, and the native kinds of columns."""

from __future__ import annotations

from typing import Final

import pyarrow as pa

# Event time as UTC milliseconds: what DuckDB, Polars and pandas show as a time without a unit guess.
TS_TYPE: Final = pa.timestamp("ms", tz="UTC")
KEY_SCHEMA: Final = pa.schema([("exchange", pa.string()), ("symbol", pa.string()), ("ts", TS_TYPE)])


def column_kinds(schema: pa.Schema) -> list[tuple[str, str]] | None:
    """The `ColumnBuffer` kinds of `schema`'s columns, or None when one has no kind (nested)."""
    kinds: list[tuple[str, str]] = []
    for field in schema:
        kind = field.type
        if pa.types.is_float64(kind):
            kinds.append((field.name, "f64"))
        elif pa.types.is_int64(kind) or pa.types.is_timestamp(kind):
            kinds.append((field.name, "i64"))
        elif pa.types.is_boolean(kind):
            kinds.append((field.name, "bool"))
        elif pa.types.is_string(kind):
            kinds.append((field.name, "str"))
        else:
            return None
    return kinds
