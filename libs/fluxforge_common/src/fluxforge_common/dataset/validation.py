"""Checking a dataset (a directory or `s3://BUCKET/PREFIX`) against the layout, and repairing the legacy layout.

`validate_dataset` reports every way a directory or file can make some reader
return wrong, missing or null values: the legacy `symbol=BTC-USDT` form over
files holding `BTC/USDT` (a "partition format mismatch"), paths that do not
decode, files whose own `exchange`/`symbol`/`ts` columns disagree with their
path, schema drift, leftover temporaries and unreadable files, and what
interrupted runs left to recover (`dataset.interrupted`), and partitions whose
files were computed under different feature configurations (`dataset.provenance`).
`rewrite_legacy_layout` moves legacy-form files to the encoded partition their
`symbol` column names. Both reach the dataset as the reader does (`DatasetRoot`:
one recursive listing, files opened through pyarrow), so a local and an S3 root
are checked by the same code; only the journals of interrupted runs, which live
and are locked on the machine that ran them, are looked for in local roots alone.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fluxforge_common.dataset.compaction_marker import MARKER_NAME, parse_marker, visible_files
from fluxforge_common.dataset.interrupted import find_interrupted
from fluxforge_common.dataset.location import DatasetRoot, dataset_root
from fluxforge_common.dataset.partitioning import (
    CHANNELS,
    DEADLETTER_TABLE,
    PARQUET_TABLES,
    RAW_TABLE,
    parse_segment,
    partition_dir,
    utc_date,
)
from fluxforge_common.dataset.provenance import Provenance, differing_parameters, read_provenance
from fluxforge_common.dataset.reader import DatasetWarning, file_symbols, scan_partitions
from fluxforge_common.dataset.schema import TS_TYPE
from fluxforge_common.storage.base import is_temp_name

if TYPE_CHECKING:
    from fluxforge_common.config.settings import S3Config

Severity = Literal["error", "warning"]

_LAYOUTS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    # table -> (partition keys in order, accepted file suffixes)
    **{table: (("exchange", "symbol", "date"), (".parquet",)) for table in PARQUET_TABLES},
    RAW_TABLE: (("exchange", "channel", "date"), (".ndjson", ".ndjson.zst")),
    DEADLETTER_TABLE: (("date",), (".ndjson",)),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: `path` relative to the root, "error" (readers get wrong data) or "warning"."""

    path: str
    severity: Severity
    message: str


def validate_dataset(root: str | Path | DatasetRoot, *, s3: S3Config | None = None) -> list[Problem]:
    """Every problem found under `root` (reached as `s3` says when it is on S3), sorted by path;
    an empty list means the dataset is clean."""
    location = dataset_root(root, s3=s3)
    if not location.exists():
        return [Problem(".", "error", f"dataset root {location.uri!r} is not a directory")]
    tree = _Tree(*location.walk(""))
    unsealed: set[str] = set()
    problems: list[Problem] = []
    if isinstance(location.filesystem, pafs.LocalFileSystem):
        unsealed, interrupted = _interrupted_runs(Path(location.path))
        problems.extend(interrupted)
    problems.extend(_leftover_temps(tree.files, unsealed))
    for name, is_dir in tree.entries(""):
        if name.startswith("."):
            continue
        if not is_dir:
            problems.append(Problem(name, "warning", "stray file at the dataset root"))
        elif name not in _LAYOUTS:
            known = ", ".join(sorted(_LAYOUTS))
            problems.append(Problem(name, "warning", f"unknown top-level table (known: {known})"))
        else:
            problems.extend(_check_table(location, tree, name))
    return sorted(problems, key=lambda p: (p.path, p.message))


