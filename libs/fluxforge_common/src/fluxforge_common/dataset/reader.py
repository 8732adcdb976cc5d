"""Reading the Parquet tables back: `read_table` and `list_partitions`.

Partitions are chosen from the decoded directory names, and rows by a filter
on the files' own `exchange`/`symbol`/`ts` columns, pushed down to row-group
statistics. The files' columns, not the path, are the truth: that is what
reads legacy `symbol=BTC-USDT` partitions right (a hive-partitioned read would
put the path's `BTC-USDT` in place of the file's `BTC/USDT`); they are
reported with a `DatasetWarning` that points at `rewrite_legacy_layout`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypedDict, Unpack

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fluxforge_common.dataset.compaction_marker import MARKER_NAME, parse_marker, visible_files
from fluxforge_common.dataset.location import DatasetRoot, dataset_root
from fluxforge_common.dataset.partitioning import check_table, parse_segment, utc_date
from fluxforge_common.dataset.provenance import read_provenance
from fluxforge_common.dataset.schema import KEY_SCHEMA


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


# (exchange, symbol, date) of a partition's path -> whether a read needs it.
PartitionFilter = Callable[[str, str, str], bool]


def is_data_file(name: str) -> bool:
    """A Parquet file readers count: not hidden, not `_`-prefixed (pyarrow skips those), `.parquet`."""
    return name.endswith(".parquet") and not name.startswith((".", "_"))


def scan_partitions(
    root: str | Path | DatasetRoot, table: str, wanted: PartitionFilter | None = None
) -> tuple[list[PartitionInfo], list[str]]:
    """Well-formed partitions of `table` with data files, and the directories that are malformed.

    `wanted(exchange, symbol, date)` prunes partitions by their path before any
    of their files (the marker included) is opened.

    A directory is malformed when its name is not the expected `key=value` at
    that depth or its value does not decode; such paths are returned (relative
    to `root`) rather than read, since pyarrow would turn them into nulls.
    Hidden directories (`.`-prefixed) are not looked into. A compacted
    partition's files are those its marker makes visible (`compaction_marker`);
    a listing taken while a compaction switched it is taken again. One listing
    of the table (one recursive LIST on S3), plus one marker read per partition.
    """
    location = dataset_root(root)
    for attempt in range(_RESCANS):
        scanned = _scan(location, check_table(table), wanted)
        if isinstance(scanned, tuple):
            return scanned
        time.sleep(_RESCAN_PAUSE_S * (attempt + 1))
    raise ValueError(
        f"{scanned}: its compaction marker lists files that stay missing (a compaction or an upload "
        "is under way, or files were deleted by hand); run `fluxforge compact` on the root to settle it"
    )


_RESCANS: Final = 6
_RESCAN_PAUSE_S: Final = 0.2


def _scan(
    location: DatasetRoot, table: str, wanted: PartitionFilter | None
) -> tuple[list[PartitionInfo], list[str]] | str:
    """`scan_partitions` once; the path of a partition whose listing must be retaken instead."""
    files, dirs = location.walk(table)
    leaves: dict[tuple[str, ...], list[str]] = {}
    for rel in dirs:
        parts = tuple(rel.split("/"))
        if len(parts) == 4 and not _hidden(parts):
            leaves.setdefault(parts, [])
    for rel in files:
        parts = tuple(rel.split("/"))
        if len(parts) == 5 and not _hidden(parts[:4]):
            leaves.setdefault(parts[:4], []).append(parts[4])
    partitions: list[PartitionInfo] = []
    malformed: list[str] = []
    for parts in sorted(leaves):
        path = "/".join(parts)
        try:
            values = (
                parse_segment(parts[1], "exchange"),
                parse_segment(parts[2], "symbol"),
                parse_segment(parts[3], "date"),
            )
        except ValueError:
            malformed.append(path)
            continue
        if wanted is not None and not wanted(*values):
            continue
        names = visible_names(location, path, leaves[parts])
        if names is None:
            return path
        data = [f"{path}/{name}" for name in names if is_data_file(name)]
        if data:
            partitions.append(PartitionInfo(path, *values, tuple(data)))
    return partitions, malformed


def visible_names(location: DatasetRoot, partition: str, names: list[str]) -> list[str] | None:
    """The names readers count in directory `partition` listed as `names`; None: list it again.

    The marker is read even when the listing lacks it: a listing taken while
    files of the directory are deleted may leave out names that still exist
    (s3proxy's filesystem backend drops the rest of a directory when one of its
    files vanishes mid-listing), and without the marker the replaced files the
    listing kept would count. With it, such a listing lacks a compacted file the
    marker lists and is taken again.
    """
    where = f"{partition}/{MARKER_NAME}"
    try:
        with location.open_input(where) as f:
            data = f.read()
    except FileNotFoundError:
        return None if MARKER_NAME in names else visible_files(names, None)  # listed, then removed: again
    return visible_files(names, parse_marker(data, where))


def _hidden(parts: tuple[str, ...]) -> bool:
    return any(part.startswith(".") for part in parts)


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


def file_symbols(root: str | Path | DatasetRoot, rel: str) -> set[str]:
    """Distinct values of the `symbol` column of Parquet file `rel` under `root` (reads that column only)."""
    location = dataset_root(root)
    column = pq.read_table(location.full(rel), columns=["symbol"], filesystem=location.filesystem).column(
        "symbol"
    )
    return {value for value in pc.unique(column).to_pylist() if value is not None}


Values = str | Sequence[str] | None


@dataclass(frozen=True, slots=True)
class TableScan:
    """What a read of one table will scan: the chosen files as one dataset, the row filter and columns.

    Built before any row is read, so callers can hand it to a lazy engine
    (`dataset.filter(filter)` for Polars) or read it at once (`to_table`).
    `files` are the data files of the partitions that survived pruning.
    """

    table: str
    dataset: ds.Dataset
    filter: ds.Expression | None
    columns: list[str] | None
    files: tuple[str, ...]
    replan: Callable[[], TableScan] | None = None

    def to_table(self) -> pa.Table:
        """The rows; when a chosen file vanished meanwhile (a compaction deleted what it replaced),
        the files are chosen again and read again."""
        scan = self
        for _ in range(_REREADS):
            try:
                return scan.dataset.to_table(columns=scan.columns, filter=scan.filter)
            except OSError:
                if scan.replan is None or not scan.vanished():
                    raise
                scan = scan.replan()
        return scan.dataset.to_table(columns=scan.columns, filter=scan.filter)

    def vanished(self) -> bool:
        """True when a file of this scan no longer exists."""
        if not isinstance(self.dataset, ds.FileSystemDataset):
            return False
        infos = self.dataset.filesystem.get_file_info(self.dataset.files)
        return any(info.type == pafs.FileType.NotFound for info in infos)


_REREADS: Final = 3


def scan_table(
    storage_root: str | Path | DatasetRoot,
    table: str,
    *,
    exchange: Values = None,
    symbol: Values = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    duration_s: int | None = None,
    columns: Sequence[str] | None = None,
) -> TableScan:
    """Choose the files of `table` for these filters from partition paths alone, before reading any row.

    `exchange` and `symbol` (unified form, `BTC/USDT`) take one value or
    several; `start_ms <= ts < end_ms`; `duration_s` picks one bar duration
    (bars only). Every filter is optional. Files whose schemas differ by added
    columns are unified (missing columns read as null). Warns (`DatasetWarning`)
    about skipped malformed directories, the legacy layout, and a selection
    that matches no partition (saying what exists). A file that vanishes while
    they are chosen (a compaction deleted what it replaced) makes them be chosen again.
    """
    root = dataset_root(storage_root)
    if duration_s is not None and table != "bars":
        raise ValueError(f"a bar duration filters the bars table only, not {table!r}")

    def plan() -> TableScan:
        for _ in range(_REREADS - 1):
            try:
                return _plan(root, table, exchange, symbol, start_ms, end_ms, duration_s, columns, plan)
            except FileNotFoundError:
                continue
        return _plan(root, table, exchange, symbol, start_ms, end_ms, duration_s, columns, plan)

    return plan()


def _plan(
    root: DatasetRoot,
    table: str,
    exchange: Values,
    symbol: Values,
    start_ms: int | None,
    end_ms: int | None,
    duration_s: int | None,
    columns: Sequence[str] | None,
    replan: Callable[[], TableScan],
) -> TableScan:
    """`scan_table` once: FileNotFoundError when a file it lists vanishes before its footer is read."""
    exchanges, symbols = value_set(exchange, "exchange"), value_set(symbol, "symbol")
    first_date = utc_date(start_ms) if start_ms is not None else None
    last_date = utc_date(end_ms - 1) if end_ms is not None else None

    def in_range(part_exchange: str, part_symbol: str, date: str) -> bool:
        # Unified symbols always contain "/": a path value without one is checked against the file below.
        return (
            (exchanges is None or part_exchange in exchanges)
            and (first_date is None or date >= first_date)
            and (last_date is None or date <= last_date)
            and (symbols is None or "/" not in part_symbol or part_symbol in symbols)
        )

    partitions, malformed = scan_partitions(root, table, in_range)
    _warn_malformed(malformed)
    chosen: list[PartitionInfo] = []
    legacy_form: list[str] = []
    for part in partitions:
        legacy = "/" not in part.symbol and file_symbols(root, part.files[0]) != {part.symbol}
        if legacy:
            legacy_form.append(part.path)
        elif symbols is not None and part.symbol not in symbols:
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
    files = tuple(f for part in chosen for f in part.files)
    wanted = list(columns) if columns is not None else None
    if not files:  # what the table has instead, for the warning and the columns of the empty result
        partitions, _ = scan_partitions(root, table)
        _warn_no_match(table, partitions, exchanges, symbols, first_date, last_date)
        empty = _empty(_any_schema(root, partitions), wanted)
        return TableScan(table, ds.dataset(empty), None, None, ())
    schema = _unified_schema(root, table, files)
    if wanted is not None and (unknown := [c for c in wanted if c not in schema.names]):
        raise ValueError(f"{table} has no column(s) {unknown}; it has {schema.names}")
    dataset = ds.dataset(
        [root.full(f) for f in files], schema=schema, format="parquet", filesystem=root.filesystem
    )
    row_filter = _row_filter(schema, exchanges, symbols, start_ms, end_ms, duration_s)
    return TableScan(table, dataset, row_filter, wanted, files, replan)


class TableFilters(TypedDict, total=False):
    """The filters of `scan_table`, for functions that pass them on."""

    exchange: Values
    symbol: Values
    start_ms: int | None
    end_ms: int | None
    duration_s: int | None
    columns: Sequence[str] | None


def read_table(
    storage_root: str | Path | DatasetRoot, table: str, **filters: Unpack[TableFilters]
) -> pa.Table:
    """Rows of `table` matching the filters of `scan_table`, as one Arrow table.

    Rows come in partition order, then file-name order (time order for the
    writers' stems). When nothing matches, the result is an empty table (with
    the table's schema when any file of it exists) and a `DatasetWarning` says
    what was looked for and what exists.
    """
    scan = scan_table(storage_root, table, **filters)
    result = scan.to_table()
    if scan.files and result.num_rows == 0:
        shown = ", ".join(f"{k}={v!r}" for k, v in filters.items() if k != "columns")
        warnings.warn(
            f"no rows of {table!r} match {shown or 'the selection'} in the {len(scan.files)} file(s) of the "
            "matching partitions",
            DatasetWarning,
            stacklevel=2,
        )
    return result


def value_set(values: Values, key: str) -> frozenset[str] | None:
    """A filter's accepted values (one or several), or None for no filter; ValueError on anything else."""
    if values is None:
        return None
    chosen = frozenset([values] if isinstance(values, str) else values)
    if not chosen or not all(isinstance(v, str) for v in chosen):
        raise ValueError(f"{key} must be a string or a non-empty list of strings, got {values!r}")
    return chosen


def _row_filter(
    schema: pa.Schema,
    exchanges: frozenset[str] | None,
    symbols: frozenset[str] | None,
    start_ms: int | None,
    end_ms: int | None,
    duration_s: int | None,
) -> ds.Expression | None:
    conditions: list[ds.Expression] = []
    if exchanges is not None:
        conditions.append(pc.field("exchange").isin(sorted(exchanges)))
    if symbols is not None:
        conditions.append(pc.field("symbol").isin(sorted(symbols)))
    ts_type = schema.field("ts").type
    if start_ms is not None:
        conditions.append(pc.field("ts") >= _ts_scalar(start_ms, ts_type))
    if end_ms is not None:
        conditions.append(pc.field("ts") < _ts_scalar(end_ms, ts_type))
    if duration_s is not None:
        conditions.append(pc.field("duration_s") == duration_s)
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


def _unified_schema(root: DatasetRoot, table: str, files: Sequence[str]) -> pa.Schema:
    """One schema for `files`; warns when they were written under different feature configurations."""
    schemas = [pq.read_schema(root.full(f), filesystem=root.filesystem) for f in files]
    _warn_mixed_configurations(table, files, schemas)
    try:
        return pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"files disagree on column types, run validate_dataset: {exc}") from exc


