"""`fsync_scope="filesystem"`: a batch of `write_all` made durable by one syncfs before the renames
and one after, the same files as per-file fsyncs, and a failed syncfs counting nothing as written."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

import pytest
from fluxforge_common.storage import TEMP_PREFIX, LocalStorage
from fluxforge_common.storage import local as local_module
from fluxforge_common.storage.filesystem_sync import FilesystemBatch, FilesystemSync, unsupported_reason

FILES = [(f"t/d{n % 3}/f{n}.bin", f"content {n}".encode()) for n in range(6)]

pytestmark = pytest.mark.skipif(unsupported_reason() is not None, reason=str(unsupported_reason()))


def temporaries(root: Path) -> list[str]:
    return [name for _d, _s, names in os.walk(root) for name in names if name.startswith(TEMP_PREFIX)]


def test_a_batch_opens_its_descriptor_first_and_syncs_once_before_the_renames_and_once_after(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(data_root, fsync_scope="filesystem")
    events: list[str] = []
    opened, syncfs, closed = FilesystemBatch.__init__, FilesystemBatch.sync, FilesystemBatch.close
    write, replace = LocalStorage.open_write, os.replace

    def recording_open(self: FilesystemBatch, owner: FilesystemSync) -> None:
        events.append("open")
        opened(self, owner)

    def recording_syncfs(self: FilesystemBatch) -> None:
        events.append("syncfs")
        syncfs(self)

    def recording_close(self: FilesystemBatch) -> None:
        events.append("close")
        closed(self)

    def recording_write(self: LocalStorage, path: str) -> AbstractContextManager[BinaryIO]:
        events.append("write")
        return write(self, path)

    def recording_replace(src: str | Path, dst: str | Path) -> None:
        events.append("rename")
        replace(src, dst)

    def no_fsync(path: Path) -> None:
        raise AssertionError(f"{path} fsynced alone")

    monkeypatch.setattr(FilesystemBatch, "__init__", recording_open)
    monkeypatch.setattr(FilesystemBatch, "sync", recording_syncfs)
    monkeypatch.setattr(FilesystemBatch, "close", recording_close)
    monkeypatch.setattr(LocalStorage, "open_write", recording_write)
    monkeypatch.setattr(os, "replace", recording_replace)
    monkeypatch.setattr(local_module, "fsync_path", no_fsync)
    assert list(storage.write_all(FILES)) == [path for path, _ in FILES]
    assert events == ["open"] + ["write"] * 6 + ["syncfs"] + ["rename"] * 6 + ["syncfs", "close"]
    assert all(storage.read_bytes(path) == data for path, data in FILES)
    assert temporaries(data_root) == []


def test_a_single_file_is_fsynced_alone(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (data_root / "t" / "d0").mkdir(parents=True)
    storage = LocalStorage(data_root, fsync_scope="filesystem")
    synced: list[Path] = []
    sync = local_module.fsync_path

    def recording_sync(path: Path) -> None:
        synced.append(Path(path))
        sync(path)

    def no_syncfs(self: FilesystemBatch) -> None:
        raise AssertionError("one file needs no syncfs")

    monkeypatch.setattr(local_module, "fsync_path", recording_sync)
    monkeypatch.setattr(FilesystemBatch, "sync", no_syncfs)
    assert list(storage.write_all(FILES[:1])) == [FILES[0][0]]
    assert [path.name.startswith(TEMP_PREFIX) for path in synced] == [True, False]  # the file, its directory


def test_a_failed_syncfs_writes_nothing_and_says_why(data_root: Path) -> None:
    storage = LocalStorage(data_root, fsync_scope="filesystem")
    whole = storage._filesystem
    assert whole is not None

    def failing(fd: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    whole._syncfs = failing
    written: list[str] = []
    with pytest.raises(OSError, match="syncfs: Input/output error") as raised:
        written.extend(storage.write_all(FILES))
    assert raised.value.errno == errno.EIO
    assert written == []
    assert storage.list_files() == []
    assert temporaries(data_root) == []


def test_only_paths_on_the_roots_filesystem_are_held(data_root: Path) -> None:
    data_root.mkdir()
    (data_root / "f").write_bytes(b"x")
    whole = FilesystemSync(data_root)
    assert whole.holds([data_root, data_root / "f"])
    assert not whole.holds([data_root / "f", Path("/proc/self")])  # procfs: another filesystem
    assert not whole.holds([data_root / "missing"])  # left to its own fsync, which names the error


@pytest.mark.parametrize(
    ("system", "release", "why"),
    [("linux", "5.4.0-150-generic", "from 5.8 on"), ("darwin", "23.1.0", "Linux's; this is darwin")],
)
def test_a_system_that_cannot_report_syncfs_errors_is_refused(
    data_root: Path, monkeypatch: pytest.MonkeyPatch, system: str, release: str, why: str
) -> None:
    monkeypatch.setattr(sys, "platform", system)
    monkeypatch.setattr(platform, "release", lambda: release)
    with pytest.raises(ValueError, match=f"{why}.*use fsync_scope 'files'"):
        LocalStorage(data_root, fsync_scope="filesystem")


def test_the_filesystem_scope_without_fsyncs_is_refused(data_root: Path) -> None:
    with pytest.raises(ValueError, match="does nothing without fsyncs"):
        LocalStorage(data_root, durable=False, fsync_scope="filesystem")
