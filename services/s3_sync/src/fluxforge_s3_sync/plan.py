"""Which files a sync moves, compares and may delete: pure rules over dataset paths.

Only the dataset's own directories are synced (the feature tables, raw/ and
deadletter/): a collector's spool, the sink's journal and run journals belong
to the machine that writes them. Files still being written are never seen:
they carry temporary or unsealed names (storage/base.py), which listings skip.
`--delete-local-after-verify` goes further and deletes only files of closed
partitions, those dated before today (UTC), where no writer adds files any more.
A compacted partition's marker (`_compaction.json`) moves only after every file
it lists is on the other side, so no reader there sees a marker before its files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal

from fluxforge_common.dataset.compaction_marker import MARKER_NAME, CompactionMarker
from fluxforge_common.dataset.partitioning import DEADLETTER_TABLE, PARQUET_TABLES, RAW_TABLE

DATASET_DIRS: Final = (*PARQUET_TABLES, RAW_TABLE, DEADLETTER_TABLE)


def in_scope(path: str) -> bool:
    """True for a file of the dataset's own directories whose path has no hidden component."""
    parts = path.split("/")
    return len(parts) > 1 and parts[0] in DATASET_DIRS and not any(p.startswith(".") for p in parts)


def table_of(path: str) -> str:
    """The dataset directory `path` belongs to (a bounded metric label)."""
    top = path.split("/", 1)[0]
    return top if top in DATASET_DIRS else "other"


def is_marker(path: str) -> bool:
    """True for a compacted partition's marker, which moves after the files it lists."""
    return path.rsplit("/", 1)[-1] == MARKER_NAME


def listed_paths(marker_path: str, marker: CompactionMarker) -> list[str]:
    """The dataset paths of the files the marker at `marker_path` makes visible."""
    directory = marker_path.rsplit("/", 1)[0]
    return [f"{directory}/{name}" for name in marker.files]


def partition_date(path: str) -> str | None:
    """The `date=YYYY-MM-DD` value of `path`, if it has one."""
    for part in path.split("/")[:-1]:
        if part.startswith("date="):
            return part[len("date=") :]
    return None


def utc_today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def closed(path: str, today: str, journaled: frozenset[str] = frozenset()) -> bool:
    """True when `path` lies in a partition dated before `today` that no run journal names (`journaled`):
    no writer adds to it any more. A live run may still write a journaled date, and the recovery of a
    dead one rebuilds the date's features from the local raw archive, which must still be whole."""
    date = partition_date(path)
    return date is not None and date < today and date not in journaled


@dataclass(frozen=True, slots=True)
class Difference:
    """A file on one side that the other side lacks or holds differently."""

    path: str
    kind: Literal["only local", "only remote", "differs"]
    local_size: int | None
    remote_size: int | None

    def line(self) -> str:
        sizes = f"local {self.local_size if self.local_size is not None else '-'} B, remote "
        sizes += f"{self.remote_size if self.remote_size is not None else '-'} B"
        return f"{self.kind:<12} {self.path} ({sizes})"
