"""Reading the Parquet tables back: `read_table` and `list_partitions`.

Partitions are chosen from the decoded directory names, and rows by a filter
on the files' own `exchange`/`symbol`/`ts` columns, pushed down to row-group
statistics. The files' columns, not the path, are the truth: that is what
reads legacy `symbol=BTC-USDT` partitions right (a hive-partitioned read would
put the path's `BTC-USDT` in place of the file's `BTC/USDT`); they are
reported with a `DatasetWarning` that points at `rewrite_legacy_layout`.

A root is a local directory or an `s3://BUCKET/PREFIX` location, read in place
through pyarrow's S3FileSystem (`DatasetRoot`); on S3 the partitions come from
one recursive listing of the table.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from fluxforge_common.dataset.partitioning import check_table, parse_segment, utc_date
from fluxforge_common.dataset.schema import KEY_SCHEMA
from fluxforge_common.storage.s3url import is_s3_url, parse_s3_url

if TYPE_CHECKING:
    from fluxforge_common.config.settings import S3Config


class DatasetWarning(UserWarning):
    """Something about the dataset a reader should know: legacy layout, skipped dirs, no match."""


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """A `<table>/exchange=/symbol=/date=` directory as it is on disk, values decoded.

    `files` are the data files in it (relative to the dataset root), sorted,
    without the hidden or `_`-prefixed names that pyarrow would skip.
    """

    path: str
    exchange: str
    symbol: str
    date: str
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DatasetRoot:
    """Where a dataset is: a local directory (`filesystem` None) or `bucket/prefix` on an S3 filesystem."""

    base: str
    filesystem: Any = None

    def file(self, path: str) -> str:
        """The location of dataset path `path` for pyarrow."""
        return f"{self.base}/{path}" if self.base else path


def dataset_root(root: str | Path | DatasetRoot, s3: S3Config | None = None) -> DatasetRoot:
    """`root` as a `DatasetRoot`; an `s3://` root is reached with `s3` (storage.s3; its defaults if none)."""
    if isinstance(root, DatasetRoot):
        return root
    if isinstance(root, str) and is_s3_url(root):
        from fluxforge_common.config.settings import S3Config
        from fluxforge_common.storage.s3 import pyarrow_filesystem

        url = parse_s3_url(root)
        return DatasetRoot(f"{url.bucket}/{url.prefix}".rstrip("/"), pyarrow_filesystem(s3 or S3Config()))
    return DatasetRoot(str(Path(root)))


def is_data_file(name: str) -> bool:
    """A Parquet file readers count: not hidden, not `_`-prefixed (pyarrow skips those), `.parquet`."""
    return name.endswith(".parquet") and not name.startswith((".", "_"))


def scan_partitions(root: str | Path | DatasetRoot, table: str) -> tuple[list[PartitionInfo], list[str]]:
    """Well-formed partitions of `table` with data files, and the directories that are malformed.

    A directory is malformed when its name is not the expected `key=value` at
    that depth or its value does not decode; such paths are returned (relative
    to `root`) rather than read, since pyarrow would turn them into nulls.
    """
    where = dataset_root(root)
    if where.filesystem is not None:
        return _scan_listing(where, check_table(table))
    base = Path(where.base) / check_table(table)
    partitions: list[PartitionInfo] = []
    malformed: list[str] = []
    if not base.is_dir():
        return partitions, malformed
    for ex_dir in _subdirs(base):
        for sym_dir in _subdirs(ex_dir):
            for date_dir in _subdirs(sym_dir):
                rel = f"{table}/{ex_dir.name}/{sym_dir.name}/{date_dir.name}"
                try:
                    values = (
                        parse_segment(ex_dir.name, "exchange"),
                        parse_segment(sym_dir.name, "symbol"),
                        parse_segment(date_dir.name, "date"),
                    )
                except ValueError:
                    malformed.append(rel)
                    continue
                files = tuple(
                    f"{rel}/{entry.name}"
                    for entry in sorted(os.scandir(date_dir), key=lambda e: e.name)
                    if entry.is_file() and is_data_file(entry.name)
                )
                if files:
                    partitions.append(PartitionInfo(rel, *values, files))
    return partitions, malformed


def _scan_listing(where: DatasetRoot, table: str) -> tuple[list[PartitionInfo], list[str]]:
    """`scan_partitions` from one recursive listing (object stores have no directories to walk)."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(where.file(table), recursive=True, allow_not_found=True)
    by_dir: dict[str, list[str]] = {}
    prefix = where.file("")
    for info in where.filesystem.get_file_info(selector):
        parts = info.path[len(prefix) :].lstrip("/").split("/")
        if (
            info.type == pafs.FileType.File
            and len(parts) == 5
            and not any(p.startswith(".") for p in parts[1:4])
        ):
            by_dir.setdefault("/".join(parts[:4]), []).append(parts[4])
    partitions: list[PartitionInfo] = []
    malformed: list[str] = []
    for rel in sorted(by_dir):
        _table, ex, sym, date = rel.split("/")
        try:
            values = (
                parse_segment(ex, "exchange"),
                parse_segment(sym, "symbol"),
                parse_segment(date, "date"),
            )
        except ValueError:
            malformed.append(rel)
            continue
        files = tuple(f"{rel}/{name}" for name in sorted(by_dir[rel]) if is_data_file(name))
        if files:
            partitions.append(PartitionInfo(rel, *values, files))
    return partitions, malformed


