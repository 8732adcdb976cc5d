"""The one small interface writers use to reach storage.

Everything above this layer speaks relative POSIX paths (`hf/exchange=x/...`),
which are S3 keys as they are and local paths under a root. The contract is
the part both can keep:

- a file becomes visible only when complete: locally a temp file renamed into
  place, on S3 a finished PUT or completed multipart upload; a failed write
  leaves nothing visible;
- listing is of files only, recursive, sorted, and never shows in-flight
  temporaries;
- deleting a missing file is not an error (S3 cannot tell you anyway).

A writer that streams for a long time (the raw archive) opens its file with
`open_recoverable` instead: a backend that can keeps the file, while it is
written, under an unsealed name that listings skip, so that what `sync` made
durable survives a crash and can be sealed into place later.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO, Final

# Temporaries start with "." so pyarrow's dataset discovery skips them; their names carry
# no extension because DuckDB's globs (`**/*.parquet`) do match hidden files.
TEMP_PREFIX: Final = ".tmp-"
# An unsealed file keeps its final name between these, so it can be sealed into place after a
# crash; the suffix keeps DuckDB's globs (`**/*.ndjson.zst`) from matching it.
UNSEALED_PREFIX: Final = ".unsealed-"
UNSEALED_SUFFIX: Final = ".part"
_MAX_COMPONENT_BYTES: Final = 255


def check_path(path: str) -> str:
    """Return `path` if it is a clean relative POSIX path, else raise ValueError.

    Clean means: non-empty components, none of them `.` or `..`, no leading `/`,
    no backslash (a separator on Windows and a trap on S3), nothing
    non-printable, and no component longer than a file name may be. This is
    the backend-independent half of "never escape the root"; a local backend
    also resolves symlinks.
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"storage path must be a non-empty string, got {path!r}")
    if path.startswith("/"):
        raise ValueError(f"storage path must be relative, got {path!r}")
    if "\\" in path:
        raise ValueError(f"storage path must use '/' only, got {path!r}")
    if not path.isprintable():
        raise ValueError(f"storage path contains control or non-printable characters: {path!r}")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"storage path has an empty, '.' or '..' component: {path!r}")
        if len(part.encode()) > _MAX_COMPONENT_BYTES:
            raise ValueError(
                f"storage path component longer than {_MAX_COMPONENT_BYTES} bytes: {part[:40]!r}..."
            )
    return path


def is_temp_name(name: str) -> bool:
    """True for the base name of an in-flight (or abandoned) temporary file."""
    return name.startswith(TEMP_PREFIX)


def unsealed_name(name: str) -> str:
    """The base name a recoverable file has while it is written; `sealed_name` inverts it."""
    return f"{UNSEALED_PREFIX}{name}{UNSEALED_SUFFIX}"


def sealed_name(name: str) -> str | None:
    """The final base name of unsealed file `name`, or None when `name` is not unsealed."""
    if name.startswith(UNSEALED_PREFIX) and name.endswith(UNSEALED_SUFFIX):
        final = name[len(UNSEALED_PREFIX) : -len(UNSEALED_SUFFIX)]
        return final or None
    return None


def is_hidden_name(name: str) -> bool:
    """True for files listings never show: temporaries and unsealed files."""
    return is_temp_name(name) or sealed_name(name) is not None


def temp_name(name: str) -> str:
    """A unique temporary base name for a file that will be renamed to `name`.

    The final name is kept (dots replaced, truncated) only so an abandoned
    temporary can be traced to what it was meant to become.
    """
    hint = name.replace(".", "_").encode()[:200].decode(errors="ignore")
    return f"{TEMP_PREFIX}{uuid.uuid4().hex}-{hint}"


class StorageBackend(ABC):
    """Atomic file storage addressed by relative POSIX paths (local today, S3 next)."""

    @abstractmethod
    def open_write(self, path: str) -> AbstractContextManager[BinaryIO]:
        """Stream a new file to `path`; it appears, whole, only when the block exits cleanly.

        An existing file at `path` is replaced atomically (readers see the old or
        the new content, never a mix). If the block raises, nothing becomes
        visible and the partial data is discarded. The yielded object supports
        `write` and `tell` (bytes written so far), which is all the writers use,
        so an S3 backend can hand out a spooling or multipart-upload stream.
        """

    def open_recoverable(self, path: str) -> AbstractContextManager[BinaryIO]:
        """Like `open_write`, for a file written over a long time whose synced part must survive a crash.

        A backend that can keeps the open file under `unsealed_name` (listings
        skip it) and leaves it there if the block raises or the process dies,
        for `fluxforge recover` to seal; this default is `open_write`, whose
        partial file a crash loses.
        """
        return self.open_write(path)

    def sync(self, f: BinaryIO) -> None:
        """Make what was written to `f` (from `open_recoverable`) survive a crash of the process
        and, where the backend can, of the machine."""
        f.flush()

    def discard_incomplete(self, paths: list[str]) -> None:  # noqa: B027 - nothing to discard by default
        """Remove what killed writes of `paths` left behind (temporaries, unfinished uploads).

        Call it only where no other writer may be writing these paths (a sink
        recovering the chunk it owns); finished files are left alone.
        """

    def check_space(self) -> None:  # noqa: B027 - most backends have no disk to fill
        """Raise `space.DiskFullError` when less than the backend's reserve is free (a local disk has one)."""

    @abstractmethod
    def open_read(self, path: str) -> BinaryIO:
        """Open `path` for reading; FileNotFoundError if it does not exist. The caller closes it."""

    def open_random(self, path: str) -> BinaryIO:
        """Open `path` for reads anywhere in it (seekable), as for a Parquet footer; like `open_read`."""
        return self.open_read(path)

    @abstractmethod
    def exists(self, path: str) -> bool:
        """True if a (complete) file exists at `path`; directories do not count."""

    @abstractmethod
    def list_files(self, prefix: str = "") -> list[str]:
        """All complete files under directory `prefix` ("" = everything), recursive, sorted.

        `prefix` names a directory, not a string prefix: `"hf/exchange=a"` does
        not list `hf/exchange=ab/...`. Paths are relative to the storage root.
        """

    @abstractmethod
    def delete(self, path: str) -> None:
        """Remove the file at `path`; a missing file is not an error."""

    @abstractmethod
    def size(self, path: str) -> int:
        """Size of the file at `path` in bytes; FileNotFoundError if it does not exist."""

    def move(self, source: str, dest: str) -> None:
        """Give file `source` the path `dest` (replacing it), then remove `source`.

        This default copies then deletes, so `dest` is whole before `source`
        goes and a move killed between the two leaves both, equal: moving
        again finishes it. A backend that can rename atomically does.
        """
        self.write_bytes(dest, self.read_bytes(source))
        self.delete(source)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write `data` to `path` atomically (one PUT on S3)."""
        with self.open_write(path) as f:
            f.write(data)

    def write_all(self, files: Iterable[tuple[str, bytes]]) -> Iterator[str]:
        """Write each `(path, data)` of `files` as `write_bytes` does; yield each path once it is written.

        Paths are yielded in the order given. The first failure - of a write, or
        of `files` itself while it is iterated - stops the run and is raised
        after the paths written before it: that file and the ones after it
        count as not written (a retry replaces whatever of them exists). A
        backend may make the files durable together (one pass of fsyncs on a
        local disk), so a path can be yielded only after every file is handed over.
        """
        for path, data in files:
            self.write_bytes(path, data)
            yield path

    def read_bytes(self, path: str) -> bytes:
        """The whole content of `path`."""
        with self.open_read(path) as f:
            return f.read()
