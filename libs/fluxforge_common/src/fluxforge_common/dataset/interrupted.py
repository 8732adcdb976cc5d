"""What an interrupted `fluxforge run` leaves in a dataset root, and the journal that tells.

A run that archives raw ticks keeps a journal, `.runs/<id>.dates`: the UTC
dates of the ticks it archived, one per line, each fsynced before the first
tick of its date is archived. The run holds an exclusive `flock` on it while it
runs and removes it when it ends cleanly, so a journal nobody holds belongs to
a run that died: its dates' features may lack rows (buffered, never written)
or hold rows of ticks that never reached a durable raw frame. With the run's
unsealed raw segments it is what `fluxforge recover` takes up and `fluxforge
validate` reports.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from fluxforge_common.dataset.partitioning import RAW_TABLE, check_date
from fluxforge_common.storage.base import sealed_name
from fluxforge_common.storage.local import LocalStorage, fsync_dir
from fluxforge_common.storage.space import no_space_as_disk_full

RUNS_DIR: Final = ".runs"
_JOURNAL_SUFFIX: Final = ".dates"
_REBUILD_SUFFIX: Final = ".rebuild.dates"  # a reprocess or recovery: it replaces its dates' files
# A segment an earlier fluxforge streamed as an atomic temporary (`storage.base.temp_name` of
# `seg-<ts>-<n>-<hex>.ndjson[.zst]`): unsealed data too, under a name that still says which.
_LEGACY_SEGMENT: Final = re.compile(r"\.tmp-[0-9a-f]{32}-(seg-\d{13}-\d{6}-[0-9a-f]{8})_ndjson(_zst)?")


class RunInProgressError(RuntimeError):
    """A live run (or reprocess, or recovery) writes into the root, or into the dates asked."""


class RunJournal:
    """The journal of a run writing into a dataset root; `begin` creates and locks it."""

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self.path = path
        self._file = file
        self._dates: set[str] = set()

    @classmethod
    def begin(cls, root: Path, *, rebuild: bool = False) -> RunJournal:
        """`rebuild`: the run replaces its dates' files (reprocess, recovery), which compaction must not
        merge meanwhile."""
        directory = Path(root) / RUNS_DIR
        suffix = _REBUILD_SUFFIX if rebuild else _JOURNAL_SUFFIX
        path = directory / f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:8]}{suffix}"
        with no_space_as_disk_full(Path(root)):
            directory.mkdir(parents=True, exist_ok=True)
            file = path.open("xb")
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fsync_dir(directory)
        return cls(path, file)

    def note(self, date: str) -> None:
        """Record that the run is about to archive ticks of `date` (durably, once per date)."""
        if date in self._dates:
            return
        with no_space_as_disk_full(self.path.parent.parent):
            self._file.write(f"{check_date(date)}\n".encode())
            self._file.flush()
            os.fsync(self._file.fileno())
        self._dates.add(date)

    def release(self) -> None:
        """The run stops with its dates still to recover: unlock the journal and leave it for `recover`."""
        self._file.close()

    def finish(self) -> None:
        """The run ended with everything written: remove the journal."""
        self.path.unlink(missing_ok=True)
        self._file.close()


@dataclass(frozen=True, slots=True)
class UnsealedSegment:
    """A raw segment a crash left open: its file, and the name sealing gives it (root-relative)."""

    path: str
    final: str


@dataclass(frozen=True, slots=True)
class Interrupted:
    """What interrupted runs left under a root, and the journals of runs still writing there."""

    segments: list[UnsealedSegment] = field(default_factory=list)
    journals: list[Path] = field(default_factory=list)  # of runs that died
    dates: list[str] = field(default_factory=list)  # their journals' dates, sorted
    running: list[Path] = field(default_factory=list)  # journals a live run holds

    def __bool__(self) -> bool:
        return bool(self.segments or self.journals)


def find_interrupted(root: Path) -> Interrupted:
    """The unsealed raw segments and the journals of dead and live runs under `root`."""
    storage = LocalStorage(root)
    segments: list[UnsealedSegment] = []
    for path in storage.walk_files(RAW_TABLE):
        directory, name = path.rsplit("/", 1)
        final = _sealed_segment_name(name)
        if final is not None:
            segments.append(UnsealedSegment(path, f"{directory}/{final}"))
    dead: list[Path] = []
    running: list[Path] = []
    dates: set[str] = set()
    for journal in _journals(root):
        noted = _dates_of_dead(journal)
        if noted is None:
            running.append(journal)
        else:
            dead.append(journal)
            dates.update(noted)
    return Interrupted(segments, dead, sorted(dates), running)


def running_dates(root: Path, *, rebuilds_only: bool = False) -> frozenset[str]:
    """The dates the journals of live runs under `root` name (of reprocesses and recoveries only)."""
    dates: set[str] = set()
    for journal in _journals(root):
        if rebuilds_only and not journal.name.endswith(_REBUILD_SUFFIX):
            continue
        with contextlib.suppress(FileNotFoundError):  # it ended meanwhile
            if _dates_of_dead(journal) is None:
                dates.update(_noted_dates(journal.read_bytes()))
    return frozenset(dates)


def settle_rebuilds(root: Path, dates: set[str]) -> None:
    """Remove the journals of dead reprocesses and recoveries whose dates all were rebuilt since."""
    for journal in _journals(root):
        if journal.name.endswith(_REBUILD_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                noted = _dates_of_dead(journal)
                if noted is not None and set(noted) <= dates:
                    journal.unlink()


def journal_dates(root: Path) -> frozenset[str]:
    """The dates every run journal under `root` names, of live runs and of dead ones."""
    dates: set[str] = set()
    for journal in _journals(root):
        with contextlib.suppress(FileNotFoundError):  # a run that ended meanwhile removed it
            dates.update(_noted_dates(journal.read_bytes()))
    return frozenset(dates)


def _journals(root: Path) -> list[Path]:
    journals = Path(root) / RUNS_DIR
    return sorted(journals.glob(f"*{_JOURNAL_SUFFIX}")) if journals.is_dir() else []


def _sealed_segment_name(name: str) -> str | None:
    final = sealed_name(name)
    if final is not None:
        return final
    legacy = _LEGACY_SEGMENT.fullmatch(name)
    if legacy is None:
        return None
    return f"{legacy.group(1)}.ndjson{'.zst' if legacy.group(2) else ''}"


def _dates_of_dead(journal: Path) -> list[str] | None:
    """The dates of a journal nobody holds; None when a live run holds it."""
    with journal.open("rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        return _noted_dates(f.read())


def _noted_dates(data: bytes) -> list[str]:
    dates: list[str] = []
    for line in data.decode(errors="replace").split("\n")[:-1]:  # a torn last line was never fsynced
        with contextlib.suppress(ValueError):
            dates.append(check_date(line))
    return dates
