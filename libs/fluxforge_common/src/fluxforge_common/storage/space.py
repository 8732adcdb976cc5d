"""A full disk as an operational state: an error that says where and how much is free, and the reserve.

Writes that find no space (ENOSPC, or EDQUOT for a quota) raise `DiskFullError`
naming the dataset root and its free space, so a command can stop cleanly
and say what to do, and a service can pause until space returns. The reserve
(`storage.min_free_mb`) lets a writer stop before the disk is actually full,
which keeps the machine usable and leaves room to seal what is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

NO_SPACE_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
MiB: Final = 1 << 20
# Exit status of a command or service that stopped because its disk is full (or below
# storage.min_free_mb): an operational state to fix, then run again; 1 and 2 mean other things.
DISK_FULL_STATUS: Final = 3


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

    def __reduce__(self) -> tuple[type[DiskFullError], tuple[Path, int, int]]:
        """Rebuilt from its own arguments, so that a reprocess shard can report it to its parent."""
        return type(self), (self.root, self.free, self.reserve_bytes)


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


class DiskFullPause:
    """A service's pause on a full disk: counted, logged once, retried with a growing wait.

    The writer calls `wait(exc)` after each write that found the disk full
    (it sleeps 1 s, then twice as long each time, up to 30 s) and
    `resumed()` after the first write that succeeds again. `problem()` is the
    service's readiness check, `paused`/`pauses` its metrics.
    """

    FIRST_RETRY_S: Final = 1.0
    MAX_RETRY_S: Final = 30.0

    def __init__(self, log: logging.Logger, paused_doing: str) -> None:
        self.log = log
        self.paused_doing = paused_doing  # what the pause stops, for the log line
        self.since: float | None = None  # monotonic time the current pause began
        self.pauses = 0
        self.error = ""
        self._delay = self.FIRST_RETRY_S

    @property
    def paused(self) -> bool:
        return self.since is not None

    async def wait(self, exc: Exception, until: asyncio.Event | None = None) -> None:
        """Start or continue the pause that `exc` (a full disk) caused, then sleep before the retry;
        a stop (`until` set) ends the sleep, so the service gives up the write at once."""
        self.error = str(exc)
        if self.since is None:
            self.since = time.monotonic()
            self.pauses += 1
            self._delay = self.FIRST_RETRY_S
            self.log.warning(
                "%s: paused, %s; retrying until space returns (free space there, or lower "
                "storage.min_free_mb)",
                exc,
                self.paused_doing,
            )
        if until is None:
            await asyncio.sleep(self._delay)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), self._delay)
        self._delay = min(self._delay * 2, self.MAX_RETRY_S)

    def resumed(self) -> None:
        """The write went through: end the pause, if any."""
        if self.since is not None:
            self.log.info(
                "space returned: resuming after %.0f s paused on a full disk", time.monotonic() - self.since
            )
            self.since = None

    def problem(self) -> str | None:
        """Why the service is not ready (paused on a full disk), or None."""
        if self.since is None:
            return None
        return f"paused {time.monotonic() - self.since:.0f} s on a full disk: {self.error}"