def _warn_mixed_configurations(table: str, files: Sequence[str], schemas: Sequence[pa.Schema]) -> None:
    first: dict[str, str] = {}
    for rel, schema in zip(files, schemas, strict=True):
        origin = read_provenance(schema.metadata)
        if origin is not None:
            first.setdefault(origin.config_fingerprint, rel)
    if len(first) > 1:
        warnings.warn(
            f"the {table!r} rows read come from files written under {len(first)} feature configurations "
            f"(config fingerprints {sorted(first)}; e.g. {sorted(first.values())[:2]}): rows computed with "
            "different parameters are mixed. Their `fluxforge.features` metadata says how they differ; "
            "`fluxforge validate` lists the partitions, `fluxforge reprocess` rebuilds them under one",
            DatasetWarning,
            stacklevel=4,
        )


def _any_schema(root: DatasetRoot, partitions: list[PartitionInfo]) -> pa.Schema:
    """The schema of some file of the table, so an empty result still has the right columns."""
    if partitions:
        return pq.read_schema(root.full(partitions[0].files[0]), filesystem=root.filesystem).remove_metadata()
    return KEY_SCHEMA


def _empty(schema: pa.Schema, columns: Sequence[str] | None) -> pa.Table:
    if columns is None:
        return schema.empty_table()
    fields = [schema.field(c) if c in schema.names else pa.field(c, pa.null()) for c in columns]
    return pa.schema(fields).empty_table()


def _warn_no_match(
    table: str,
    partitions: list[PartitionInfo],
    exchanges: frozenset[str] | None,
    symbols: frozenset[str] | None,
    first_date: str | None,
    last_date: str | None,
) -> None:
    if not partitions:
        message = f"table {table!r} has no data files"
    else:
        present_exchanges = sorted({p.exchange for p in partitions})
        present = sorted({p.symbol for p in partitions})
        dates = sorted({p.date for p in partitions})
        message = (
            f"no partition of {table!r} matches exchange={_shown(exchanges)} symbol={_shown(symbols)} "
            f"dates {first_date or '..'}..{last_date or '..'}; it has exchanges {present_exchanges}, "
            f"symbols {present[:20]}{' ...' if len(present) > 20 else ''}, dates {dates[0]}..{dates[-1]}"
        )
    warnings.warn(message, DatasetWarning, stacklevel=3)


def _shown(values: frozenset[str] | None) -> str:
    if values is None:
        return "None"
    return repr(next(iter(values))) if len(values) == 1 else repr(sorted(values))
