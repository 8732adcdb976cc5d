"""`small_disk`: a real, tiny filesystem (a tmpfs mount) for the tests of a full disk.

Mounting needs root, which the test machines have; where it is impossible
the tests that need it are skipped with the reason. The mount is always
removed, even when the test fails.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FILLER = "filler"


class SmallDisk:
    """A tmpfs of `size_kib` mounted at `path`; `fill` and `resize` change its free space."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mount(self, size_kib: int) -> None:
        _run("mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(self.path))

    def resize(self, size_kib: int) -> None:
        _run("mount", "-o", f"remount,size={size_kib}k", str(self.path))

    def free(self) -> int:
        return shutil.disk_usage(self.path).free

    def fill(self, leave_bytes: int = 0) -> Path:
        """Write a filler file that leaves about `leave_bytes` free; delete it to free the space."""
        filler = self.path / FILLER
        with filler.open("ab") as f:
            block = b"\0" * 4096
            try:
                while self.free() > leave_bytes:
                    f.write(block)
                    f.flush()
            except OSError:
                pass  # full: as filled as it gets
        return filler

    def unmount(self) -> None:
        _run("umount", "-l", str(self.path))


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 4 MiB tmpfs (`resize` to change it), unmounted after the test."""
    disk = SmallDisk(tmp_path / "disk")
    disk.path.mkdir()
    try:
        disk.mount(4096)
    except (OSError, subprocess.CalledProcessError) as exc:
        reason = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount(8)): {reason}")
    try:
        yield disk
    finally:
        disk.unmount()
