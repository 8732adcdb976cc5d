"""A run's rows become files every `embedded.flush_interval_s` of wall clock, even when its input
comes a few lines a second (a live feed of a few symbols)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

from fluxforge_common.config.settings import FluxForgeSettings
from fluxforge_common.pipeline import EmbeddedPipeline, simulator_lines
from fluxforge_common.pipeline.embedded import CLOCK_LINES
from fluxforge_common.pipeline.lines import IDLE
from fluxforge_common.storage import LocalStorage


class SlowFeed:
    """Lines of the simulated market, each arriving `seconds_per_line` after the last (a fake clock)."""

    def __init__(self, settings: FluxForgeSettings, root: Path, lines: int, seconds_per_line: float) -> None:
        self.now = 0.0
        self.root = root
        self._lines = list(itertools.islice(simulator_lines(settings.simulator), lines))
        self._step = seconds_per_line
        self.parquet_files_seen: list[int] = []  # Parquet files on disk as each line arrives

    def clock(self) -> float:
        return self.now

    def __iter__(self) -> Iterator[bytes]:
        for line in self._lines:
            self.now += self._step
            self.parquet_files_seen.append(len(list(self.root.rglob("*.parquet"))))
            yield line


def test_a_slow_feed_gets_its_files_every_flush_interval(tmp_path: Path) -> None:
    settings = FluxForgeSettings(embedded={"flush_interval_s": 10.0}, simulator={"seed": 3})
    feed = SlowFeed(settings, tmp_path, lines=300, seconds_per_line=0.5)  # 150 s of wall clock
    pipeline = EmbeddedPipeline(settings, LocalStorage(tmp_path), clock=feed.clock)

    pipeline.run(feed, "slow")

    seen = feed.parquet_files_seen
    # Files appear while the feed goes on, within a flush interval plus the lines between two
    # looks at the clock of their rows (not only when the input ends).
    first = next(n for n, files in enumerate(seen) if files)
    assert first <= (10.0 + CLOCK_LINES * 0.5) / 0.5 + 1, f"first file seen at line {first}"
    assert len(set(seen)) > 3, "the files grew only a few times over 15 flush intervals"


class SilentFeed(SlowFeed):
    """Lines in a burst, then a source with nothing to give: `IDLE` every second of its clock."""

    def __init__(self, settings: FluxForgeSettings, root: Path, lines: int, silent_s: int) -> None:
        super().__init__(settings, root, lines, seconds_per_line=0.0)
        self.silent_s = silent_s

    def __iter__(self) -> Iterator[bytes]:
        yield from super().__iter__()
        for _ in range(self.silent_s):
            self.now += 1.0
            self.parquet_files_seen.append(len(list(self.root.rglob("*.parquet"))))
            yield IDLE


def test_a_silent_feed_gets_its_files_within_a_flush_interval(tmp_path: Path) -> None:
    settings = FluxForgeSettings(embedded={"flush_interval_s": 10.0}, simulator={"seed": 3})
    feed = SilentFeed(settings, tmp_path, lines=2_000, silent_s=30)
    pipeline = EmbeddedPipeline(settings, LocalStorage(tmp_path), clock=feed.clock)

    summary = pipeline.run(feed, "silent")

    silence = feed.parquet_files_seen[2_000:]
    assert silence[0] == 0, "nothing was due before the silence"
    assert silence[11] > 0, f"no file 11 s into the silence: {silence}"
    assert summary.lines == 2_000, "an IDLE is no line"
