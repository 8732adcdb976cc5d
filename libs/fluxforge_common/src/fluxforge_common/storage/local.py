"""`LocalStorage`: the storage contract on a local directory.

Atomicity is a temp file in the target's own directory (same filesystem, so
`os.replace` is an atomic rename) that readers and listings skip. Durability is
`fsync` of the file before the rename and of the directory after it, so a
power cut leaves either the old file or the complete new one; `durable=False`
drops the fsyncs for bulk jobs that can simply be rerun (e.g. reprocessing).

A recoverable file is written in place under its unsealed name and renamed to
its final name when the block ends; `sync` fsyncs it. After a crash (or a
failed write) it stays unsealed until `seal` truncates it to what its reader
verified and renames it into place.

`write_all` makes many files durable in one pass: every file is written and
closed first, then all are fsynced at once (in threads: the filesystem commits
concurrent fsyncs together, and each one waits on the disk without the GIL),
then renamed in order, then each directory is fsynced once. A Parquet chunk of
50 symbols costs one round of disk waits instead of 100 in a row. With
`fsync_scope="filesystem"` each of those rounds is one `syncfs` instead
(`filesystem_sync`).

A full disk raises `DiskFullError` (naming the root and its free space) from
every write; `check_space` raises it when less than `min_free_bytes` is free.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Literal, TypeVar

from fluxforge_common.storage.base import (
    TEMP_PREFIX,
    StorageBackend,
    check_path,
    is_hidden_name,
    is_temp_name,
    sealed_name,
    temp_name,
    unsealed_name,
)
from fluxforge_common.storage.filesystem_sync import FilesystemBatch, FilesystemSync
from fluxforge_common.storage.space import check_reserve, no_space_as_disk_full

_UUID_HEX: Final = 32  # the random part of a temporary's name (`temp_name`)
T = TypeVar("T")
# Threads that wait on fsyncs (no CPU work: each call releases the GIL while the disk works);
# the executor starts them on first use.
SYNC_THREADS: Final = 16
# Directories a storage remembers as resolved inside its root (`_writable`); past this many it
# forgets them all and resolves again: a sink that runs for months writes to new dates.
KNOWN_DIRECTORIES: Final = 4096
_sync_pool = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="fluxforge-fsync")
FsyncScope = Literal["files", "filesystem"]


def fsync_dir(directory: Path) -> None:
    """Make the entries of `directory` (files created, renamed or removed) durable."""
    fsync_path(directory)


def replace_file(path: Path, data: bytes) -> None:
    """Put `data` at `path` whole or not at all, and durably: a power cut leaves the old or the new bytes.

    The rename is only durable once the directory is fsynced too; without that a
    crash can bring back the previous file after its replacement was relied on.
    """
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    fsync_dir(path.parent)


def fsync_path(path: Path) -> None:
    """fsync the file or directory at `path` (Linux flushes the inode whichever descriptor asks)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _identity(found: os.stat_result) -> tuple[int, int] | None:
    """A directory's (device, inode); None for anything else (a link, a file)."""
    return (found.st_dev, found.st_ino) if stat.S_ISDIR(found.st_mode) else None


def _unchanged(chain: list[tuple[Path, tuple[int, int]]]) -> bool:
    """Whether each path of `chain` is still the directory it was (not a link to one)."""
    for path, identity in chain:
        try:
            if _identity(path.lstat()) != identity:
                return False
        except OSError:
            return False
    return True


def _attempt(call: Callable[[T], None], item: T) -> OSError | None:
    try:
        call(item)
    except OSError as exc:
        return exc
    return None


def sync_all(call: Callable[[T], None], items: Sequence[T]) -> list[OSError | None]:
    """`call(item)` for every item, concurrently; each item's error (or None), in order."""
    if len(items) <= 1:
        return [_attempt(call, item) for item in items]
    return list(_sync_pool.map(_attempt, [call] * len(items), items))


