"""Recovery of an interrupted embedded run: segments sealed up to their last whole frame, features
rebuilt from the archive as a reprocess builds them, nothing doubled, nothing left to recover."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from fluxforge_common.config.settings import FluxForgeSettings
from fluxforge_common.dataset.interrupted import RunInProgressError, RunJournal, find_interrupted
from fluxforge_common.dataset.validation import validate_dataset
from fluxforge_common.pipeline import EmbeddedPipeline, archive_lines, reprocess, simulator_lines
from fluxforge_common.pipeline.ingest_order import ingest_key
from fluxforge_common.pipeline.recovery import recover
from fluxforge_common.stopping import ReadStop
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers.frames import ZSTD_MAGIC, CorruptSegmentError, intact_prefix

from tests.support.dataset import assert_same_dataset, read_dataset

TICKS = 40_000


@pytest.fixture
def settings() -> FluxForgeSettings:
    # The sync thread stays idle: the test decides which frames reach the disk before the "crash".
    return FluxForgeSettings(raw_archive={"sync_interval_s": 3600}, simulator={"seed": 5})


def crashed_run(settings: FluxForgeSettings, root: Path) -> int:
    """A run that wrote Parquet files, synced its segments twice, then died: how many of the ticks
    it read reached a synced frame."""
    pipeline = EmbeddedPipeline(settings, LocalStorage(root), journal=RunJournal.begin(root))
    durable = TICKS * 3 // 4
    lines = list(itertools.islice(simulator_lines(settings.simulator), durable + 100))
    assert pipeline.archive is not None and pipeline.journal is not None
    for n, line in enumerate(lines, 1):
        pipeline.feed(line, f"test:{n}")
        if n == TICKS // 3:
            pipeline._collect()
            pipeline.flush_files()  # Parquet files of the first third: rows the recovery must not double
        if n in (TICKS // 2, durable):
            pipeline.archive.sync()  # the last 100 lines stay in memory, less than a frame: lost
    pipeline.journal._file.close()  # the process dies: its lock goes, nothing is closed or sealed
    return durable


def test_recovery_seals_every_synced_frame_and_the_features_equal_a_reprocess(
    settings: FluxForgeSettings, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    durable = crashed_run(settings, root)
    storage = LocalStorage(root)
    written_before = {table: read_dataset(root)[table].num_rows for table in ("hf", "trades")}
    assert all(written_before.values())  # the crashed run had written some Parquet rows
    # tear the last frame of one segment, as a kill in the middle of a write does
    torn = max(storage.unsealed_files(), key=storage.size)
    data = storage.read_bytes(torn)
    whole = intact_prefix(data, compressed=True)
    second_last = intact_prefix(data[: whole.length - 1], compressed=True)
    storage.local_path(torn).write_bytes(data[: whole.length - 7])
    lost = whole.lines - second_last.lines

    recovery = recover(settings, root)

    assert recovery.runs == 1 and recovery.dates == ["2025-12-12"]
    assert len(recovery.segments) == 6 and recovery.ticks == durable - lost
    assert recovery.bytes_cut == whole.length - 7 - second_last.length
    archived = list(archive_lines(storage))
    kept = {ingest_key(line)[1] for line in archived}
    assert len(archived) == len(kept) == durable - lost  # once each
    assert kept <= set(range(1, durable + 1))  # only what reached a synced frame
    reference = tmp_path / "reference"
    reprocess(settings, root, reference, ["2025-12-12"])
    assert_same_dataset(root, reference)
    assert find_interrupted(root).segments == [] and not find_interrupted(root)
    assert validate_dataset(root) == []
    again = recover(settings, root)
    assert again.segments == [] and again.runs == 0


def test_a_run_in_progress_is_not_recovered(settings: FluxForgeSettings, tmp_path: Path) -> None:
    root = tmp_path / "data"
    pipeline = EmbeddedPipeline(settings, LocalStorage(root), journal=RunJournal.begin(root))
    for n, line in enumerate(itertools.islice(simulator_lines(settings.simulator), 100), 1):
        pipeline.feed(line, f"test:{n}")
    with pytest.raises(RunInProgressError, match="recover after it has ended"):
        recover(settings, root)
    pipeline.close()
    assert not find_interrupted(root) and find_interrupted(root).running == []


def test_a_segment_damaged_before_its_end_is_refused_and_left_alone(
    settings: FluxForgeSettings, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    crashed_run(settings, root)
    storage = LocalStorage(root)
    target = max(storage.unsealed_files(), key=storage.size)
    data = bytearray(storage.read_bytes(target))
    data[data.index(ZSTD_MAGIC) + 12] ^= 0xFF  # inside the first of its frames
    storage.local_path(target).write_bytes(bytes(data))
    before = sorted(storage.walk_files())
    with pytest.raises(CorruptSegmentError, match="move it out of the dataset root"):
        recover(settings, root)
    assert sorted(storage.walk_files()) == before


def test_reprocess_and_compaction_keep_out_of_the_dates_a_live_run_writes(
    settings: FluxForgeSettings, tmp_path: Path
) -> None:
    """A reprocess into dates a live run writes would double its rows; a compaction of dates a reprocess
    rebuilds would merge old and new files. Each is refused or skipped while the other holds the date;
    a reprocess that dies leaves its dates for the next recovery."""
    from fluxforge_common.dataset.compaction import compact_dataset

    root = tmp_path / "data"
    EmbeddedPipeline(settings, LocalStorage(root)).run(
        itertools.islice(simulator_lines(settings.simulator), 3_000), "test"
    )
    live = RunJournal.begin(root)
    live.note("2025-12-12")
    with pytest.raises(
        RunInProgressError, match=r"a run writes 2025-12-12 into .* reprocess after it has ended"
    ):
        reprocess(settings, root, root, ["2025-12-12"])
    live.finish()

    rebuilding = RunJournal.begin(root, rebuild=True)
    rebuilding.note("2025-12-12")
    report = compact_dataset(LocalStorage(root), ["hf"], before="2026-01-01", target_bytes=1 << 27, grace_s=0)
    assert report.compacted == [] and report.skipped
    assert {why for _, why in report.skipped} == {"a reprocess or recovery rebuilds this date now"}
    rebuilding.release()  # the reprocess died: its journal stays, unlocked
    assert find_interrupted(root).dates == ["2025-12-12"]
    assert recover(settings, root).dates == ["2025-12-12"]
    assert not find_interrupted(root)


class StopAtTheEnd(ReadStop):
    """A stop signal that comes right after the last line was read (while the run writes)."""

    def lines(self, source: Iterable[bytes]) -> Iterator[bytes]:
        yield from super().lines(source)
        self.stop()


def test_a_stop_after_reprocess_read_everything_still_replaces_the_earlier_files(
    settings: FluxForgeSettings, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    EmbeddedPipeline(settings, LocalStorage(root)).run(
        itertools.islice(simulator_lines(settings.simulator), 5_000), "test"
    )
    recorded = read_dataset(root)
    (date,) = {path.split("date=")[1][:10] for path in LocalStorage(root).list_files("raw/")}
    stop = StopAtTheEnd()
    _, replaced = reprocess(settings, root, root, [date], read_stop=stop)
    assert stop.stopped and replaced, "read to the end: the earlier files are replaced"
    rebuilt = read_dataset(root)
    assert all(rebuilt[table].equals(rows) for table, rows in recorded.items()), "rows doubled or changed"