class _Tree:
    """One recursive listing of the root as directories and their entries (S3 has no directory to list)."""

    def __init__(self, files: list[str], dirs: list[str]) -> None:
        self.files = files
        self._children: dict[str, dict[str, bool]] = {}
        for path, is_dir in [*((d, True) for d in dirs), *((f, False) for f in files)]:
            parent, _, name = path.rpartition("/")
            self._children.setdefault(parent, {})[name] = is_dir
            while parent:  # a key implies its prefixes are directories
                parent, _, name = parent.rpartition("/")
                self._children.setdefault(parent, {})[name] = True

    def entries(self, directory: str) -> list[tuple[str, bool]]:
        """(name, is a directory) of each entry of `directory` ("" = the root), sorted by name."""
        return sorted(self._children.get(directory, {}).items())


def _interrupted_runs(base: Path) -> tuple[set[str], list[Problem]]:
    """The unsealed segments interrupted runs left in local root `base`, and what to report about them."""
    found = find_interrupted(base)
    recover = f"run `fluxforge recover {base}`"
    problems = [
        Problem(
            segment.path,
            "error",
            f"unsealed raw segment of an interrupted run: received ticks to recover, not a temporary; {recover}",
        )
        for segment in found.segments
    ]
    for journal in found.journals:
        problems.append(
            Problem(
                journal.relative_to(base).as_posix(),
                "error",
                f"journal of an interrupted run: the features of {', '.join(found.dates) or 'its dates'} "
                f"may lack rows; {recover}",
            )
        )
    for journal in found.running:
        problems.append(
            Problem(
                journal.relative_to(base).as_posix(),
                "warning",
                "a run is writing into this dataset: its open raw segments are unsealed until it ends",
            )
        )
    return {segment.path for segment in found.segments}, problems


def _leftover_temps(files: list[str], unsealed: set[str]) -> Iterator[Problem]:
    for rel in files:
        if is_temp_name(rel.rsplit("/", 1)[-1]) and rel not in unsealed:
            yield Problem(rel, "warning", _TEMP_MEANING.get(rel.split("/", 1)[0], _TEMP_UNKNOWN))


_TEMP_UNKNOWN: Final = "leftover temporary file of an interrupted write; inspect it before deleting"
_TEMP_MEANING: Final = {
    **{
        table: "leftover temporary file of an interrupted Parquet write; its rows are rebuilt from raw/ "
        "(`fluxforge reprocess`): safe to delete"
        for table in PARQUET_TABLES
    },
    RAW_TABLE: "leftover temporary file of an interrupted write (the sink rewrites it from Kafka, `fluxforge "
    "sync download` fetches it again and removes it): safe to delete",
    DEADLETTER_TABLE: "leftover temporary file of an interrupted dead-letter write: it may hold the only "
    "copy of rejected input; inspect it before deleting",
}


def _check_table(location: DatasetRoot, tree: _Tree, table: str) -> list[Problem]:
    keys, suffixes = _LAYOUTS[table]
    problems: list[Problem] = []
    schemas: dict[str, pa.Schema] = {}
    for rel_dir, values, listed in _leaves(tree, table, keys, problems):
        origins: dict[str, Provenance] = {}
        times: list[pa.ChunkedArray] = []  # hf: the ts of every file, for rows doubled across files
        names = (
            _compaction_visible(location, rel_dir, listed, problems) if table in PARQUET_TABLES else listed
        )
        for name in names:
            rel = f"{rel_dir}/{name}"
            if not name.endswith(suffixes):
                problems.append(
                    Problem(rel, "warning", f"not a {'/'.join(suffixes)} file; readers skip or choke on it")
                )
            elif table in PARQUET_TABLES:
                skipped = name.startswith("_")
                if skipped:
                    problems.append(
                        Problem(rel, "warning", "pyarrow skips '_'-prefixed files but DuckDB reads them")
                    )
                schema = _check_parquet_file(
                    location, rel, values, problems, times if table == "hf" and not skipped else None
                )
                if schema is not None:
                    schemas[rel] = schema.remove_metadata()
                    if (origin := read_provenance(schema.metadata)) is not None:
                        origins[rel] = origin
        problems.extend(_mixed_configurations(rel_dir, origins))
        problems.extend(_doubled_grid_rows(rel_dir, times))
    problems.extend(_schema_drift(schemas))
    return problems


