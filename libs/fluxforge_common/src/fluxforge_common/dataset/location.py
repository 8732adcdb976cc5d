"""Where a dataset is read from: a pyarrow filesystem and the root's path on it.

Every reader lists and opens files through `DatasetRoot`, so a local
directory and an `s3://bucket/prefix` root are read by the same code; a caller
with its own filesystem (credentials, an endpoint, a wrapper that counts
opens) passes it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs

from fluxforge_common.storage.s3url import is_s3_url, parse_s3_url

if TYPE_CHECKING:
    from fluxforge_common.config.settings import S3Config


class DatasetUnreachableError(OSError):
    """The storage of a dataset root refused the request or could not be reached (S3 credentials, endpoint)."""

    @classmethod
    def of(cls, where: str, exc: Exception, *, remote: bool = True) -> DatasetUnreachableError:
        """The one line for `where`'s store refusing or not answering (`exc` names no secret)."""
        hint = "; check the endpoint and the credentials (storage.s3, AWS_*)" if remote else ""
        return cls(f"cannot read {where}: {exc}{hint}")


@dataclass(frozen=True, slots=True)
class DatasetRoot:
    """A dataset root: `filesystem` and `path` (no trailing `/`); `uri` is how it was named, for messages."""

    filesystem: pafs.FileSystem
    path: str
    uri: str

    def full(self, rel: str) -> str:
        """The filesystem path of `rel` (a POSIX path relative to the root)."""
        return f"{self.path}/{rel}" if self.path else rel

    def walk(self, prefix: str) -> tuple[list[str], list[str]]:
        """(files, directories) under directory `prefix` ("" = the root), recursive, relative to the root, sorted.

        One listing (one recursive LIST on S3); empty directories are included
        where the filesystem has them; a missing `prefix` lists nothing.
        """
        where = self.full(prefix) if prefix else self.path
        selector = pafs.FileSelector(where, recursive=True, allow_not_found=True)
        cut = len(self.path) + 1 if self.path else 0
        files: list[str] = []
        dirs: list[str] = []
        for info in self.filesystem.get_file_info(selector):
            if info.type == pafs.FileType.File:
                files.append(info.path[cut:])
            elif info.type == pafs.FileType.Directory:
                dirs.append(info.path[cut:])
        return sorted(files), sorted(dirs)

    def open_input(self, rel: str, *, compression: str | None = None) -> pa.NativeFile:
        """A sequential stream of the file at `rel`, decompressed when `compression` is given."""
        return self.filesystem.open_input_stream(self.full(rel), compression=compression)

    def exists(self) -> bool:
        """Whether the root is there; DatasetUnreachableError when its store refuses or cannot be reached."""
        try:
            info = self.filesystem.get_file_info(self.path or ".")
        except OSError as exc:
            remote = not isinstance(self.filesystem, pafs.LocalFileSystem)
            raise DatasetUnreachableError.of(self.uri, exc, remote=remote) from exc
        return bool(info.type == pafs.FileType.Directory)

    def existing(self) -> DatasetRoot:
        """This root, for a reader: FileNotFoundError naming it when it does not exist."""
        if not self.exists():
            raise FileNotFoundError(f"dataset root {self.uri} does not exist")
        return self


def dataset_root(
    root: str | Path | DatasetRoot,
    filesystem: pafs.FileSystem | None = None,
    *,
    s3: S3Config | None = None,
) -> DatasetRoot:
    """Resolve `root`: a local path, `s3://bucket/prefix` (reached as `storage.s3` says: `s3`,
    or its defaults and the AWS environment), another URI pyarrow knows, or a path on
    `filesystem` when one is given."""
    if isinstance(root, DatasetRoot):
        return root
    text = str(root)
    if filesystem is not None:
        path = text.split("://", 1)[1] if "://" in text else text
        return DatasetRoot(filesystem, path.rstrip("/"), text)
    if is_s3_url(text):
        from fluxforge_common.config.settings import S3Config
        from fluxforge_common.storage.s3 import pyarrow_filesystem

        url = parse_s3_url(text)
        return DatasetRoot(
            pyarrow_filesystem(s3 or S3Config()), f"{url.bucket}/{url.prefix}".rstrip("/"), text
        )
    if "://" in text:
        fs, path = pafs.FileSystem.from_uri(text)
        return DatasetRoot(fs, path.rstrip("/"), text)
    return DatasetRoot(pafs.LocalFileSystem(), Path(text).resolve().as_posix().rstrip("/"), text)