@dataclass(frozen=True, slots=True)
class _Staged:
    """A file of `write_all` that is complete under its temporary name, not yet renamed."""

    path: str
    tmp: Path
    final: Path


class LocalStorage(StorageBackend):
    """Files under `root`; every path is resolved there and refused if it would leave it."""

    def __init__(
        self,
        root: str | Path,
        *,
        durable: bool = True,
        fsync_scope: FsyncScope = "files",
        min_free_bytes: int = 0,
    ) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._inside_root = str(self.root).rstrip("/") + "/"  # what every path under it starts with
        self.durable = durable
        if fsync_scope == "filesystem" and not durable:
            raise ValueError("fsync_scope 'filesystem' does nothing without fsyncs (durable=False)")
        self._filesystem = FilesystemSync(self.root) if fsync_scope == "filesystem" else None
        self.min_free_bytes = min_free_bytes
        self._staging = threading.local()  # `write_all` of this thread collects its files here
        # root-relative directory -> the root and each directory down to it, resolved, with the
        # identity each had (`_writable`)
        self._directories: dict[str, list[tuple[Path, tuple[int, int]]]] = {}

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def local_path(self, path: str) -> Path:
        """Absolute local path for relative `path`; ValueError if it resolves outside the root.

        Resolving follows symlinks, so a link inside the root that points out of
        it is refused as well as `..`.
        """
        # On strings: `Path.resolve` and `is_relative_to` cost ~2x `realpath` (a sink resolves every file).
        full = os.path.realpath(self._inside_root + check_path(path))
        if not full.startswith(self._inside_root) or full == self._inside_root:
            raise ValueError(f"storage path {path!r} resolves outside {self.root}")
        return Path(full)

    def _make_dirs(self, directory: Path) -> None:
        missing: list[Path] = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        unsynced: set[Path] | None = getattr(self._staging, "directories", None)
        for created in reversed(missing):
            created.mkdir(exist_ok=True)  # another writer may create it concurrently
            if self.durable:
                if unsynced is None:
                    fsync_dir(created.parent)
                else:  # `write_all` syncs them with its files, before any of them is renamed
                    unsynced.add(created.parent)

    @contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        with no_space_as_disk_full(self.root):
            final = self._writable(path)
            tmp = final.with_name(temp_name(final.name))
            f = tmp.open("xb")
            staged: list[_Staged] | None = getattr(self._staging, "files", None)
            try:
                yield f
                f.flush()
                if self.durable and staged is None:
                    os.fsync(f.fileno())
                f.close()
                if staged is not None:
                    staged.append(_Staged(path, tmp, final))
                    return  # `write_all` syncs and renames it with the others
                tmp.replace(final)
            except BaseException:
                with contextlib.suppress(OSError):  # a full disk cannot take the rest of the buffer
                    f.close()
                tmp.unlink(missing_ok=True)  # never visible, and the caller still holds its content
                raise
            if self.durable:
                fsync_dir(final.parent)

    def write_all(self, files: Iterable[tuple[str, bytes]]) -> Iterator[str]:
        """Write every file, then fsync them all at once, rename them in order, fsync each directory once.

        Every write goes through `open_write`, so the temporaries, their names and
        what a failure leaves are the same as for single files. A file counts as
        written once its rename and its directory are durable; the first one that
        is not (or the first write or item of `files` that fails) ends the run:
        the files before it are yielded, its temporary and the later ones are
        removed, and its error is raised.
        """
        # Opened before the first write: the kernel reports to it the write-back errors of what follows.
        batch = self._filesystem.batch() if self._filesystem is not None else None
        try:
            yield from self._write_all(files, batch)
        finally:
            if batch is not None:
                batch.close()

    def _write_all(self, files: Iterable[tuple[str, bytes]], batch: FilesystemBatch | None) -> Iterator[str]:
        staged: list[_Staged] = []
        directories: set[Path] = set()  # whose new entries (directories made for the files) are not durable
        failure: Exception | None = None
        try:
            for path, data in files:
                self._staging.files, self._staging.directories = staged, directories
                try:
                    with self.open_write(path) as f:
                        f.write(data)
                finally:
                    self._staging.files = self._staging.directories = None
        except Exception as exc:  # raised below, once the files before it are in place
            failure = exc
        except BaseException:
            for item in staged:
                item.tmp.unlink(missing_ok=True)
            raise
        with no_space_as_disk_full(self.root):
            done, failure = self._publish(staged, failure, sorted(directories), batch)
            yield from (item.path for item in staged[:done])
            if failure is not None:
                raise failure

    def _publish(
        self,
        staged: list[_Staged],
        failure: Exception | None,
        made_in: list[Path],
        batch: FilesystemBatch | None,
    ) -> tuple[int, Exception | None]:
        """Sync `staged` and the directories `made_in` (that had directories made for them), rename
        them and sync the directories they are in; returns how many are in place, and why not all."""
        errors: list[OSError | None] = [None] * len(staged)
        if self.durable:
            synced_first = self._sync_paths([*(item.tmp for item in staged), *made_in], batch)
            errors = synced_first[: len(staged)]
            made = next((error for error in synced_first[len(staged) :] if error is not None), None)
            if made is not None:  # a power cut could take the files' directories: none counts as written
                errors = [made] * len(staged)
        renamed = 0
        for item, error in zip(staged, errors, strict=True):
            if error is None:
                try:
                    item.tmp.replace(item.final)
                except OSError as exc:
                    error = exc
            if error is not None:
                failure = error
                break
            renamed += 1
        for item in staged[renamed:]:
            item.tmp.unlink(missing_ok=True)
        if not self.durable:
            return renamed, failure
        directories = list(dict.fromkeys(item.final.parent for item in staged[:renamed]))
        synced = dict(zip(directories, self._sync_paths(directories, batch), strict=True))
        for done, item in enumerate(staged[:renamed]):
            error = synced[item.final.parent]
            if error is not None:
                return done, error  # renamed but not durable: counts as not written, like a failed write
        return renamed, failure

    def _sync_paths(self, paths: Sequence[Path], batch: FilesystemBatch | None) -> list[OSError | None]:
        """Make `paths` (files and directories) durable: each fsynced, concurrently, or all by one
        syncfs of `batch` (`fsync_scope="filesystem"`); each path's error (or None), in order. A
        failed syncfs names no file: every path gets its error."""
        whole = self._filesystem
        if whole is None or batch is None or len(paths) <= 1 or not whole.holds(paths):
            return sync_all(fsync_path, paths)
        try:
            batch.sync()
        except OSError as exc:
            return [exc] * len(paths)
        return [None] * len(paths)

    @contextmanager
    def open_recoverable(self, path: str) -> Iterator[BinaryIO]:
        with no_space_as_disk_full(self.root):
            final = self._writable(path)
            unsealed = final.with_name(unsealed_name(final.name))
            f = unsealed.open("xb")
            if self.durable:
                fsync_dir(final.parent)  # the file itself must survive a power cut to be recovered
            try:
                yield f
                self.sync(f)
            finally:
                with contextlib.suppress(OSError):  # what could not be flushed stays unsealed, recoverable
                    f.close()
            unsealed.replace(final)
            if self.durable:
                fsync_dir(final.parent)

    def sync(self, f: BinaryIO) -> None:
        with no_space_as_disk_full(self.root):
            f.flush()
            if self.durable:
                os.fsync(f.fileno())

    def check_space(self) -> None:
        check_reserve(self.root, self.min_free_bytes)

    def discard_incomplete(self, paths: Iterable[str]) -> None:
        """Remove the temporaries of `paths`: `.tmp-<32 hex>-<hint>` with the hint `temp_name` derives
        from exactly that target, so no other file's temporary is touched (each directory read once)."""
        hints: dict[Path, set[str]] = {}
        for path in paths:
            target = self.local_path(path)
            hints.setdefault(target.parent, set()).add(
                temp_name(target.name)[len(TEMP_PREFIX) + _UUID_HEX + 1 :]
            )
        for directory, wanted in hints.items():
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for item in entries:
                name = item.name
                if is_temp_name(name) and name[len(TEMP_PREFIX) + _UUID_HEX + 1 :] in wanted:
                    directory.joinpath(name).unlink(missing_ok=True)

    def unsealed_files(self, prefix: str = "") -> list[str]:
        """The unsealed files under directory `prefix` (what crashed recoverable writes left), sorted."""
        return sorted(
            path for path in self.walk_files(prefix) if sealed_name(path.rsplit("/", 1)[-1]) is not None
        )

    def seal(self, path: str, into: str, length: int) -> None:
        """Keep the first `length` bytes of file `path` and rename it to `into`, durably.

        For a file a crash left unsealed, once its reader has verified that
        prefix; refuses to replace an existing `into`.
        """
        source = self.local_path(path)
        with no_space_as_disk_full(self.root):
            final = self._writable(into)
            if final.exists():
                raise FileExistsError(f"cannot seal {path}: {into} already exists")
            with source.open("r+b") as f:
                f.truncate(length)
                if self.durable:
                    os.fsync(f.fileno())
            source.replace(final)
            if self.durable:
                fsync_dir(final.parent)

    def move(self, source: str, dest: str) -> None:
        """Rename `source` to `dest` (atomic, durable), removing the directories it leaves empty."""
        old = self.local_path(source)
        with no_space_as_disk_full(self.root):
            new = self._writable(dest)
            old.replace(new)
            if self.durable:
                fsync_dir(new.parent)
                fsync_dir(old.parent)
        directory = old.parent
        while directory != self.root and not any(directory.iterdir()):
            directory.rmdir()
            directory = directory.parent

    def _writable(self, path: str) -> Path:
        """The local path a new file `path` goes to, its directories created.

        A directory this storage resolved before is taken again while it and every directory
        above it, up to the root, are the same directories, none of them a link (one `lstat`
        each instead of a resolution of the path: ~80 us less a file); once one of them was
        moved, removed or replaced, the path is resolved and checked again.
        """
        directory, _, name = check_path(path).rpartition("/")
        if is_hidden_name(name):
            raise ValueError(f"{path!r} uses a temporary or unsealed-file name and would never be listed")
        known = self._directories.get(directory)
        if known is not None and _unchanged(known):
            return known[-1][0] / name
        parent = self.local_path(directory) if directory else self.root
        self._make_dirs(parent)
        parts = parent.relative_to(self.root).parts
        steps = [self.root.joinpath(*parts[:depth]) for depth in range(len(parts) + 1)]
        chain = [(step, identity) for step in steps if (identity := _identity(step.lstat())) is not None]
        if len(self._directories) >= KNOWN_DIRECTORIES:
            self._directories.clear()
        if len(chain) == len(steps):  # else a link was put in meanwhile: resolved again next time
            self._directories[directory] = chain
        return parent / name

    def walk_files(self, prefix: str = "") -> Iterator[str]:
        """Every file under directory `prefix`, temporaries and unsealed files included, root-relative."""
        base = self.local_path(prefix.strip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return
        for dirpath, _dirnames, filenames in os.walk(base):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            yield from (f"{rel_dir}/{name}" if rel_dir != "." else name for name in filenames)

    def open_read(self, path: str) -> BinaryIO:
        return self.local_path(path).open("rb")

    def exists(self, path: str) -> bool:
        return self.local_path(path).is_file()

    def list_files(self, prefix: str = "") -> list[str]:
        return sorted(path for path in self.walk_files(prefix) if not is_hidden_name(path.rsplit("/", 1)[-1]))

    def delete(self, path: str) -> None:
        self.local_path(path).unlink(missing_ok=True)

    def size(self, path: str) -> int:
        full = self.local_path(path)
        if not full.is_file():
            raise FileNotFoundError(f"no file {path!r} in {self}")
        return full.stat().st_size
