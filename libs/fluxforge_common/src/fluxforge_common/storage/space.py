"""A full disk as an operational state: an error that says where and how much is free, and the reserve.

Writes that find no space (ENOSPC, or EDQUOT for a quota) raise `DiskFullError`
naming the dataset root and its free space, so a command can stop cleanly
and say what to do, and a service can pause until space returns. The reserve
(`storage.min_free_mb`) lets a writer stop before the disk is actually full,
which keeps the machine usable and leaves room to seal what is open.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

NO_SPACE_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
MiB: Final = 1 << 20


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem of `path`."""
    return shutil.disk_usage(path).free


class DiskFullError(OSError):
    """No space left to write under `root`, or less free than the reserve (`reserve_bytes` > 0)."""

    def __init__(self, root: Path, free: int, reserve_bytes: int = 0) -> None:
        self.root = root
        self.free = free
        self.reserve_bytes = reserve_bytes
        if reserve_bytes:
            what = f"{free / MiB:.1f} MiB free, below the reserve of {reserve_bytes / MiB:g} MiB"
            what += " (storage.min_free_mb)"
        else:
            what = f"no space left on device ({free / MiB:.1f} MiB free)"
        super().__init__(errno.ENOSPC, f"disk full at {root}: {what}")

    def __str__(self) -> str:
        return str(self.strerror)


def is_no_space(exc: BaseException) -> bool:
    """True for the OSError of a write that found the disk (or the quota) full."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


@contextmanager
def no_space_as_disk_full(root: Path) -> Iterator[None]:
    """Turn an ENOSPC/EDQUOT raised in the block into a `DiskFullError` for `root`."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as exc:
        if exc.errno not in NO_SPACE_ERRNOS:
            raise
        raise DiskFullError(root, free_bytes(root)) from exc


def check_reserve(root: Path, reserve_bytes: int) -> None:
    """Raise `DiskFullError` when `root`'s filesystem has less than `reserve_bytes` free (0: never)."""
    if reserve_bytes > 0:
        free = free_bytes(root)
        if free < reserve_bytes:
            raise DiskFullError(root, free, reserve_bytes)