def _compaction_visible(
    location: DatasetRoot, rel_dir: str, names: list[str], problems: list[Problem]
) -> list[str]:
    """The names of a partition its compaction marker makes visible; the others are reported."""
    marker = None
    if MARKER_NAME in names:
        where = f"{rel_dir}/{MARKER_NAME}"
        try:
            with location.open_input(where) as f:
                marker = parse_marker(f.read(), where)
        except (ValueError, OSError) as exc:
            problems.append(Problem(where, "error", str(exc)))
            return [n for n in names if n != MARKER_NAME]
    visible = visible_files(names, marker)
    if visible is None:
        problems.append(
            Problem(
                rel_dir,
                "error",
                "its compaction marker lists files that are missing; run `fluxforge compact`",
            )
        )
        return [n for n in names if n != MARKER_NAME]
    for name in sorted(set(names) - set(visible) - {MARKER_NAME}):
        problems.append(
            Problem(
                f"{rel_dir}/{name}",
                "warning",
                "hidden by the partition's marker (replaced by compaction or reprocess and kept by a copy "
                "that sync made, or left by an interrupted compaction): FluxForge's readers skip it, "
                "globbing readers (DuckDB) do not; `fluxforge compact` removes it",
            )
        )
    return visible


def _mixed_configurations(rel_dir: str, origins: dict[str, Provenance]) -> Iterator[Problem]:
    """One partition whose files were computed under different feature parameters."""
    by_config: dict[str, list[str]] = {}
    for rel in sorted(origins):
        by_config.setdefault(origins[rel].config_fingerprint, []).append(rel)
    if len(by_config) < 2:
        return
    groups = sorted(by_config.values(), key=len, reverse=True)
    described = "; ".join(
        f"{origins[files[0]].config_fingerprint}: {len(files)} file(s), e.g. {files[0].rsplit('/', 1)[1]}"
        for files in groups
    )
    changed = differing_parameters(origins[groups[0][0]], origins[groups[1][0]])
    yield Problem(
        rel_dir,
        "error",
        f"files written under {len(groups)} feature configurations ({described}); "
        f"they differ in {', '.join(changed) or 'parameters not recorded'}: rebuild the date under one "
        "configuration (`fluxforge reprocess`)",
    )


def _leaves(
    tree: _Tree, rel_dir: str, keys: tuple[str, ...], problems: list[Problem], values: tuple[str, ...] = ()
) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    """Walk `keys` levels of `key=value` directories, yielding well-formed leaves and their file names.

    Malformed directories are reported and not descended into; files above
    the leaf level and directories inside a leaf are reported as misplaced.
    """
    visible = [(name, is_dir) for name, is_dir in tree.entries(rel_dir) if not name.startswith(".")]
    depth = len(values)
    if depth == len(keys):
        for name, is_dir in visible:
            if is_dir:
                problems.append(
                    Problem(f"{rel_dir}/{name}", "warning", "unexpected directory in a partition")
                )
        yield rel_dir, dict(zip(keys, values, strict=True)), [name for name, is_dir in visible if not is_dir]
        return
    key = keys[depth]
    for name, is_dir in visible:
        rel = f"{rel_dir}/{name}"
        if not is_dir:
            problems.append(
                Problem(rel, "warning", f"file outside a partition directory (expected {key}=...)")
            )
            continue
        try:
            value = parse_segment(name, key)
            if key == "channel" and value not in CHANNELS:
                raise ValueError(f"channel must be one of {CHANNELS}, got {value!r}")
        except ValueError as exc:
            problems.append(Problem(rel, "error", f"malformed partition directory: {exc}"))
            continue
        yield from _leaves(tree, rel, keys, problems, (*values, value))


