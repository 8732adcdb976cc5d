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
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import BinaryIO, Final

# Temporaries start with "." so pyarrow's dataset discovery skips them; their names carry
# no extension because DuckDB's globs (`**/*.parquet`) do match hidden files.
TEMP_PREFIX: Final = ".tmp-"
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

    @abstractmethod
    def open_read(self, path: str) -> BinaryIO:
        """Open `path` for reading; FileNotFoundError if it does not exist. The caller closes it."""

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

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write `data` to `path` atomically (one PUT on S3)."""
        with self.open_write(path) as f:
            f.write(data)

    def read_bytes(self, path: str) -> bytes:
        """The whole content of `path`."""
        with self.open_read(path) as f:
            return f.read()
