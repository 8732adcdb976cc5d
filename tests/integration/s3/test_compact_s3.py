"""`fluxforge compact s3://...` against a real S3-compatible server: the switch readers see, and kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fluxforge_common.dataset.compaction import compact_dataset
from fluxforge_common.dataset.compaction_marker import MARKER_NAME, is_compacted, parse_marker
from fluxforge_common.dataset.partitioning import PARQUET_TABLES
from fluxforge_common.storage.s3 import S3Storage, VerificationError

from fluxforge.stack.services import fluxforge_argv
from tests.support.compaction import data_file_count, read_while_compacting
from tests.support.dataset import assert_same_dataset, read_dataset
from tests.support.s3 import S3Bucket

pytestmark = pytest.mark.integration
Cli = Callable[..., str]


def uploaded(s3: S3Bucket, root: Path, cli: Cli) -> str:
    cli("sync", "upload", root, s3.url("ds"))
    return s3.url("ds")


def assert_only_the_switched_files_remain(s3: S3Bucket) -> None:
    storage = s3.storage("ds")
    keys = [k for k in storage.list_files() if k.split("/", 1)[0] in PARQUET_TABLES]
    markers = [k for k in keys if k.endswith(MARKER_NAME)]
    listed = {
        f"{m.rsplit('/', 1)[0]}/{f}" for m in markers for f in parse_marker(storage.read_bytes(m), m).files
    }
    assert markers and {k for k in keys if k not in markers} == listed
    assert s3.unfinished_uploads() == []


def test_compaction_on_s3_keeps_the_rows_and_a_looping_reader_never_sees_a_mix(
    s3: S3Bucket, small_files: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = uploaded(s3, small_files, cli)
    expected = read_dataset(small_files)
    files_before = data_file_count(url)

    def compaction() -> None:
        compact_dataset(s3.storage("ds"), PARQUET_TABLES, before="2100-01-01", target_bytes=128 << 20,
                        grace_s=0.5)  # fmt: skip

    def same_rows(read: int) -> None:
        actual = read_dataset(url)
        for table, rows in expected.items():
            assert actual[table].equals(rows), f"read {read}: {table} differs while compacting"

    reads, errors = read_while_compacting(compaction, same_rows)
    assert errors == [] and reads >= 2, (errors, reads)
    assert_same_dataset(url, small_files)
    assert data_file_count(url) < files_before / 10
    assert_only_the_switched_files_remain(s3)

    monkeypatch.setenv("FLUXFORGE_COMPACTION__DELETE_GRACE_S", "0")
    objects = s3.storage("ds").objects()
    again = cli("compact", url, "--before", "2026-01-01")
    assert "compacted 0 partition(s)" in again
    assert s3.storage("ds").objects() == objects  # nothing written, nothing deleted


def test_kill_9_in_the_middle_of_compaction_on_s3_leaves_a_readable_dataset_with_the_same_rows(
    s3: S3Bucket, small_files: Path, cli: Cli, tmp_path: Path
) -> None:
    url = uploaded(s3, small_files, cli)
    storage = s3.storage("ds")
    partitions = len(
        {k.rsplit("/", 1)[0] for k in storage.list_files() if k.split("/", 1)[0] in PARQUET_TABLES}
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXFORGE_")}
    env["FLUXFORGE_COMPACTION__DELETE_GRACE_S"] = "3"
    command = [*fluxforge_argv("compact", url, "--before", "2026-01-01")]

    def keys() -> list[str]:
        return [k.rsplit("/", 1)[1] for k in s3.object_keys("ds/")]

    moments: list[tuple[str, Callable[[], bool]]] = [
        ("a merged file written, no switch yet", lambda: any(is_compacted(k) for k in keys())),
        ("some partitions switched", lambda: 0 < keys().count(MARKER_NAME) < partitions),
        ("every partition switched, nothing deleted", lambda: keys().count(MARKER_NAME) == partitions),
    ]
    log_path = tmp_path / "compact.log"
    with log_path.open("wb") as log:
        for what, reached in moments:
            proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 120
            while not reached():
                assert proc.poll() is None, f"finished before {what}:\n{log_path.read_text()[-2000:]}"
                assert time.monotonic() < deadline, log_path.read_text()[-2000:]
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert_same_dataset(url, small_files)  # readable, the same rows
        finish = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    output = log_path.read_text()
    assert finish.returncode == 0, output[-3000:]
    assert (
        "leftover file(s) of earlier runs removed" in output and " 0 leftover" not in output.splitlines()[-1]
    )
    assert_same_dataset(url, small_files)
    assert_only_the_switched_files_remain(s3)


def test_sync_moves_a_compacted_partition_so_the_remote_never_shows_a_marker_before_its_files(
    s3: S3Bucket, small_files: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = read_dataset(small_files)
    url = uploaded(s3, small_files, cli)
    monkeypatch.setenv("FLUXFORGE_COMPACTION__DELETE_GRACE_S", "0")
    cli("compact", small_files, "--before", "2026-01-01")
    local_markers = sorted(p.relative_to(small_files).as_posix() for p in small_files.rglob(MARKER_NAME))
    held = parse_marker((small_files / local_markers[0]).read_bytes(), local_markers[0])
    failing = f"{local_markers[0].rsplit('/', 1)[0]}/{held.files[0]}"
    put = S3Storage.put

    def put_failing_one(self: S3Storage, path: str, *args: object, **kwargs: object) -> None:
        if path == failing:
            raise VerificationError(f"{path}: refused for the test")
        put(self, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(S3Storage, "put", put_failing_one)
    out = cli("sync", "upload", small_files, url, expect_exit=1)
    assert f"failed: {local_markers[0]}" in out and "held back" in out
    remote_markers = [k for k in s3.storage("ds").list_files() if k.endswith(MARKER_NAME)]
    assert remote_markers == local_markers[1:]  # every other partition switched, this one not
    actual = read_dataset(url)  # the held partition still reads its old files: the same rows
    for table, rows in expected.items():
        assert actual[table].equals(rows), table

    monkeypatch.setattr(S3Storage, "put", put)
    cli("sync", "upload", small_files, url)
    assert sorted(k for k in s3.storage("ds").list_files() if k.endswith(MARKER_NAME)) == local_markers
    assert_same_dataset(url, small_files)
    copy = tmp_path / "copy"
    cli("sync", "download", url, copy)
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob(MARKER_NAME)) == local_markers
    assert_same_dataset(copy, small_files)
