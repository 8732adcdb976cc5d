"""Reading a dataset root back, and comparing two of them table by table."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from fluxforge_common.dataset.reader import read_table
from fluxforge_common.features import TABLES

SORT_KEYS = [("exchange", "ascending"), ("symbol", "ascending"), ("ts", "ascending")]


def read_dataset(root: Path | str) -> dict[str, pa.Table]:
    """Every table of a dataset root, in a canonical row order (file layout does not matter)."""
    tables = {}
    for table in TABLES:
        data = read_table(root, table)
        keys = [*SORT_KEYS, ("duration_s", "ascending")] if table == "bars" else SORT_KEYS
        tables[table] = data.sort_by(keys) if data.num_rows else data
    return tables


def assert_same_dataset(actual: Path | str, expected: Path | str) -> None:
    a, b = read_dataset(actual), read_dataset(expected)
    for table in TABLES:
        assert a[table].num_rows == b[table].num_rows, table
        assert a[table].num_rows > 0, f"{table} is empty: the comparison would prove nothing"
        assert a[table].equals(b[table]), f"{table} differs"
