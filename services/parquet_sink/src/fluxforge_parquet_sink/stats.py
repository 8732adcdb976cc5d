"""Counters of one sink process, for its progress lines and final summary."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from fluxforge_common.storage.space import DiskFullPause

log = logging.getLogger("fluxforge.sink")


def _disk_pause() -> DiskFullPause:
    return DiskFullPause(log, "nothing is consumed or committed")


@dataclass
class SinkStats:
    """What the sink consumed and wrote since it started.

    `units` counts what each topic kind carries: feature rows per table
    (`hf`, `bars`, `trades`, `ticker`), archived ticks (`raw`), dead-letter
    records (`deadletter`). Units are counted when a chunk's files are durable,
    so a chunk dropped by a rebalance or a crash is not counted twice.
    """

    started: float = field(default_factory=time.monotonic)
    messages: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)
    raw_rejected: int = 0
    bad_messages: int = 0
    chunks: Counter[str] = field(default_factory=Counter)
    files: Counter[str] = field(default_factory=Counter)  # per kind, like `units`
    bytes: Counter[str] = field(default_factory=Counter)
    last_write: dict[str, float] = field(
        default_factory=dict
    )  # kind -> Unix time its last file became durable
    commits: int = 0
    commit_failures: int = 0
    dropped_chunks: int = 0
    duplicates: int = 0  # copies of feature-engine outputs dropped (`ff-src` at or below the position)
    recovered_files: int = 0
    rebalances: int = 0
    disk_pause: DiskFullPause = field(default_factory=_disk_pause)  # on a full disk or below the reserve

    def rates(
        self, since: SinkStats | None = None, now: float | None = None, *, of: str = "units"
    ) -> dict[str, float]:
        """Per second per kind of `units` (written) or `messages` (consumed), over the whole run
        or since an earlier `snapshot()`."""
        now = time.monotonic() if now is None else now
        counts: Counter[str] = getattr(self, of)
        base: Counter[str] = getattr(since, of) if since is not None else Counter()
        base_time = since.started if since is not None else self.started
        elapsed = max(now - base_time, 1e-9)
        return {kind: (count - base[kind]) / elapsed for kind, count in sorted(counts.items())}

    def snapshot(self) -> SinkStats:
        """A copy whose `started` is now: pass it to `rates(since=...)` later."""
        return SinkStats(started=time.monotonic(), units=Counter(self.units), messages=Counter(self.messages))

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        parts = [f"{kind} {count:,}" for kind, count in sorted(self.units.items())] or ["nothing"]
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.chunks.items())) or "none"
        return (
            f"wrote {', '.join(parts)} in {elapsed:,.1f} s: {self.files.total():,} files, {self.bytes.total() / 1e6:,.1f} MB, "
            f"{self.commits:,} commits; chunks closed by {reasons}; raw ticks not archived (rejected) "
            f"{self.raw_rejected:,}; bad messages dead-lettered {self.bad_messages:,}; "
            f"re-sent engine outputs dropped {self.duplicates:,}; "
            f"uncommitted files removed at recovery {self.recovered_files:,}; commit failures {self.commit_failures}; "
            f"pauses on a full disk {self.disk_pause.pauses}"
        )
