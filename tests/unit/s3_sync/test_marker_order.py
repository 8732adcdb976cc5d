"""A compaction marker crosses a sync only after every file it lists is verified on the other side, and
merged with the marker already there."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import pytest
from fluxforge_common.config.settings import S3Config
from fluxforge_common.dataset.compaction_marker import (
    MARKER_NAME,
    CompactionMarker,
    after_run,
    compacted_name,
    new_run,
    parse_marker,
)
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


def compacted_anew(storage: LocalStorage, earlier: CompactionMarker | None, *leaves: str) -> CompactionMarker:
    """`leaves` (and what `earlier` lists) merged into one new file under a new marker, as compaction does."""
    run = new_run()
    merged = compacted_name((earlier.generation if earlier else 0) + 1, run, 0)
    storage.write_bytes(f"{PART}/{merged}", f"{merged} holds {leaves}".encode())
    marker = after_run(earlier, [merged], {*leaves, *(earlier.files if earlier else ())}, run)
    storage.write_bytes(MARKER, marker.to_bytes())
    return marker


def test_an_upload_over_a_remote_marker_leaves_the_union_and_a_download_brings_it_back(
    tmp_path: Path,
) -> None:
    remote = MemoryS3()
    first = compacted_anew(LocalStorage(tmp_path / "a"), None, "part-1.parquet")
    Syncer(LocalStorage(tmp_path / "a"), remote, concurrency=2).upload(delete_local_after_verify=True,
                                                                       today="2100-01-01")  # fmt: skip
    assert not (tmp_path / "a" / MARKER).exists()  # deleted after verify: the next run starts at 1 again
    local = LocalStorage(tmp_path / "a")
    second = compacted_anew(local, None, "part-2.parquet")
    assert first.generation == second.generation == 1 and first.files != second.files

    summary = Syncer(local, remote, concurrency=2).upload(delete_local_after_verify=True, today="2100-01-01")
    assert summary.failures == [] and not local.exists(MARKER)
    on_s3 = parse_marker(remote.data[MARKER], "remote")
    assert set(on_s3.files) == {*first.files, *second.files} and on_s3.generation == 2
    assert on_s3.replaced == first.replaced | second.replaced

    copy = LocalStorage(tmp_path / "copy")
    third = compacted_anew(copy, None, "part-3.parquet")
    assert Syncer(copy, remote, concurrency=2).download().failures == []
    here = parse_marker(copy.read_bytes(MARKER), "copy")
    assert set(here.files) == {*on_s3.files, *third.files} and here.generation == 3
    assert Syncer(copy, remote, concurrency=2).download().files == 0  # nothing new: left as it is


def test_markers_of_copies_that_each_merged_the_same_file_are_not_merged(tmp_path: Path) -> None:
    remote, local = MemoryS3(), LocalStorage(tmp_path)
    base = compacted_anew(local, None, "part-1.parquet")
    Syncer(local, remote, concurrency=2).upload()
    theirs = remote.data[MARKER] = compacted_anew(LocalStorage(tmp_path / "other"), base).to_bytes()
    compacted_anew(local, base, "part-2.parquet")
    summary = Syncer(local, remote, concurrency=2).upload()
    assert [path for path, _ in summary.failures] == [MARKER] and remote.data[MARKER] == theirs
    assert "both copies replaced" in summary.failures[0][1]


def test_a_merged_file_with_other_bytes_on_the_other_side_is_never_replaced(tmp_path: Path) -> None:
    """Names from before runs were in them collide: the object keeps its rows, the marker waits."""
    remote, local = MemoryS3(), compacted(tmp_path)
    remote.data[FILES[2]] = b"another compaction's rows"
    summary = Syncer(local, remote, concurrency=2).upload()
    assert sorted(path for path, _ in summary.failures) == sorted([FILES[2], MARKER])
    assert "other rows under this merged file's name" in dict(summary.failures)[FILES[2]]
    assert remote.data[FILES[2]] == b"another compaction's rows" and MARKER not in remote.data
    held = Syncer(local, remote, concurrency=2).download()
    assert [path for path, _ in held.failures] == [FILES[2]] and local.read_bytes(FILES[2]) == bytes(
        [2]
    ) * 100
