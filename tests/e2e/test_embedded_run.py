"""`fluxforge run` / `reprocess` as a user runs them: determinism and same rows three ways."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from fluxforge_common.dataset.provenance import read_provenance
from fluxforge_common.dataset.validation import validate_dataset
from fluxforge_common.pipeline import archive_lines
from fluxforge_common.storage.local import LocalStorage

from tests.support.dataset import assert_same_dataset, read_dataset

DURATION = "240"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulator run, shared: the reference dataset the other modes must reproduce."""
    from typer.testing import CliRunner

    from fluxforge.cli.app import app

    root = tmp_path_factory.mktemp("recorded")
    result = CliRunner().invoke(app, ["run", "-o", str(root), "--duration", DURATION, "--seed", "11"])
    assert result.exit_code == 0, result.output
    return root


def test_run_reports_what_it_wrote_and_the_dataset_validates(recorded: Path, cli: Callable[..., str]) -> None:
    assert validate_dataset(recorded) == []
    assert (recorded / "hf" / "exchange=binanceus" / "symbol=BTC%2FUSDT").is_dir()
    out = cli(
        "query",
        "hf",
        "--root",
        recorded,
        "--symbol",
        "BTC/USDT",
        "--columns",
        "ts,symbol,mid",
        "--limit",
        "3",
    )
    assert "BTC/USDT" in out and "more rows" in out


def test_same_seed_gives_identical_rows(recorded: Path, tmp_path: Path, cli: Callable[..., str]) -> None:
    cli("run", "-o", tmp_path, "--duration", DURATION, "--seed", "11", "-q")
    assert_same_dataset(tmp_path, recorded)


def test_different_seed_gives_different_rows(recorded: Path, tmp_path: Path, cli: Callable[..., str]) -> None:
    cli("run", "-o", tmp_path, "--duration", DURATION, "--seed", "12", "-q")
    assert not read_dataset(tmp_path)["hf"].equals(read_dataset(recorded)["hf"])


def test_run_input_on_the_archive_gives_the_same_rows(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    cli("run", "--input", recorded / "raw", "-o", tmp_path, "-q")
    assert_same_dataset(tmp_path, recorded)


def test_run_input_from_a_file_and_from_stdin(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    lines = list(archive_lines(LocalStorage(recorded)))
    file = tmp_path / "raw.ndjson"
    file.write_bytes(b"\n".join(lines) + b"\n")
    cli("run", "--input", file, "-o", tmp_path / "from_file", "-q")
    assert_same_dataset(tmp_path / "from_file", recorded)
    cli("run", "--input", "-", "-o", tmp_path / "from_stdin", "-q", stdin=file.read_text())
    assert_same_dataset(tmp_path / "from_stdin", recorded)


def test_reprocess_gives_the_same_rows_and_rerunning_replaces(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    out = cli("reprocess", "--date", "2025-12-12", "--source-root", recorded, "-o", tmp_path, "-q")
    assert "replaced 0" in out
    assert_same_dataset(tmp_path, recorded)
    files_before = sorted(p.name for p in tmp_path.rglob("*.parquet"))
    out = cli(
        "reprocess",
        "--start-date",
        "2025-12-12",
        "--end-date",
        "2025-12-12",
        "--source-root",
        recorded,
        "-o",
        tmp_path,
        "-q",
    )
    assert f"replaced {len(files_before)}" in out
    assert_same_dataset(tmp_path, recorded)
    assert len(list(tmp_path.rglob("*.parquet"))) == len(files_before)


def test_reprocess_split_over_processes_gives_the_same_rows_and_counts(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    counts = []
    for workers in ("1", "3"):
        out = cli(
            "reprocess", "--date", "2025-12-12", "--source-root", recorded, "-o", tmp_path / workers,
            "--workers", workers, "-q",
        )  # fmt: skip
        assert_same_dataset(tmp_path / workers, recorded)
        read = re.search(r"Read ([\d,]+) raw ticks .*: ([\d,]+) applied, ([\d,]+) to dead-letter", out)
        assert read is not None, out
        counts.append(read.groups())
    assert counts[0] == counts[1]


def test_run_files_record_their_provenance(recorded: Path) -> None:
    files = sorted(recorded.glob("*/**/*.parquet"))
    assert files
    for path in files:
        origin = read_provenance(pq.read_schema(path).metadata)
        assert origin is not None and orjson.loads(origin.source) == {
            "mode": "embedded",
            "input": "simulator(seed=11)",
        }


def test_reprocess_of_a_date_without_archive_says_what_exists(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    out = cli("reprocess", "--date", "2030-01-01", "--source-root", recorded, "-o", tmp_path, expect_exit=1)
    assert "2025-12-12" in out


def test_archive_keeps_every_accepted_tick_once(recorded: Path) -> None:
    lines = list(archive_lines(LocalStorage(recorded)))
    keys = [orjson.loads(line)["_ingest"] for line in lines]
    assert keys == sorted(keys) and len(set(map(tuple, keys))) == len(keys)
    assert any(path.suffix == ".zst" for path in (recorded / "raw").rglob("*"))


def test_run_input_refuses_its_own_root_and_a_directory_without_archive(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    before = sorted(recorded.rglob("*"))
    for given in (recorded, recorded / "raw"):
        out = cli("run", "--input", given, "-o", recorded, "-q", expect_exit=2)
        assert "is the archive of the output root" in out and "fluxforge reprocess" in out
    assert sorted(recorded.rglob("*")) == before  # nothing written, nothing doubled
    partition = next((recorded / "raw").iterdir())
    out = cli("run", "--input", partition, "-o", tmp_path / "out", "-q", expect_exit=2)
    assert f"no raw archive under {partition}/raw; the dataset root holding it is {recorded}" in out
    (tmp_path / "empty").mkdir()
    assert "no raw archive under" in cli(
        "run", "--input", tmp_path / "empty", "-o", tmp_path / "o2", expect_exit=2
    )


def test_reprocess_from_a_missing_root_creates_nothing_and_names_a_long_range_briefly(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    typo = tmp_path / "dat"
    out = cli(
        "reprocess", "--date", "2025-12-12", "--source-root", typo, "-o", tmp_path / "out", expect_exit=1
    )
    assert f"the source root {typo} does not exist" in out and not typo.exists()
    year = ["--start-date", "2030-01-01", "--end-date", "2030-12-31"]
    out = cli("reprocess", *year, "--source-root", recorded, "-o", tmp_path / "out", expect_exit=1)
    assert "2030-01-01 .. 2030-12-31 (365 dates)" in out and "2030-06-15" not in out


def test_reprocess_onto_an_unreadable_marker_stops_before_changing_anything(
    recorded: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    root = tmp_path / "root"
    cli("reprocess", "--date", "2025-12-12", "--source-root", recorded, "-o", root, "-q")
    partition = next((root / "hf").glob("*/*/date=2025-12-12"))
    (partition / "_compaction.json").write_text("{not json")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    out = cli("reprocess", "--date", "2025-12-12", "--source-root", recorded, "-o", root, "-q", expect_exit=1)
    assert "compaction marker" in out and "unreadable" in out
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
