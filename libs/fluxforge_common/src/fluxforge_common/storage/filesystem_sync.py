"""One `syncfs(2)` for a batch of files instead of an fsync per file and per directory.

A sink's flush makes ~100 files and their ~100 directories durable at once. Each
fsync waits on the disk for its own inode, so the batch costs ~200 waits even run
concurrently; one syncfs writes back the whole filesystem and, on ext4, xfs and
btrfs, flushes the disk's cache once. It also writes back every other process's
data on that filesystem and waits for it, so it suits a dataset root on a volume
of its own (the sink's persistent volume in `deploy/k8s`), not a disk shared with
a busy broker, nor a hostPath volume.

Linux reports write-back errors through syncfs only from 5.8 on, so anything older,
or another system, is refused.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

MIN_LINUX: Final = (5, 8)


def unsupported_reason() -> str | None:
    """Why this system cannot make files durable by syncfs, or None if it can."""
    if sys.platform != "linux":
        return f"syncfs is Linux's; this is {sys.platform}"
    found = re.match(r"(\d+)\.(\d+)", platform.release())
    if found is None or (int(found[1]), int(found[2])) < MIN_LINUX:
        return f"Linux reports write errors through syncfs from 5.8 on; this kernel is {platform.release()}"
    if not hasattr(ctypes.CDLL(None), "syncfs"):
        return "the C library has no syncfs"
    return None


class FilesystemSync:
    """syncfs of the filesystem that holds `root`, through a descriptor per batch (`batch`)."""

    def __init__(self, root: Path) -> None:
        reason = unsupported_reason()
        if reason is not None:
            raise ValueError(f"fsync_scope 'filesystem' cannot work here: {reason}; use fsync_scope 'files'")
        call = ctypes.CDLL(None, use_errno=True).syncfs
        call.argtypes = [ctypes.c_int]
        call.restype = ctypes.c_int
        self._syncfs: Callable[[int], int] = call
        self.root = root
        self.device = root.stat().st_dev

    def holds(self, paths: Sequence[Path]) -> bool:
        """Whether every path is on this filesystem (not on another mounted inside the root)."""
        try:
            return all(path.stat().st_dev == self.device for path in paths)
        except OSError:
            return False  # the caller syncs each path, which reports the error for its own

    def batch(self) -> FilesystemBatch:
        """A descriptor for one batch: open it before the batch writes its first file."""
        return FilesystemBatch(self)


class FilesystemBatch:
    """One batch's descriptor on the filesystem.

    The kernel reports a write-back error to each descriptor once: any error since the
    descriptor was opened, and one nobody was told of before. Opened before the batch
    writes, its own descriptor gets the errors of its files even when another batch's
    syncfs, running at the same time, reported them first.
    """

    def __init__(self, owner: FilesystemSync) -> None:
        self._owner = owner
        self._fd = os.open(owner.root, os.O_RDONLY | os.O_DIRECTORY)

    def sync(self) -> None:
        """Write back and flush everything on the filesystem; OSError if any of it failed."""
        if self._owner._syncfs(self._fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"syncfs: {os.strerror(code)}")

    def close(self) -> None:
        os.close(self._fd)
