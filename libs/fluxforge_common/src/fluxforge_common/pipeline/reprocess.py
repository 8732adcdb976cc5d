"""Reprocess: raw archive -> features for a date range, replacing earlier output for those dates.

The engine's windows reach back in time, so the day before the range is read
first as warm-up (its rows are not written): reprocessing one day then gives the
same rows as the run that recorded it, including the row at 00:00:00. And a quiet
symbol's last rows of the range come from its first tick after it, so the day
after the range is read too, until every symbol has closed the range's last
interval (nor are its rows written).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from fluxforge_common.config.settings import FluxForgeSettings
from fluxforge_common.dataset.compaction_marker import (
    MARKER_NAME,
    CompactionMarker,
    after_run,
    new_run,
    parse_marker,
)
from fluxforge_common.dataset.interrupted import (
    RunInProgressError,
    RunJournal,
    running_dates,
    settle_rebuilds,
)
from fluxforge_common.dataset.partitioning import MS_PER_DAY
from fluxforge_common.dataset.timespec import utc_ms
from fluxforge_common.features import TABLES
from fluxforge_common.features.engine import TickEngine
from fluxforge_common.pipeline.embedded import HAND_OFF_LINES, EmbeddedPipeline, RunSummary
from fluxforge_common.pipeline.lines import archive_dates, archive_lines
from fluxforge_common.pipeline.shards import Shard, run_shards
from fluxforge_common.stopping import ReadStop
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.storage.location import storage_at
from fluxforge_common.storage.s3url import is_s3_url


def dates_text(dates: list[str]) -> str:
    """Sorted dates for a message: more than three as the first and the last."""
    return ", ".join(dates) if len(dates) < 4 else f"{dates[0]} .. {dates[-1]} ({len(dates)} dates)"


def _date_of(path: str) -> str | None:
    return next((part[5:] for part in path.split("/") if part.startswith("date=")), None)


def reprocess(
    settings: FluxForgeSettings,
    source_root: Path | str,
    target_root: Path,
    dates: list[str],
    *,
    warmup_days: int = 1,
    workers: int = 1,
    on_progress: Callable[[RunSummary], None] | None = None,
    read_stop: ReadStop | None = None,
    journal: RunJournal | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[RunSummary, list[str]]:
    """Rebuild the four tables of `dates` in `target_root`; returns the summary and the files replaced.

    With `workers` > 1 the symbols are split over that many processes (`pipeline.shards`).
    It holds a run journal naming `dates` (`journal`, the caller's, when given), so no live run,
    reprocess or compaction takes them meanwhile (RunInProgressError when one holds them now).
    `warn` hears, before the work, of a warm-up day the archive lacks (the range's first rows then
    differ from those of a recording that had it).
    Stopped early through `read_stop`, it writes what it processed and replaces nothing: the earlier
    files of `dates` stay beside the new ones, and the journal it leaves has the next run or
    `fluxforge recover` rebuild them. A full disk does the same, then raises its DiskFullError.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not is_s3_url(str(source_root)) and not Path(source_root).is_dir():
        raise FileNotFoundError(f"the source root {source_root} does not exist")
    source = storage_at(source_root, settings.storage.s3)  # a directory or s3://BUCKET/PREFIX
    available = set(archive_dates(source))
    missing = [d for d in dates if d not in available]
    if len(missing) == len(dates):
        raise FileNotFoundError(
            f"no raw archive under {source_root}/raw for {dates_text(dates)}; "
            f"dates present: {dates_text(sorted(available)) or 'none'}"
        )
    if journal is None:
        busy = sorted(running_dates(target_root) & set(dates)) if target_root.is_dir() else []
        if busy:
            raise RunInProgressError(
                f"a run writes {dates_text(busy)} into {target_root} now: reprocess after it has ended, "
                "or into another root (-o)"
            )
    first = date.fromisoformat(dates[0])
    warmup = [(first - timedelta(days=k)).isoformat() for k in range(warmup_days, 0, -1)]
    absent = [day for day in warmup if day not in available]
    if absent and warn is not None:
        warn(
            f"warm-up day(s) {dates_text(absent)} not in the archive of {source_root}: rolling windows "
            f"start empty on {dates[0]}, so its first rows differ from a recording that had them "
            "(--warmup-days 0 says that is meant; or point --source-root at a copy that has them)"
        )
    after = (date.fromisoformat(dates[-1]) + timedelta(days=1)).isoformat()
    wanted = set(dates)
    target = LocalStorage(target_root)
    previous = {
        path for table in TABLES for path in target.list_files(f"{table}/") if _date_of(path) in wanted
    }
    markers = {  # read before any work: an unreadable one stops the reprocess before it changes anything
        path.rpartition("/")[0]: parse_marker(target.read_bytes(path), path)
        for path in previous
        if path.endswith(f"/{MARKER_NAME}")
    }
    read = [d for d in warmup if d in available] + dates + ([after] if after in available else [])
    job = RebuildJob(settings, str(source_root), target_root, read, dates)
    own = journal is None
    held = RunJournal.begin(target_root, rebuild=True) if journal is None else journal
    try:
        for day in dates:
            held.note(day)
        if workers == 1:
            summary = job.run(on_progress=on_progress, read_stop=read_stop)
        else:
            summary = run_shards(job, workers, on_progress=on_progress, read_stop=read_stop)
    except BaseException:
        if own:
            held.release()  # left for the next run or `fluxforge recover` to rebuild the dates
        raise
    if read_stop is not None and read_stop.cut_short:
        if own:
            held.release()
        return summary, []
    if summary.disk_full is not None:  # what it wrote is partial: the earlier files must stay
        if own:
            held.release()
        raise summary.disk_full
    written = {f.path for f in summary.files}
    replaced = sorted(path for path in previous - written if not path.endswith(f"/{MARKER_NAME}"))
    _mark_replaced(target, replaced, written, markers)
    for path in replaced:
        target.delete(path)
    if own:
        held.finish()
        settle_rebuilds(target_root, wanted)  # a stopped or killed reprocess of these dates is done now
    return summary, replaced


def _mark_replaced(
    target: LocalStorage, replaced: list[str], written: set[str], markers: dict[str, CompactionMarker]
) -> None:
    """Write, in each partition that had files replaced, the marker readers honour (the compaction
    marker: docs/design.md "Dataset layout"), listing the new files and the replaced names.

    The caller then deletes the replaced files, but a copy of the dataset (`fluxforge sync` to S3, which
    never deletes) still holds them under their own names beside the new files; the marker, moved
    there only after the files it lists, hides them from every reader that honours it.
    """
    by_directory: dict[str, tuple[set[str], set[str]]] = {}
    for paths, side in ((replaced, 0), (written, 1)):
        for path in paths:
            directory, _, name = path.rpartition("/")
            by_directory.setdefault(directory, (set(), set()))[side].add(name)
    run = new_run()
    for directory, (old, new) in sorted(by_directory.items()):
        if not old:
            continue
        marker = after_run(markers.get(directory), sorted(new), old, run)
        target.write_bytes(f"{directory}/{MARKER_NAME}", marker.to_bytes())


@dataclass(frozen=True)
class RebuildJob:
    """The archive's lines of `read` (warm-up days first) through the engine into `target_root`,
    writing the rows of `dates` only; picklable, so that each shard process runs its part."""

    settings: FluxForgeSettings
    source_root: str
    target_root: Path
    read: list[str]
    dates: list[str]

    def run(
        self,
        *,
        shard: Shard | None = None,
        on_progress: Callable[[RunSummary], None] | None = None,
        read_stop: ReadStop | None = None,
    ) -> RunSummary:
        """Run it over the lines of `shard` (all without one)."""
        wanted = set(self.dates)
        pipeline = EmbeddedPipeline(
            self.settings,
            LocalStorage(self.target_root),
            archive_raw=False,
            write_dead_letter=False,
            keep_dates=wanted,
            source={"mode": "reprocess", "input": self.source_root, "dates": self.dates},
        )
        lines: Iterable[bytes] = archive_lines(
            storage_at(self.source_root, self.settings.storage.s3), self.read, shard
        )
        if self.read[-1] > self.dates[-1]:
            end_ms = utc_ms(self.dates[-1]) + MS_PER_DAY
            # A bar dated in the range may end after it (a duration that does not divide a day).
            bars_end = max(-(-end_ms // (s * 1000)) * s * 1000 for s in self.settings.features.bar_durations)
            lines = _until_closed(lines, pipeline.engine, end_ms, max(end_ms, bars_end))
        return pipeline.run(
            lines if read_stop is None else read_stop.lines(lines), "reprocess", on_progress=on_progress
        )


def _until_closed(lines: Iterable[bytes], engine: TickEngine, end_ms: int, close_ms: int) -> Iterator[bytes]:
    """`lines` until every symbol has closed its intervals up to `close_ms` (the range's end, or the
    end of a time bar begun in it) and holds no open information-driven bar begun before `end_ms`
    (checked every `HAND_OFF_LINES` lines)."""
    for n, line in enumerate(lines, 1):
        yield line
        if not n % HAND_OFF_LINES and all(
            state.next_ms is not None
            and state.next_ms > close_ms
            and all(bar.n == 0 or bar.start_ms >= end_ms for bar in state.ibars)
            for state in engine.states.values()
        ):
            return
