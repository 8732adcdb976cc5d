"""`fluxforge run --input s3://...` and `fluxforge reprocess --source-root s3://...` read the raw archive on S3."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.dataset import assert_same_dataset
from tests.support.s3 import S3Bucket

pytestmark = pytest.mark.integration


def test_run_input_and_reprocess_from_an_s3_root_give_the_recorded_rows(
    s3: S3Bucket, small_files: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    cli("sync", "upload", small_files, s3.url("recorded"))
    cli("run", "--input", s3.url("recorded"), "-o", tmp_path / "run", "-q")
    assert_same_dataset(tmp_path / "run", small_files)
    out = cli(
        "reprocess", "--date", "2025-12-12", "--source-root", s3.url("recorded"), "-o", tmp_path / "re", "-q"
    )
    assert "Reprocessed 2025-12-12" in out
    assert_same_dataset(tmp_path / "re", small_files)
    refused = cli("reprocess", "--date", "2025-12-12", "--source-root", s3.url("recorded"), expect_exit=2)
    assert "give --output" in refused