def _doubled_grid_rows(rel_dir: str, times: list[pa.ChunkedArray]) -> Iterator[Problem]:
    """An hf partition holds one row per grid point: a ts twice means rows written twice."""
    rows = sum(len(ts) - ts.null_count for ts in times)  # null ts are reported by `_check_ts`
    if rows < 2:
        return
    distinct = pc.count_distinct(pa.chunked_array([chunk for ts in times for chunk in ts.chunks])).as_py()
    if distinct < rows:
        yield Problem(
            rel_dir,
            "error",
            f"{rows - distinct} hf row(s) repeat a ts of the partition (one row per grid point): rows "
            "were written twice, e.g. by a sink group started over on the same root; rebuild the date "
            "(`fluxforge reprocess`) or remove the files that overlap",
        )


def _check_parquet_file(
    location: DatasetRoot,
    rel: str,
    expected: dict[str, str],
    problems: list[Problem],
    times: list[pa.ChunkedArray] | None = None,
) -> pa.Schema | None:
    """Check one data file against its partition; returns its schema (with metadata), or None if unreadable.

    The file's ts column, in milliseconds, goes to `times` when given.
    """
    try:
        parquet = pq.ParquetFile(location.full(rel), filesystem=location.filesystem)
        schema = parquet.schema_arrow
        missing = [c for c in ("exchange", "symbol", "ts") if c not in schema.names]
        if missing:
            problems.append(Problem(rel, "error", f"lacks the column(s) {missing} every row must carry"))
            return schema
        table = parquet.read(columns=["exchange", "symbol", "ts"])
    except (OSError, pa.ArrowException) as exc:
        problems.append(Problem(rel, "error", f"unreadable or corrupt Parquet: {exc}"))
        return None
    if table.num_rows == 0:
        problems.append(Problem(rel, "warning", "file has no rows"))
        return schema
    exchanges = _distinct(table.column("exchange"))
    if exchanges != [expected["exchange"]]:
        problems.append(
            Problem(rel, "error", f"exchange column holds {exchanges}, path says {expected['exchange']!r}")
        )
    symbols = _distinct(table.column("symbol"))
    if symbols != [expected["symbol"]]:
        only = symbols[0] if len(symbols) == 1 else None
        if only is not None and "/" in only and "/" not in expected["symbol"]:
            message = (
                f"partition format mismatch (legacy layout): path says symbol={expected['symbol']!r}, the file's "
                f"symbol column {only!r}; hive-partitioned readers return the path's value; run rewrite_legacy_layout"
            )
        else:
            message = f"symbol column holds {symbols[:10]}, path says {expected['symbol']!r}"
        problems.append(Problem(rel, "error", message))
    problems.extend(_check_ts(table.column("ts"), rel, expected["date"]))
    if times is not None and (ms := _as_ms(table.column("ts"))) is not None:
        times.append(ms)
    return schema


def _distinct(column: pa.ChunkedArray) -> list[str | None]:
    """Distinct values, nulls last, for comparison and for messages."""
    values: list[str | None] = pc.unique(column).to_pylist()
    return sorted(values, key=lambda v: (v is None, v or ""))