def _subdirs(directory: Path) -> list[Path]:
    return sorted(
        Path(entry.path)
        for entry in os.scandir(directory)
        if entry.is_dir() and not entry.name.startswith(".")
    )


def list_partitions(root: str | Path | DatasetRoot, table: str) -> list[PartitionInfo]:
    """The partitions of `table` that hold data, sorted by path; warns about skipped malformed dirs."""
    partitions, malformed = scan_partitions(root, table)
    _warn_malformed(malformed)
    return partitions


def _warn_malformed(malformed: list[str]) -> None:
    if malformed:
        warnings.warn(
            f"skipped {len(malformed)} malformed partition director{'y' if len(malformed) == 1 else 'ies'} "
            f"(first: {malformed[0]!r}); run validate_dataset for details",
            DatasetWarning,
            stacklevel=3,
        )


def file_symbols(path: str | Path, filesystem: Any = None) -> set[str]:
    """Distinct values of a Parquet file's `symbol` column (reads that one column only)."""
    column = pq.read_table(path, columns=["symbol"], filesystem=filesystem).column("symbol")
    return {value for value in pc.unique(column).to_pylist() if value is not None}


def read_table(
    storage_root: str | Path | DatasetRoot,
    table: str,
    *,
    exchange: str | None = None,
    symbol: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """Rows of `table` for `exchange`/`symbol` (unified form, `BTC/USDT`) with `start_ms <= ts < end_ms`.

    Every filter is optional. Rows come in partition order, then file-name
    order (time order for the writers' stems). Files whose schemas differ by
    added columns are unified (missing columns read as null). When nothing
    matches, the result is an empty table (with the table's schema when any
    file of it exists) and a `DatasetWarning` says what was looked for and what
    exists.
    """
    root = dataset_root(storage_root)
    fs = root.filesystem
    partitions, malformed = scan_partitions(root, table)
    _warn_malformed(malformed)
    first_date = utc_date(start_ms) if start_ms is not None else None
    last_date = utc_date(end_ms - 1) if end_ms is not None else None
    chosen: list[PartitionInfo] = []
    legacy_form: list[str] = []
    for part in partitions:
        if exchange is not None and part.exchange != exchange:
            continue
        if (first_date is not None and part.date < first_date) or (
            last_date is not None and part.date > last_date
        ):
            continue
        # Unified symbols always contain "/", so a path value without one is checked against the file.
        legacy = "/" not in part.symbol and file_symbols(root.file(part.files[0]), fs) != {part.symbol}
        if legacy:
            legacy_form.append(part.path)
        elif symbol is not None and part.symbol != symbol:
            continue
        chosen.append(part)
    if legacy_form:
        warnings.warn(
            f"{len(legacy_form)} partition(s) of {table!r} use the legacy layout, whose symbol= value differs from "
            f"the files' symbol column (first: {legacy_form[0]!r}); read by the column. Hive-partitioned readers "
            "(pyarrow, DuckDB, Polars) will return the path's value: run rewrite_legacy_layout to fix the layout",
            DatasetWarning,
            stacklevel=2,
        )
    files = [root.file(f) for part in chosen for f in part.files]
    if not files:
        _warn_no_match(table, partitions, exchange, symbol, first_date, last_date)
        return _empty(_any_schema(root, partitions), columns)
    schema = _unified_schema(files, fs)
    if columns is not None and (unknown := [c for c in columns if c not in schema.names]):
        raise ValueError(f"{table} has no column(s) {unknown}; it has {schema.names}")
    row_filter = _row_filter(schema, exchange, symbol, start_ms, end_ms)
    result = ds.dataset(files, schema=schema, format="parquet", filesystem=fs).to_table(
        columns=list(columns) if columns is not None else None, filter=row_filter
    )
    if result.num_rows == 0:
        warnings.warn(
            f"no rows of {table!r} match exchange={exchange!r} symbol={symbol!r} ts in "
            f"[{start_ms}, {end_ms}) in the {len(files)} file(s) of the matching partitions",
            DatasetWarning,
            stacklevel=2,
        )
    return result


def _row_filter(
    schema: pa.Schema, exchange: str | None, symbol: str | None, start_ms: int | None, end_ms: int | None
) -> ds.Expression | None:
    conditions: list[ds.Expression] = []
    if exchange is not None:
        conditions.append(pc.field("exchange") == exchange)
    if symbol is not None:
        conditions.append(pc.field("symbol") == symbol)
    ts_type = schema.field("ts").type
    if start_ms is not None:
        conditions.append(pc.field("ts") >= _ts_scalar(start_ms, ts_type))
    if end_ms is not None:
        conditions.append(pc.field("ts") < _ts_scalar(end_ms, ts_type))
    if not conditions:
        return None
    expr = conditions[0]
    for condition in conditions[1:]:
        expr = expr & condition
    return expr


def _ts_scalar(ms: int, ts_type: pa.DataType) -> pa.Scalar:
    """`ms` in the type of the files' ts column (integer ms in some older files, else a timestamp)."""
    if pa.types.is_integer(ts_type):
        return pa.scalar(ms, ts_type)
    return pa.scalar(ms, pa.timestamp("ms", tz="UTC")).cast(ts_type)


def _unified_schema(files: list[str], filesystem: Any) -> pa.Schema:
    schemas = [pq.read_schema(f, filesystem=filesystem).remove_metadata() for f in files]
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"files disagree on column types, run validate_dataset: {exc}") from exc


