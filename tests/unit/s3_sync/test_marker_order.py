"""A compaction marker crosses a sync only after every file it lists is verified on the other side."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import pytest
from fluxforge_common.config.settings import S3Config
from fluxforge_common.dataset.compaction_marker import MARKER_NAME, CompactionMarker
from fluxforge_common.storage.checksums import Digest, DigestBuilder
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.storage.s3 import ObjectInfo, S3Storage, VerificationError
from fluxforge_common.storage.s3url import S3Url
from fluxforge_s3_sync.plan import is_marker, listed_paths
from fluxforge_s3_sync.transfer import Syncer

PART = "hf/exchange=a/symbol=B%2FC/date=2025-12-01"
FILES = [f"{PART}/compacted-g000001-{i:04d}.parquet" for i in range(6)]
MARKER = f"{PART}/{MARKER_NAME}"


class MemoryS3(S3Storage):
    """S3Storage's verified put/get over a dict, recording the order objects appear in (a unit-test stand-in)."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        super().__init__(S3Url("bucket", "ds"), S3Config(), client=object())
        self.data: dict[str, bytes] = {}
        self.order: list[str] = []
        self.failing = failing

    def put(self, path: str, source: BinaryIO, digest: Digest, *, abort_earlier: bool = True) -> None:
        if path in self.failing:
            raise VerificationError(f"{path}: the server stored other bytes")
        self.data[path] = source.read(digest.size)
        self.order.append(path)

    def info(self, path: str) -> ObjectInfo | None:
        if path not in self.data:
            return None
        return ObjectInfo(len(self.data[path]), self.digest(io.BytesIO(self.data[path])).etag)

    def objects(self, prefix: str = "") -> dict[str, ObjectInfo]:
        return {path: info for path in sorted(self.data) if (info := self.info(path)) is not None}

    def abort_stale_uploads(self, paths: object = ()) -> int:
        return 0

    def open_read(self, path: str) -> BinaryIO:
        return io.BytesIO(self.data[path])

    def get(self, path: str, dest: BinaryIO, expected: ObjectInfo) -> None:
        received = DigestBuilder(self.part_size, self.threshold)
        received.update(self.data[path])
        assert received.result().matches(expected.size, expected.etag)
        dest.write(self.data[path])


def compacted(root: Path) -> LocalStorage:
    storage = LocalStorage(root)
    for i, path in enumerate(FILES):
        storage.write_bytes(path, bytes([i]) * 100)
    storage.write_bytes(
        MARKER, CompactionMarker(1, tuple(p.rsplit("/", 1)[1] for p in FILES), frozenset()).to_bytes()
    )
    return storage


def test_a_marker_is_recognised_and_names_its_files() -> None:
    assert is_marker(MARKER) and not is_marker(FILES[0])
    marker = CompactionMarker(1, ("compacted-g000001-0000.parquet",), frozenset({"part-1.parquet"}))
    assert listed_paths(MARKER, marker) == [FILES[0]]


@pytest.mark.parametrize("concurrency", [1, 8])
def test_upload_puts_the_marker_after_every_file_it_lists(tmp_path: Path, concurrency: int) -> None:
    remote = MemoryS3()
    summary = Syncer(compacted(tmp_path), remote, concurrency=concurrency).upload()
    assert summary.failures == [] and summary.files == len(FILES) + 1
    assert remote.order[-1] == MARKER and sorted(remote.order[:-1]) == FILES


def test_upload_holds_the_marker_back_while_a_listed_file_fails_then_a_rerun_sends_it(tmp_path: Path) -> None:
    local = compacted(tmp_path)
    remote = MemoryS3(failing=frozenset({FILES[3]}))
    summary = Syncer(local, remote, concurrency=4).upload()
    assert MARKER not in remote.data and FILES[3] not in remote.data
    assert sorted(path for path, _ in summary.failures) == sorted([FILES[3], MARKER])
    assert "held back" in dict(summary.failures)[MARKER]

    remote.failing = frozenset()
    again = Syncer(local, remote, concurrency=4).upload()
    assert again.failures == [] and remote.order[-2:] == [FILES[3], MARKER]


def test_download_writes_the_marker_last_and_only_once_its_files_are_there(tmp_path: Path) -> None:
    remote = MemoryS3()
    Syncer(compacted(tmp_path / "src"), remote, concurrency=4).upload()
    written: list[str] = []
    local = LocalStorage(tmp_path / "copy")
    original = local.open_write

    def recording(path: str):  # type: ignore[no-untyped-def]
        written.append(path)
        return original(path)

    local.open_write = recording  # type: ignore[method-assign]
    summary = Syncer(local, remote, concurrency=8).download()
    assert summary.failures == [] and written[-1] == MARKER and sorted(written[:-1]) == FILES

    partial = LocalStorage(tmp_path / "partial")
    del remote.data[FILES[0]]  # the remote's marker lists a file the listing lacks (and the root too)
    held = Syncer(partial, remote, concurrency=4).download()
    assert [path for path, _ in held.failures] == [MARKER] and not partial.exists(MARKER)
