"""Recover what interrupted runs left: seal their raw segments, rebuild their dates' features.

Each unsealed segment is verified frame by frame (`frames.intact_prefix`) and
its intact prefix sealed under its normal name; a torn tail is cut, and so is
a sync that a kill left written to some channels only (`frames.whole_cuts`). Then the
dates of those segments and of the dead runs' journals are rebuilt by
`reprocess` over the whole archive, which replaces every feature file of
those dates: rows the dead run had written are replaced, rows it never wrote
are added, and rows of ticks that never reached a durable frame go, so the
tables equal a reprocess of the archive. Recovery journals those dates itself
before it changes anything, so an interrupted recovery is taken up by the
next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fluxforge_common.config.settings import FluxForgeSettings
from fluxforge_common.dataset.interrupted import (
    RunInProgressError,
    RunJournal,
    UnsealedSegment,
    find_interrupted,
)
from fluxforge_common.pipeline.embedded import RunSummary
from fluxforge_common.pipeline.lines import date_range
from fluxforge_common.pipeline.reprocess import reprocess
from fluxforge_common.stopping import ReadStop
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.writers.frames import (
    CorruptSegmentError,
    IntactPrefix,
    intact_prefix,
    sealing_order,
    whole_cuts,
)


@dataclass(frozen=True, slots=True)
class SealedSegment:
    """A recovered segment: where it now is, its lines, and the bytes kept and cut."""

    path: str
    lines: int
    kept: int
    cut: int


@dataclass
class Recovery:
    """What `recover` did."""

    segments: list[SealedSegment] = field(default_factory=list)
    runs: int = 0  # dead runs' journals taken up
    dates: list[str] = field(default_factory=list)  # dates whose features were rebuilt
    summary: RunSummary | None = None
    replaced: list[str] = field(default_factory=list)
    stopped: bool = False  # a stop was asked while it ran (the rebuild may still have read everything)
    cut_short: bool = False  # the stop ended the rebuild early: its dates are left for the next recovery

    @property
    def ticks(self) -> int:
        return sum(s.lines for s in self.segments)

    @property
    def bytes_cut(self) -> int:
        return sum(s.cut for s in self.segments)


def recover(
    settings: FluxForgeSettings,
    root: Path,
    *,
    on_progress: Callable[[RunSummary], None] | None = None,
    read_stop: ReadStop | None = None,
) -> Recovery:
    """Recover every interrupted run under `root`; an empty `Recovery` when there is none.

    Stopped through `read_stop`, the rebuild writes what it processed and replaces nothing
    (`reprocess`); the segments stay sealed and the rebuild's journal stays for the next recovery.

    Raises RunInProgressError while a run writes into `root`, and
    CorruptSegmentError (naming the file, nothing changed) for a segment
    damaged other than at its end.
    """
    found = find_interrupted(root)
    if found.running:
        raise RunInProgressError(
            f"a run is writing into {root} (journal {found.running[0]}): recover after it has ended"
        )
    if not found:
        return Recovery()
    storage = LocalStorage(root)
    verified = [_verify(storage, segment) for segment in found.segments]
    prefixes = whole_cuts([prefix for _, prefix in verified])
    dates = sorted({*found.dates, *(_date_of(s.final) for s in found.segments)})
    journal = RunJournal.begin(root, rebuild=True)
    for date in dates:
        journal.note(date)
    for dead in found.journals:
        dead.unlink()
    recovery = Recovery(runs=len(found.journals), dates=dates)
    for n in sealing_order(prefixes):
        segment, (size, _), prefix = found.segments[n], verified[n], prefixes[n]
        if prefix.length:
            storage.seal(segment.path, segment.final, prefix.length)
        else:
            storage.delete(segment.path)  # not one whole frame: nothing in it can be read
        recovery.segments.append(
            SealedSegment(segment.final, prefix.lines, prefix.length, size - prefix.length)
        )
    if dates:
        full_range = date_range(dates[0], dates[-1])
        try:
            recovery.summary, recovery.replaced = reprocess(
                settings,
                root,
                root,
                full_range,
                on_progress=on_progress,
                journal=journal,
                read_stop=read_stop,
            )
        except FileNotFoundError:
            recovery.dates = []  # no tick of these dates reached the archive: nothing to rebuild
        except BaseException:
            journal.release()  # left for the next recovery (a full disk, a failure)
            raise
    if read_stop is not None:
        recovery.stopped = read_stop.stopped
        if read_stop.cut_short:
            recovery.cut_short = True
            journal.release()
            return recovery
    journal.finish()
    return recovery


def _verify(storage: LocalStorage, segment: UnsealedSegment) -> tuple[int, IntactPrefix]:
    """(size, intact prefix) of an unsealed segment."""
    data = storage.read_bytes(segment.path)
    try:
        return len(data), intact_prefix(data, compressed=segment.final.endswith(".zst"))
    except CorruptSegmentError as exc:
        raise CorruptSegmentError(
            f"raw segment {storage.root / segment.path} is damaged other than at its end ({exc}); "
            "move it out of the dataset root to inspect it, then recover again"
        ) from None


def _date_of(path: str) -> str:
    return next(part[5:] for part in path.split("/") if part.startswith("date="))
