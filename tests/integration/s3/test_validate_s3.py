"""`fluxforge validate` on an s3:// root against a real S3-compatible server: the same findings as
locally, and the legacy-layout repair done by verified copies (no rename on S3)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.dataset import assert_same_dataset
from tests.support.s3 import S3Bucket

pytestmark = pytest.mark.integration
Cli = Callable[..., str]


def legacy(root: Path) -> list[str]:
    """Turn the hf partitions of `root` into the legacy `symbol=BTC-USDT` form; their new paths."""
    moved = []
    for encoded in sorted(root.glob("hf/exchange=*/symbol=*%2F*")):
        old_form = encoded.with_name(encoded.name.replace("%2F", "-"))
        encoded.rename(old_form)
        moved += [p.relative_to(root).as_posix() for p in sorted(old_form.rglob("*.parquet"))]
    return moved


def test_a_clean_dataset_validates_clean_on_s3(s3: S3Bucket, small_files: Path, cli: Cli) -> None:
    cli("sync", "upload", small_files, s3.url("ds"))
    assert f"{s3.url('ds')}: no problems found" in cli("validate", "--root", s3.url("ds"))
    assert "no problems found" in cli("validate", "--root", small_files)


def test_the_legacy_layout_on_s3_is_reported_repaired_and_reads_as_the_repaired_local_copy(
    s3: S3Bucket, small_files: Path, cli: Cli, tmp_path: Path
) -> None:
    moved = legacy(small_files)
    assert moved
    local = tmp_path / "local"
    shutil.copytree(small_files, local)
    url = s3.url("ds")
    cli("sync", "upload", small_files, url)

    local_report = cli("validate", "--root", local, expect_exit=1)
    report = cli("validate", "--root", url, expect_exit=1)
    assert report.count("partition format mismatch (legacy layout)") == len(moved)
    assert report == local_report.replace(str(local), url)  # the same findings, by the same code

    before = s3.storage("ds").objects()
    dry = cli("validate", "--root", url, "--rewrite-legacy-layout")
    assert f"{len(moved)} file(s) would move (add --apply)" in dry
    assert s3.storage("ds").objects() == before  # a dry run changes nothing

    applied = cli("validate", "--root", url, "--rewrite-legacy-layout", "--apply")
    assert f"{len(moved)} file(s) moved" in applied and f"{url}: no problems found" in applied
    assert dry.replace("would move (add --apply)", "moved") in applied  # it did what it announced
    after = s3.storage("ds").objects()
    assert not any(path in after for path in moved)
    assert sorted(info.etag for info in after.values()) == sorted(info.etag for info in before.values())
    assert s3.unfinished_uploads() == []

    cli("validate", "--root", local, "--rewrite-legacy-layout", "--apply")
    assert_same_dataset(url, local)
    again = cli("validate", "--root", url, "--rewrite-legacy-layout", "--apply")
    assert "0 file(s) moved" in again  # idempotent
