"""The progress of `reprocess --workers 2` merged from its shard processes, against one process.

`EmbeddedPipeline.run` reports at most once a second of wall time, so a report
during a short run is luck; each run here holds still for `PAUSE_S` halfway
through the archive, which makes a report after the pause certain at any speed.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fluxforge_common.config.settings import FluxForgeSettings
from fluxforge_common.pipeline import RunSummary, archive_lines
from fluxforge_common.pipeline.reprocess import RebuildJob
from fluxforge_common.pipeline.shards import Shard, run_shards
from fluxforge_common.stopping import ReadStop
from fluxforge_common.storage.local import LocalStorage

from tests.support.dataset import simulated_dataset

DATE = "2025-12-12"
PAUSE_S = 1.2  # longer than the pipeline's 1 s between reports


class PausingReadStop(ReadStop):
    """Passes on the lines of `inner` (or of the source), holding still for PAUSE_S after the
    `pause_after`-th."""

    def __init__(self, inner: ReadStop | None, pause_after: int) -> None:
        super().__init__()
        self.inner = inner
        self.pause_after = pause_after

    def lines(self, source: Iterable[bytes]) -> Iterator[bytes]:
        lines = source if self.inner is None else self.inner.lines(source)
        for n, line in enumerate(lines, 1):
            if n == self.pause_after:
                time.sleep(PAUSE_S)
            yield line


@dataclass(frozen=True)
class PausedMidway:
    """The rebuild job, holding still for PAUSE_S once it has read `pause_after[shard index]` of
    its lines (None: the one process's); module level: the shards import it."""

    job: RebuildJob
    pause_after: dict[int | None, int]

    def run(
        self,
        *,
        shard: Shard | None = None,
        on_progress: Callable[[RunSummary], None] | None = None,
        read_stop: ReadStop | None = None,
    ) -> RunSummary:
        pausing = PausingReadStop(read_stop, self.pause_after[None if shard is None else shard.index])
        return self.job.run(shard=shard, on_progress=on_progress, read_stop=pausing)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 120 s simulator run (~13,000 ticks of one date) with its raw archive."""
    return simulated_dataset(tmp_path_factory.mktemp("recorded"), duration_s=120, seed=3)


def figures(summary: RunSummary) -> dict[str, Any]:
    """Everything a summary counts (its files differ by who wrote them)."""
    return {
        "lines": summary.lines,
        "accepted": summary.accepted,
        "rejected": summary.rejected,
        "late": summary.late,
        "duplicates": summary.duplicates,
        "events": (summary.first_event_ms, summary.last_event_ms),
        "rows": dict(summary.rows),
        "per_symbol": dict(summary.per_symbol),
        "reasons": dict(summary.reasons),
    }


def counts(summary: RunSummary) -> list[int]:
    """The figures a progress line shows, each of which only grows during a run."""
    return [
        summary.lines,
        summary.accepted,
        summary.rejected,
        len(summary.per_symbol),
        summary.per_symbol.total(),
        *(summary.rows[table] for table in sorted(summary.rows)),
    ]


def assert_progress_leads_to(reports: list[RunSummary], final: RunSummary, paused_at: int) -> None:
    """A report before the end; the last one counts every line read before the pause (no shard's part
    missing); no figure ever goes back; none passes the final one."""
    assert reports, "no progress report during the run"
    assert reports[0].lines < final.lines, "the first report came only at the end"
    assert reports[-1].lines >= paused_at - 1, "a shard's part is missing from the merged progress"
    steps = [counts(report) for report in [*reports, final]]
    for before, after in itertools.pairwise(steps):
        assert all(a <= b for a, b in zip(before, after, strict=True)), (before, after)
    for report in reports:
        assert set(report.rows) == set(final.rows)  # every table the configuration fills, zeros too


def recorder(reports: list[RunSummary]) -> Callable[[RunSummary], None]:
    """Keeps a copy of each report: one process reports its live summary, which goes on counting."""
    return lambda summary: reports.append(copy.deepcopy(summary))


def test_two_workers_show_progress_that_grows_to_the_totals_of_one(archive: Path, tmp_path: Path) -> None:
    storage = LocalStorage(archive)
    total = sum(1 for _ in archive_lines(storage))
    halves: dict[int | None, int] = {
        i: sum(1 for _ in archive_lines(storage, shard=Shard(i, 2))) // 2 for i in range(2)
    }
    assert all(halves.values()) and abs(sum(halves.values()) - total // 2) <= 1
    job = RebuildJob(FluxForgeSettings(), str(archive), tmp_path / "one", [DATE], [DATE])
    one_reports: list[RunSummary] = []
    one = PausedMidway(job, {None: total // 2}).run(on_progress=recorder(one_reports))
    assert one.lines == total and one.accepted > 0 and one.rows["hf"] > 0
    assert_progress_leads_to(one_reports, one, total // 2)

    two_reports: list[RunSummary] = []
    paused = PausedMidway(replace(job, target_root=tmp_path / "two"), halves)
    two = run_shards(paused, 2, on_progress=recorder(two_reports))
    assert_progress_leads_to(two_reports, two, sum(halves.values()))
    assert figures(two) == figures(one)
    print(f"{total:,} lines: {len(one_reports)} report(s) from one process, {len(two_reports)} merged")
