"""`fluxforge query --root s3://...` reads the uploaded dataset in place, with the local root's rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.support.s3 import S3Bucket

pytestmark = pytest.mark.integration


def test_query_an_s3_root_returns_the_local_rows(
    s3: S3Bucket, tmp_path: Path, cli: Callable[..., str]
) -> None:
    root = tmp_path / "data"
    cli("run", "-o", root, "--seed", 3, "--duration", 300, "-q")
    cli("sync", "upload", root, s3.url("shared/ff"))
    for table, args in [("hf", ["--symbol", "BTC/USDT"]), ("trades", ["--exchange", "kraken"]), ("bars", [])]:
        local, remote = tmp_path / f"{table}-local.parquet", tmp_path / f"{table}-s3.parquet"
        cli("query", table, "--root", root, *args, "--out", local)
        out = cli("query", table, "--root", s3.url("shared/ff"), *args, "--out", remote)
        expected = pq.read_table(local)
        assert expected.num_rows > 0 and f"wrote {expected.num_rows:,} rows" in out
        assert pq.read_table(remote).equals(expected)
    preview = cli("query", "hf", "--root", s3.url("shared/ff"), "--columns", "ts,symbol,mid", "--limit", 3)
    assert "BTC/USDT" in preview or "ETH/USDT" in preview


def test_a_refused_or_unreachable_s3_root_is_one_clear_line_not_a_traceback(
    s3: S3Bucket, tmp_path: Path, cli: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _uploaded_run(s3, tmp_path, cli, "refused/ff")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    commands = (
        (("query", "hf", "--root"), 1),
        (("validate", "--root"), 2),
        (("report",), 1),
        (("run", "-o", tmp_path / "out", "-q", "--input"), 2),
        (("reprocess", "--date", "2025-12-12", "-o", tmp_path / "out", "-q", "--source-root"), 1),
    )
    for args, code in commands:
        out = cli(*args, s3.url("refused/ff"), expect_exit=code)
        assert (
            f"cannot read {s3.url('refused/ff')}" in out and "check the endpoint and the credentials" in out
        )
        assert "Traceback" not in out and "not-the-secret" not in out
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    out = cli("query", "hf", "--root", s3.url("refused/ff"), expect_exit=1)
    assert "cannot read" in out and "Traceback" not in out


def test_report_reaches_the_store_its_config_names(
    s3: S3Bucket, tmp_path: Path, cli: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`storage.s3.endpoint_url` alone (no AWS_ENDPOINT_URL) takes report where query goes."""
    _uploaded_run(s3, tmp_path, cli, "configured/ff")
    endpoint = s3.server.env["AWS_ENDPOINT_URL"]
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    config = tmp_path / "config.yaml"
    config.write_text(f"storage:\n  s3:\n    endpoint_url: {endpoint}\n")
    out = cli("report", s3.url("configured/ff"), "--json", "--config", config)
    assert json.loads(out)["symbols"]


def _uploaded_run(s3: S3Bucket, tmp_path: Path, cli: Callable[..., str], prefix: str) -> None:
    """5 s of the simulated market recorded locally and uploaded under `prefix`."""
    root = tmp_path / "data"
    cli("run", "-o", root, "--duration", 5, "-q")
    cli("sync", "upload", root, s3.url(prefix))