def _any_schema(root: DatasetRoot, partitions: list[PartitionInfo]) -> pa.Schema:
    """The schema of some file of the table, so an empty result still has the right columns."""
    if partitions:
        return pq.read_schema(root.file(partitions[0].files[0]), filesystem=root.filesystem).remove_metadata()
    return KEY_SCHEMA


def _empty(schema: pa.Schema, columns: Sequence[str] | None) -> pa.Table:
    if columns is None:
        return schema.empty_table()
    fields = [schema.field(c) if c in schema.names else pa.field(c, pa.null()) for c in columns]
    return pa.schema(fields).empty_table()


def _warn_no_match(
    table: str,
    partitions: list[PartitionInfo],
    exchange: str | None,
    symbol: str | None,
    first_date: str | None,
    last_date: str | None,
) -> None:
    if not partitions:
        message = f"table {table!r} has no data files"
    else:
        exchanges = sorted({p.exchange for p in partitions})
        symbols = sorted({p.symbol for p in partitions})
        dates = sorted({p.date for p in partitions})
        message = (
            f"no partition of {table!r} matches exchange={exchange!r} symbol={symbol!r} "
            f"dates {first_date or '..'}..{last_date or '..'}; it has exchanges {exchanges}, "
            f"symbols {symbols[:20]}{' ...' if len(symbols) > 20 else ''}, dates {dates[0]}..{dates[-1]}"
        )
    warnings.warn(message, DatasetWarning, stacklevel=3)
