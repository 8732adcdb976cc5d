"""`Selection`: rows chosen from a table, handed over as Arrow, Polars or pandas as the caller asks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
import pyarrow.dataset as ds
from fluxforge_common.dataset.reader import TableScan

if TYPE_CHECKING:
    import polars as pl


class Scan(Protocol):
    """A table's chosen files, read on demand (`TableScan`, `RawScan`, or rows already in memory)."""

    @property
    def table(self) -> str: ...

    @property
    def files(self) -> tuple[str, ...]: ...

    @property
    def columns(self) -> list[str] | None: ...

    def to_table(self) -> pa.Table: ...


class InMemory:
    """Rows already computed (`fluxforge.features`), behind the `Scan` interface."""

    def __init__(self, table: str, rows: pa.Table) -> None:
        self.table = table
        self.files: tuple[str, ...] = ()
        self.columns: list[str] | None = None
        self._rows = rows

    def to_table(self) -> pa.Table:
        return self._rows


class Selection:
    """What a filter chose; nothing is read until `to_arrow`, `to_polars` or `to_pandas` is called.

    `files` are the data files that survived partition pruning (relative to the
    dataset root): only they are opened.
    """

    def __init__(self, scan: Scan) -> None:
        self.table = scan.table
        self.files = scan.files
        self.columns = scan.columns
        self._scan = scan

    def __repr__(self) -> str:
        return f"<Selection of {self.table!r}: {len(self.files)} file(s)>"

    def to_arrow(self) -> pa.Table:
        """The rows as a pyarrow Table, read now."""
        return self._scan.to_table()

    def to_polars(self) -> pl.LazyFrame:
        """A Polars LazyFrame: Parquet tables are scanned when it is collected, with the filters and
        columns pushed into the scan (further `.filter`/`.select` are pushed down too)."""
        _require("polars", "polars")
        import polars as pl

        frame: pl.LazyFrame = pl.scan_pyarrow_dataset(self.to_dataset())
        return frame if self.columns is None else frame.select(self.columns)

    def to_dataset(self) -> ds.Dataset:
        """A pyarrow Dataset of the chosen rows with all their columns (`columns` is applied by the
        `to_*` methods), for DuckDB (`con.register`) or pyarrow scans; lazy for Parquet tables."""
        scan = self._scan
        if isinstance(scan, TableScan):
            return scan.dataset if scan.filter is None else scan.dataset.filter(scan.filter)
        return ds.dataset(scan.to_table())

    def to_pandas(self) -> Any:
        """A pandas DataFrame (times as UTC-aware datetimes), read now."""
        _require("pandas", "pandas")
        return self.to_arrow().to_pandas()


def _require(module: str, extra: str) -> None:
    """Fail with how to install an optional dependency when it is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ImportError(f"this needs {module}: pip install 'fluxforge[{extra}]'")
