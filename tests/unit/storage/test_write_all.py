"""`write_all`: many files made durable in one pass, in order, and a failure cuts the run at its file."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fluxforge_common.storage import TEMP_PREFIX, LocalStorage
from fluxforge_common.storage import local as local_module
from fluxforge_common.storage.space import DiskFullError

FILES = [(f"t/d{n % 3}/f{n}.bin", f"content {n}".encode()) for n in range(6)]


class BoomError(Exception):
    pass


def temporaries(root: Path) -> list[str]:
    return [name for _d, _s, names in os.walk(root) for name in names if name.startswith(TEMP_PREFIX)]


def test_every_file_is_written_and_yielded_in_order(storage: LocalStorage, data_root: Path) -> None:
    assert list(storage.write_all(FILES)) == [path for path, _ in FILES]
    assert all(storage.read_bytes(path) == data for path, data in FILES)
    assert temporaries(data_root) == []


def test_files_are_synced_before_any_rename_and_each_directory_once_after(
    storage: LocalStorage, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        (data_root / "t" / f"d{n}").mkdir(parents=True)
    events: list[tuple[str, str]] = []
    sync, replace = local_module.fsync_path, os.replace

    def recording_sync(path: Path) -> None:
        events.append(("sync", Path(path).relative_to(data_root).as_posix()))
        sync(path)

    def recording_replace(src: str | Path, dst: str | Path) -> None:
        events.append(("rename", Path(dst).relative_to(data_root).as_posix()))
        replace(src, dst)

    monkeypatch.setattr(local_module, "fsync_path", recording_sync)
    monkeypatch.setattr(os, "replace", recording_replace)
    list(storage.write_all(FILES))
    kinds = [kind for kind, _ in events]
    assert kinds == ["sync"] * 6 + ["rename"] * 6 + ["sync"] * 3
    assert all(Path(path).name.startswith(TEMP_PREFIX) for _, path in events[:6])
    assert [path for _, path in events[6:12]] == [path for path, _ in FILES]
    assert sorted(path for _, path in events[12:]) == ["t/d0", "t/d1", "t/d2"]


def test_a_failing_item_keeps_the_files_before_it_and_nothing_after(
    storage: LocalStorage, data_root: Path
) -> None:
    def files() -> Iterator[tuple[str, bytes]]:
        yield from FILES[:2]
        raise BoomError("third file could not be made")

    written: list[str] = []
    with pytest.raises(BoomError, match="third"):
        written.extend(storage.write_all(files()))
    assert written == [FILES[0][0], FILES[1][0]]
    assert storage.list_files() == sorted(written)
    assert temporaries(data_root) == []


def test_a_failed_sync_cuts_the_run_at_its_file(
    storage: LocalStorage, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = local_module.fsync_path

    def failing_sync(path: Path) -> None:
        if Path(path).name.endswith("f3_bin"):  # the temporary of the fourth file
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        sync(path)

    monkeypatch.setattr(local_module, "fsync_path", failing_sync)
    written: list[str] = []
    with pytest.raises(DiskFullError, match="disk full"):
        written.extend(storage.write_all(FILES))
    assert written == [path for path, _ in FILES[:3]]
    assert storage.list_files() == sorted(written)
    assert temporaries(data_root) == []


def test_a_failed_directory_sync_counts_its_files_as_not_written(
    storage: LocalStorage, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = local_module.fsync_path

    def failing_sync(path: Path) -> None:
        if Path(path) == data_root.resolve() / "t" / "d1":
            raise OSError(errno.EIO, "injected")
        sync(path)

    monkeypatch.setattr(local_module, "fsync_path", failing_sync)
    written: list[str] = []
    with pytest.raises(OSError, match="injected"):
        written.extend(storage.write_all(FILES))
    assert written == [FILES[0][0]]  # f1 lies in t/d1, whose entries may not survive a power cut


def test_directories_made_for_the_files_are_synced_once_with_them_before_any_rename(
    storage: LocalStorage, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    sync, replace = local_module.fsync_path, os.replace

    def recording_sync(path: Path) -> None:
        events.append(("sync", Path(path).relative_to(data_root.resolve()).as_posix()))
        sync(path)

    def recording_replace(src: str | Path, dst: str | Path) -> None:
        events.append(("rename", Path(dst).relative_to(data_root.resolve()).as_posix()))
        replace(src, dst)

    monkeypatch.setattr(local_module, "fsync_path", recording_sync)
    monkeypatch.setattr(os, "replace", recording_replace)
    files = [(f"new/a{n % 2}/b{n}/f.bin", b"x") for n in range(4)]
    assert list(storage.write_all(files)) == [path for path, _ in files]
    first_rename = [kind for kind, _ in events].index("rename")
    before = [path for kind, path in events[:first_rename] if not Path(path).name.startswith(TEMP_PREFIX)]
    # Each directory that got a new entry, once: the root (new), new (a0, a1), a0 (b0, b2), a1 (b1, b3).
    assert sorted(before) == [".", "new", "new/a0", "new/a1"]


def test_a_failed_sync_of_a_made_directory_writes_nothing(
    storage: LocalStorage, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = local_module.fsync_path

    def failing_sync(path: Path) -> None:
        if Path(path) == data_root.resolve() / "new":
            raise OSError(errno.EIO, "injected")
        sync(path)

    monkeypatch.setattr(local_module, "fsync_path", failing_sync)
    written: list[str] = []
    with pytest.raises(OSError, match="injected"):
        written.extend(storage.write_all([("t/d0/f.bin", b"x"), ("new/d/f.bin", b"y")]))
    assert written == []
    assert temporaries(data_root) == []


def test_non_durable_storage_writes_the_same_files(data_root: Path) -> None:
    storage = LocalStorage(data_root, durable=False)
    assert list(storage.write_all(FILES)) == [path for path, _ in FILES]
    assert storage.list_files() == sorted(path for path, _ in FILES)
    assert temporaries(data_root) == []