def _as_ms(ts: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """A ts column as int64 milliseconds (files may store a timestamp of any unit, or integer ms)."""
    if pa.types.is_timestamp(ts.type):
        return ts.cast(pa.timestamp("ms", tz=ts.type.tz), safe=False).cast(pa.int64())
    if pa.types.is_integer(ts.type):
        return ts.cast(pa.int64())
    return None


def _check_ts(ts: pa.ChunkedArray, rel: str, date: str) -> Iterator[Problem]:
    if ts.type != TS_TYPE:
        yield Problem(rel, "warning", f"ts is {ts.type}, expected {TS_TYPE}")
    ms = _as_ms(ts)
    if ms is None:
        yield Problem(rel, "error", f"ts column of type {ts.type} is not a time")
        return
    if ts.null_count:
        yield Problem(rel, "error", f"{ts.null_count} row(s) have a null ts")
    bounds = pc.min_max(ms)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is not None and (utc_date(low) != date or utc_date(high) != date):
        yield Problem(
            rel, "error", f"ts spans UTC dates {utc_date(low)}..{utc_date(high)}, path says date={date}"
        )


def _schema_drift(schemas: dict[str, pa.Schema]) -> Iterator[Problem]:
    """Compare each file with the table's most common schema (column set and types)."""
    if len(schemas) < 2:
        return
    reference, _ = Counter(schemas.values()).most_common(1)[0]
    ref_types = dict(zip(reference.names, reference.types, strict=True))
    for rel, schema in schemas.items():
        if schema.equals(reference):
            continue
        types = dict(zip(schema.names, schema.types, strict=True))
        changed = [
            f"{n}: {ref_types[n]} -> {t}" for n, t in types.items() if n in ref_types and t != ref_types[n]
        ]
        added = [n for n in types if n not in ref_types]
        missing = [n for n in ref_types if n not in types]
        details = "; ".join(
            text
            for text in (
                f"type changes {changed}" if changed else "",
                f"extra columns {added}" if added else "",
                f"missing columns {missing}" if missing else "",
                "" if changed or added or missing else "column order or nullability differs",
            )
            if text
        )
        severity: Severity = "error" if changed else "warning"
        yield Problem(rel, severity, f"schema drift from the table's most common schema: {details}")


def rewrite_legacy_layout(
    root: str | Path, *, dry_run: bool = True, s3: S3Config | None = None
) -> list[tuple[str, str]]:
    """Move legacy-form files (`symbol=BTC-USDT` holding `BTC/USDT`) to their encoded partition.

    `root` is a directory or `s3://BUCKET/PREFIX` (reached as `s3` says).
    Returns the (old, new) file paths, relative to `root`, that are (or with
    `dry_run`, would be) moved. A file whose symbol column holds more than one
    value, or whose target already exists (on S3: with other bytes), is left
    in place with a `DatasetWarning`, and so is a compacted partition: its
    marker and files cannot move at once, and a reader between the two would
    find neither its old nor its new files. Each move is `StorageBackend.move`: locally a
    rename (emptied legacy directories are removed), on S3 a verified copy then
    the delete of the original; a rewrite interrupted between the two leaves
    equal copies, which the next run finishes moving.
    """
    location = dataset_root(root, s3=s3)
    moves: list[tuple[str, str]] = []
    for table in PARQUET_TABLES:
        partitions, _malformed = scan_partitions(location, table)
        for part in partitions:
            if "/" in part.symbol:  # unified symbols always have one: already the encoded form
                continue
            if location.filesystem.get_file_info(location.full(f"{part.path}/{MARKER_NAME}")).is_file:
                warnings.warn(
                    f"{part.path}: compacted ({MARKER_NAME}), left in place; readers read it as it is",
                    DatasetWarning,
                    stacklevel=2,
                )
                continue
            for old in part.files:
                symbols = file_symbols(location, old)
                if symbols == {part.symbol}:
                    continue
                if len(symbols) != 1:
                    warnings.warn(
                        f"{old}: symbol column holds {sorted(symbols)}; left in place",
                        DatasetWarning,
                        stacklevel=2,
                    )
                    continue
                new = (
                    f"{partition_dir(table, part.exchange, symbols.pop(), part.date)}/{old.rsplit('/', 1)[1]}"
                )
                if not _free_or_equal(location, new, old):
                    warnings.warn(f"{old}: {new} already exists; left in place", DatasetWarning, stacklevel=2)
                    continue
                moves.append((old, new))
    if not dry_run and moves:
        from fluxforge_common.config.settings import S3Config  # the config imports this package
        from fluxforge_common.storage.location import storage_at

        storage = storage_at(root, s3 or S3Config())
        for old, new in moves:
            storage.move(old, new)
    return moves


def _free_or_equal(location: DatasetRoot, target: str, source: str) -> bool:
    """True when nothing is at `target`, or (on S3, which moves by copying) a copy of `source`
    that an interrupted move left; locally a move is a rename, so a file there is someone else's."""
    info = location.filesystem.get_file_info(location.full(target))
    if info.type == pafs.FileType.NotFound:
        return True
    if isinstance(location.filesystem, pafs.LocalFileSystem):
        return False
    with location.open_input(target) as there, location.open_input(source) as here:
        return bool(there.read() == here.read())
