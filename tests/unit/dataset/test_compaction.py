"""`fluxforge compact` on a local root: same rows and schema, provenance kept, atomic for readers, idempotent."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fluxforge_common.config.state import StateConfig
from fluxforge_common.dataset.compaction import CompactionReport, compact_dataset
from fluxforge_common.dataset.compaction_marker import (
    COMPACTED_PREFIX,
    MARKER_NAME,
    CompactionMarker,
    compacted_name,
    new_run,
    visible_files,
)
from fluxforge_common.dataset.location import DatasetRoot
from fluxforge_common.dataset.partitioning import PARQUET_TABLES
from fluxforge_common.dataset.provenance import read_provenance
from fluxforge_common.dataset.reader import list_partitions
from fluxforge_common.dataset.validation import validate_dataset
from fluxforge_common.features import output_tables
from fluxforge_common.storage import LocalStorage

from tests.support.compaction import data_file_count, read_while_compacting
from tests.support.dataset import read_dataset

Cli = Callable[..., str]
BEFORE = "2100-01-01"
FIRST_MERGED = re.compile(r"compacted-g000001-[0-9a-f]{12}-0000\.parquet")  # generation 1, a run, file 0


def snapshot(root: Path) -> dict[str, bytes]:
    storage = LocalStorage(root)
    return {path: storage.read_bytes(path) for path in storage.list_files()}


def assert_same_rows(actual: dict[str, pa.Table], expected: dict[str, pa.Table]) -> None:
    """Every table equal; those the run fills (all but ibars, which it leaves off) hold rows."""
    for table, rows in expected.items():
        if table in output_tables(StateConfig()):
            assert rows.num_rows > 0, f"{table} is empty: the comparison would prove nothing"
        assert actual[table].schema == rows.schema, table
        assert actual[table].equals(rows), f"{table}: rows differ"


def test_compaction_keeps_rows_schema_and_provenance_and_a_second_run_changes_nothing(
    small_files: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUXFORGE_COMPACTION__DELETE_GRACE_S", "0")
    expected = read_dataset(small_files)
    before_files = data_file_count(small_files)
    origins = {read_provenance(pq.read_schema(p).metadata) for p in small_files.rglob("*.parquet")}
    assert len({o.config_fingerprint for o in origins if o is not None}) == 1

    out = cli("compact", small_files, "--before", "2026-01-01")
    partitions = [p for t in PARQUET_TABLES for p in list_partitions(small_files, t)]
    assert f"compacted {len(partitions)} partition(s)" in out and f"{before_files} files" in out
    assert data_file_count(small_files) == len(partitions) < before_files / 10
    assert_same_rows(read_dataset(small_files), expected)
    for part in partitions:
        (only,) = part.files
        assert FIRST_MERGED.fullmatch(only.rsplit("/", 1)[1]), only
        file = pq.read_table(small_files / only)
        ts = file.column("ts").cast(pa.int64())
        assert pc.all(pc.greater_equal(ts.slice(1), ts.slice(0, len(ts) - 1))).as_py(), "not ordered by ts"
        origin = read_provenance(file.schema.metadata)
        assert origin is not None and {o.config_fingerprint for o in origins if o} == {
            origin.config_fingerprint
        }
        source = orjson.loads(origin.source)
        assert source["mode"] == "compaction" and source["from"][0]["mode"] == "embedded"
    # Nothing but the merged files and the markers is left; a second run changes nothing.
    names = {p.name for t in PARQUET_TABLES for p in (small_files / t).rglob("*") if p.is_file()}
    assert MARKER_NAME in names and all(FIRST_MERGED.fullmatch(n) for n in names - {MARKER_NAME}), names
    assert [p for p in validate_dataset(small_files) if p.severity == "error"] == []
    state = snapshot(small_files)
    again = cli("compact", small_files, "--before", "2026-01-01")
    assert "compacted 0 partition(s)" in again and f"{len(partitions)} partition(s) unchanged" in again
    assert snapshot(small_files) == state


def test_files_of_other_configurations_and_of_the_sink_journal_are_not_merged_with_the_rest(
    small_files: Path,
) -> None:
    storage = LocalStorage(small_files)
    (part, other, *_) = list_partitions(small_files, "hf")
    first, second, *_rest = part.files
    changed = pq.read_table(small_files / first)
    metadata = dict(changed.schema.metadata) | {b"fluxforge.config_fingerprint": b"another-config"}
    pq.write_table(changed.replace_schema_metadata(metadata), small_files / first)
    pq.write_table(
        pq.read_table(small_files / second).replace_schema_metadata(metadata), small_files / second
    )
    journalled = other.files[0]
    storage.write_bytes(".sink/pending/t+0.json", orjson.dumps({"files": [journalled]}))
    report = compact_dataset(storage, ["hf"], before=BEFORE, target_bytes=128 << 20, grace_s=0)
    assert report.rows > 0
    fingerprints = sorted(
        str(read_provenance(pq.read_schema(small_files / f).metadata).config_fingerprint)  # type: ignore[union-attr]
        for f in list_partitions(small_files, "hf")[0].files
    )
    assert len(fingerprints) == 2 and "another-config" in fingerprints
    assert journalled in list_partitions(small_files, "hf")[1].files  # left for the sink


def test_the_marker_decides_what_readers_see() -> None:
    first, second = compacted_name(1, new_run(), 0), compacted_name(2, new_run(), 0)
    names = ["a.parquet", "b.parquet", first, second, MARKER_NAME]
    assert visible_files(names, None) == ["a.parquet", "b.parquet"]  # a killed first run's output
    marker = CompactionMarker(2, (second,), frozenset({"a.parquet", first}))
    assert visible_files(names, marker) == ["b.parquet", second]
    assert visible_files(["a.parquet", "b.parquet", MARKER_NAME], marker) is None  # listed before the switch


class SlowStorage(LocalStorage):
    """Local storage whose writes and deletes take a while, so a reader can land between every step."""

    @contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        time.sleep(0.01)
        with super().open_write(path) as f:
            yield f

    def delete(self, path: str) -> None:
        time.sleep(0.002)
        super().delete(path)


def test_a_reader_looping_during_compaction_sees_every_row_once(small_files: Path) -> None:
    expected = read_dataset(small_files)

    def compaction() -> None:
        compact_dataset(SlowStorage(small_files), PARQUET_TABLES, before=BEFORE, target_bytes=64 << 10,
                        grace_s=0.0)  # fmt: skip

    reads, errors = read_while_compacting(
        compaction, lambda _: assert_same_rows(read_dataset(small_files), expected)
    )
    assert errors == []
    assert reads >= 3, f"only {reads} reads overlapped the compaction"
    assert_same_rows(read_dataset(small_files), expected)
    second_file = re.compile(r"compacted-g000001-[0-9a-f]{12}-0001\.parquet")
    assert any(second_file.fullmatch(p.name) for p in small_files.rglob("*.parquet"))


def test_a_read_whose_files_a_compaction_deletes_while_it_plans_chooses_them_again(
    small_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = read_dataset(small_files)
    read_schema = pq.read_schema
    runs: list[CompactionReport] = []

    def compaction_after_the_listing(where: str, **kwargs: object) -> pa.Schema:
        if not runs:  # the files are listed and chosen: now they are replaced and deleted
            runs.append(compact_dataset(LocalStorage(small_files), PARQUET_TABLES, before=BEFORE,
                                        target_bytes=128 << 20, grace_s=0))  # fmt: skip
        return read_schema(where, **kwargs)

    monkeypatch.setattr(pq, "read_schema", compaction_after_the_listing)
    assert_same_rows(read_dataset(small_files), expected)
    assert runs and runs[0].rows > 0


class KilledError(Exception):
    """Compaction stopped between its last switch and its deletions."""


def test_a_listing_that_lacks_the_marker_and_some_files_is_taken_again(
    small_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = read_dataset(small_files)

    def killed(_seconds: float) -> None:
        raise KilledError

    with pytest.raises(KilledError):  # every partition switched, the replaced files still there
        compact_dataset(LocalStorage(small_files), PARQUET_TABLES, before=BEFORE, target_bytes=128 << 20,
                        grace_s=30, sleep=killed)  # fmt: skip
    walk = DatasetRoot.walk
    listed: set[str] = set()

    def truncated_once(self: DatasetRoot, prefix: str) -> tuple[list[str], list[str]]:
        """A listing taken while files are deleted, as s3proxy's filesystem backend gives it: a
        directory's names from some point on are left out, here its marker, its merged file and
        every other replaced file."""
        files, dirs = walk(self, prefix)
        if prefix in listed:
            return files, dirs
        listed.add(prefix)
        old = [f for f in files if not f.rsplit("/", 1)[1].startswith(("_", COMPACTED_PREFIX))]
        return old[::2], dirs

    monkeypatch.setattr(DatasetRoot, "walk", truncated_once)
    assert_same_rows(read_dataset(small_files), expected)
    assert listed


def test_validate_reports_what_a_killed_compaction_left(small_files: Path) -> None:
    part = list_partitions(small_files, "hf")[0]
    orphan = small_files / part.path / compacted_name(1, new_run(), 0)
    orphan.write_bytes((small_files / part.files[0]).read_bytes())
    found = [p for p in validate_dataset(small_files) if p.path == f"{part.path}/{orphan.name}"]
    assert [p.severity for p in found] == ["warning"] and "interrupted compaction" in found[0].message
    report = compact_dataset(
        LocalStorage(small_files), ["hf"], before=BEFORE, target_bytes=1 << 30, grace_s=0
    )
    assert report.leftovers_removed == 1 and not [
        p for p in validate_dataset(small_files) if p.severity == "error"
    ]


def test_a_merged_file_is_complete_as_far_as_its_most_complete_input(small_files: Path) -> None:
    part = list_partitions(small_files, "trades")[0]
    for n, rel in enumerate(part.files):
        table = pq.read_table(small_files / rel)
        stamped = dict(table.schema.metadata) | {b"fluxforge.complete_ms": str(1_000 * n).encode()}
        pq.write_table(table.replace_schema_metadata(stamped), small_files / rel)
    compact_dataset(LocalStorage(small_files), ["trades"], before=BEFORE, target_bytes=1 << 30, grace_s=0)
    (merged,) = list_partitions(small_files, "trades")[0].files
    metadata = pq.read_schema(small_files / merged).metadata
    assert metadata[b"fluxforge.complete_ms"] == str(1_000 * (len(part.files) - 1)).encode()


def test_compaction_writes_row_groups_of_the_configured_size(small_files: Path) -> None:
    compact_dataset(
        LocalStorage(small_files), ["hf"], before=BEFORE, target_bytes=1 << 30, grace_s=0, row_group_size=50
    )
    sizes = {
        f: [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        for p in list_partitions(small_files, "hf")
        for f in p.files
        if (metadata := pq.ParquetFile(small_files / f).metadata)
    }
    assert any(len(groups) > 1 for groups in sizes.values()), (
        f"no merged file holds more than 50 rows: {sizes}"
    )
    assert all(max(groups) <= 50 for groups in sizes.values()), sizes
