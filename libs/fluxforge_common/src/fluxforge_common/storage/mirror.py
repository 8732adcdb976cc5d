"""`MirroredStorage`: one dataset written to two backends at once (a local disk and S3, for the sink).

A file counts as written only once it is complete on both, so a caller that
commits after `open_write` returns (the sink commits Kafka offsets) never
commits a file that one side lacks. The primary answers every read and
listing; the mirror receives every write and delete. A failed write leaves
nothing new on the side it failed on; the side already written keeps the
file, which is what the caller's retry (or recovery) rewrites or deletes
anyway.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, Final, cast

from fluxforge_common.storage.base import StorageBackend

# A file of the sink is held in memory up to this size, then spooled to a temporary file.
_SPOOL_BYTES: Final = 16 << 20


class MirroredStorage(StorageBackend):
    """Writes and deletes go to `primary` then `mirror`; reads, listings and the space check to `primary`."""

    def __init__(self, primary: StorageBackend, mirror: StorageBackend) -> None:
        self.primary = primary
        self.mirror = mirror

    def __repr__(self) -> str:
        return f"{self.primary!r} + {self.mirror!r}"

    @contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            yield cast(BinaryIO, spool)
            for backend in (self.primary, self.mirror):
                spool.seek(0)
                with backend.open_write(path) as f:
                    shutil.copyfileobj(spool, f)

    def discard_incomplete(self, paths: list[str]) -> None:
        self.primary.discard_incomplete(paths)
        self.mirror.discard_incomplete(paths)

    def check_space(self) -> None:
        self.primary.check_space()

    def open_read(self, path: str) -> BinaryIO:
        return self.primary.open_read(path)

    def exists(self, path: str) -> bool:
        return self.primary.exists(path)

    def list_files(self, prefix: str = "") -> list[str]:
        return self.primary.list_files(prefix)

    def delete(self, path: str) -> None:
        self.primary.delete(path)
        self.mirror.delete(path)

    def size(self, path: str) -> int:
        return self.primary.size(path)
