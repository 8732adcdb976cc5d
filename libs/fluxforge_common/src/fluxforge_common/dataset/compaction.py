"""Compaction: the small files of closed partitions merged into few large ones, atomically for readers.

Per partition dated before `before` (today's partitions are still being
written): the visible data files (`compaction_marker`) with the same feature
configuration are read, sorted by `ts` (stably: ties keep file-name, then row
order), cut into files of about `target_bytes` and written as
`compacted-g<generation>-<run>-<n>.parquet` (`compaction_marker`); then the marker switches readers to
them in one write; `grace_s` after the last switch, the replaced files are deleted. Files a sink
may still re-cut (named in its journal) are left out. A killed run leaves
files no reader counts, which the next run deletes before it starts over; a
partition with nothing left to merge is not touched, so a second run changes
nothing. The grace period is waited once per run, after every partition is
switched.

Provenance is kept: only files of one config fingerprint and schema version
are merged, and a merged file's `fluxforge.source` is `{"mode": "compaction",
"from": [...]}`, the sources of the files it holds (Kafka offset ranges merged
per topic-partition); `fluxforge.complete_ms` is the inputs' greatest, and other
`fluxforge.` keys are kept where all inputs agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fluxforge_common.dataset.compaction_marker import (
    MARKER_NAME,
    after_run,
    compacted_name,
    is_compacted,
    new_run,
    parse_marker,
    visible_files,
)
from fluxforge_common.dataset.interrupted import running_dates
from fluxforge_common.dataset.partitioning import check_table, parse_segment
from fluxforge_common.dataset.provenance import PREFIX, Provenance, fluxforge_version, read_provenance
from fluxforge_common.dataset.reader import is_data_file
from fluxforge_common.dataset.sink_journal import pending_sink_files
from fluxforge_common.kafka.completeness import COMPLETE_METADATA
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.writers.parquet import Compression, write_parquet

_READERS: Final = 8
_PROVENANCE_KEYS: Final = frozenset(Provenance("", "", "", "", "").metadata())


@dataclass(frozen=True, slots=True)
class PartitionCompaction:
    """What compaction did to one partition (files and bytes are its visible data files)."""

    path: str
    files_before: int
    bytes_before: int
    files_after: int
    bytes_after: int
    rows: int


@dataclass
class CompactionReport:
    """A run over a dataset: the partitions merged, those left as they were, and leftovers removed."""

    compacted: list[PartitionCompaction] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (partition, why)
    leftovers_removed: int = 0

    @property
    def files_before(self) -> int:
        return sum(p.files_before for p in self.compacted)

    @property
    def files_after(self) -> int:
        return sum(p.files_after for p in self.compacted)

    @property
    def bytes_before(self) -> int:
        return sum(p.bytes_before for p in self.compacted)

    @property
    def bytes_after(self) -> int:
        return sum(p.bytes_after for p in self.compacted)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.compacted)


@dataclass(frozen=True)
class _Input:
    name: str
    size: int
    rows: pa.Table
    provenance: Provenance | None
    metadata: Mapping[bytes, bytes]


def compact_dataset(
    storage: StorageBackend,
    tables: Iterable[str],
    *,
    before: str,
    target_bytes: int,
    grace_s: float,
    compression: Compression = "zstd",
    row_group_size: int = 65_536,
    on_partition: Callable[[PartitionCompaction], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CompactionReport:
    """Compact every partition of `tables` dated before `before` (YYYY-MM-DD) under `storage`."""
    report = CompactionReport()
    pending = pending_sink_files(storage)
    rebuilding = (
        running_dates(storage.root, rebuilds_only=True) if isinstance(storage, LocalStorage) else set()
    )
    replaced: list[str] = []
    for table in tables:
        for directory, names in sorted(_partitions(storage, check_table(table)).items()):
            try:
                date = parse_segment(directory.rsplit("/", 1)[1], "date")
            except ValueError:
                continue  # malformed: `fluxforge validate` reports it
            if date >= before:
                continue
            if date in rebuilding:
                report.skipped.append((directory, "a reprocess or recovery rebuilds this date now"))
                continue
            done = _compact_partition(
                storage, directory, names, pending, report, target_bytes, compression, row_group_size
            )
            if done is None:
                report.unchanged += 1
                continue
            result, inputs = done
            replaced += inputs
            report.compacted.append(result)
            if on_partition is not None:
                on_partition(result)
    if replaced:
        sleep(grace_s)  # reads planned before a switch may still open the files it replaced
        for path in replaced:
            storage.delete(path)
    return report


def _partitions(storage: StorageBackend, table: str) -> dict[str, list[str]]:
    """`<table>/exchange=/symbol=/date=` directory -> the names of the files in it, from one listing."""
    found: dict[str, list[str]] = {}
    for path in storage.list_files(table):
        parts = path.split("/")
        if len(parts) == 5 and not any(part.startswith(".") for part in parts[:4]):
            found.setdefault("/".join(parts[:4]), []).append(parts[4])
    return found


def _compact_partition(
    storage: StorageBackend,
    directory: str,
    names: list[str],
    pending: set[str],
    report: CompactionReport,
    target_bytes: int,
    compression: Compression,
    row_group_size: int,
) -> tuple[PartitionCompaction, list[str]] | None:
    """Merge one partition and switch readers to the result; returns it and the paths it replaced."""
    marker = None
    if MARKER_NAME in names:
        where = f"{directory}/{MARKER_NAME}"
        marker = parse_marker(storage.read_bytes(where), where)
    visible = visible_files(names, marker)
    if visible is None:
        report.skipped.append((directory, "its compaction marker lists files that are missing"))
        return None
    # What no reader counts: a killed run's output, and replaced files it did not delete yet.
    leftovers = [n for n in names if n != MARKER_NAME and n not in visible]
    for name in leftovers:
        storage.delete(f"{directory}/{name}")
    report.leftovers_removed += len(leftovers)
    data_files = [n for n in visible if is_data_file(n)]
    candidates = [n for n in data_files if f"{directory}/{n}" not in pending]
    groups: dict[tuple[str, str], list[_Input]] = {}
    with ThreadPoolExecutor(_READERS) as pool:  # on S3 every file is a GET: a few at once
        loaded = list(pool.map(lambda name: _load(storage, directory, name), candidates))
    for name, item in zip(candidates, loaded, strict=True):
        if isinstance(item, str):
            report.skipped.append((f"{directory}/{name}", f"left as it is, not readable as Parquet ({item})"))
            continue
        origin = item.provenance
        key = ("", "") if origin is None else (origin.config_fingerprint, origin.schema_version)
        groups.setdefault(key, []).append(item)
    chosen = [g for g in groups.values() if len(g) >= 2 and any(not is_compacted(i.name) for i in g)]
    if not chosen:
        return None
    generation, run = (marker.generation if marker is not None else 0) + 1, new_run()
    outputs: list[tuple[str, int]] = []
    rows = 0
    for group in chosen:
        merged = _merged(group)
        rows += merged.num_rows
        metadata = _merged_metadata(group)
        per_file = max(1, merged.num_rows * target_bytes // max(1, sum(i.size for i in group)))
        for start in range(0, merged.num_rows, per_file):
            name = compacted_name(generation, run, len(outputs))
            piece = merged.slice(start, per_file).replace_schema_metadata(metadata or None)
            size = write_parquet(
                storage, f"{directory}/{name}", piece, compression=compression, row_group_size=row_group_size
            )
            outputs.append((name, size))
    inputs = {i.name for g in chosen for i in g}
    kept = [n for n in (marker.files if marker is not None else ()) if n not in inputs]
    switched = after_run(marker, (*kept, *(name for name, _ in outputs)), inputs, run)
    storage.write_bytes(f"{directory}/{MARKER_NAME}", switched.to_bytes())
    result = PartitionCompaction(
        directory,
        files_before=len(inputs),
        bytes_before=sum(i.size for g in chosen for i in g),
        files_after=len(outputs),
        bytes_after=sum(size for _, size in outputs),
        rows=rows,
    )
    return result, [f"{directory}/{name}" for name in sorted(inputs)]


def _load(storage: StorageBackend, directory: str, name: str) -> _Input | str:
    """The file's rows and footer, or why it cannot be read as Parquet."""
    data = storage.read_bytes(f"{directory}/{name}")
    try:
        rows = pq.ParquetFile(pa.BufferReader(data)).read()
    except pa.ArrowException as exc:
        return str(exc)
    metadata = rows.schema.metadata or {}
    return _Input(name, len(data), rows.replace_schema_metadata(None), read_provenance(metadata), metadata)


def _merged(group: list[_Input]) -> pa.Table:
    """The group's rows in one table, stably sorted by ts (ties in file-name, then row order)."""
    tables = [i.rows for i in sorted(group, key=lambda i: i.name)]
    whole = pa.concat_tables(tables, promote_options="permissive")
    return whole.take(pc.sort_indices(whole, sort_keys=[("ts", "ascending")]))


def _merged_metadata(group: list[_Input]) -> dict[str, str]:
    """The footer of a merged file: the group's provenance with the sources of every input."""
    first = group[0].provenance
    if first is None:
        return {}
    sources: list[dict[str, Any]] = []
    versions: set[str] = set()
    for item in group:
        assert item.provenance is not None  # grouped by fingerprint
        versions.add(item.provenance.version)
        source = _loads(item.provenance.source)
        if source.get("mode") == "compaction":
            sources.extend(source.get("from", []))
            versions.update(source.get("versions", []))
        else:
            sources.append(source)
    merged = Provenance(
        fluxforge_version(), first.schema_version, first.config_fingerprint, first.features, ""
    )
    footer = merged.with_source(
        {"mode": "compaction", "from": _collapsed(sources), "versions": sorted(versions)}
    ).metadata()
    others: dict[bytes, set[bytes]] = {}
    for item in group:
        for key, value in item.metadata.items():
            if key.startswith(PREFIX.encode()) and key.decode() not in _PROVENANCE_KEYS:
                others.setdefault(key, set()).add(value)
    for key, values in others.items():
        if not all(key in item.metadata for item in group):
            continue
        if key.decode() == COMPLETE_METADATA:  # the merged file holds every input's rows: the greatest
            footer[COMPLETE_METADATA] = str(max(int(v) for v in values))
        elif len(values) == 1:
            footer[key.decode()] = values.pop().decode()
    return footer


def _loads(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"unparsed": text}
    return value if isinstance(value, dict) else {"unparsed": text}


def _collapsed(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Distinct sources, Kafka ones merged into one offset range per topic-partition."""
    kafka: dict[tuple[str, int], list[int]] = {}
    others: dict[bytes, dict[str, Any]] = {}
    for source in sources:
        offsets = source.get("offsets")
        if source.get("mode") == "kafka" and isinstance(offsets, list) and len(offsets) == 2:
            key = (str(source.get("topic")), int(source.get("partition", -1)))
            low, high = kafka.get(key, [offsets[0], offsets[1]])
            kafka[key] = [min(low, offsets[0]), max(high, offsets[1])]
        else:
            others.setdefault(orjson.dumps(source, option=orjson.OPT_SORT_KEYS), source)
    return [
        *({"mode": "kafka", "topic": t, "partition": p, "offsets": r} for (t, p), r in sorted(kafka.items())),
        *(others[k] for k in sorted(others)),
    ]
