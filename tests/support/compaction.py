"""A dataset of many small files per partition (for compaction), and what its readers see."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from fluxforge_common.dataset.reader import list_partitions
from fluxforge_common.features import TABLES

SMALL_FILE_ROWS = "100"  # parquet.flush_rows of the run: ~25 files per partition from 120 s of market


@pytest.fixture(scope="session")
def small_files_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`fluxforge run` over 120 s of simulated market, writing a file every 100 rows of a table."""
    from typer.testing import CliRunner

    from fluxforge.cli.app import app

    root = tmp_path_factory.mktemp("small-files") / "data"
    result = CliRunner().invoke(
        app, ["run", "-o", str(root), "--seed", "5", "--duration", "120", "-q"],
        env={"FLUXFORGE_PARQUET__FLUSH_ROWS": SMALL_FILE_ROWS},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def small_files(small_files_source: Path, tmp_path: Path) -> Path:
    """A copy of `small_files_source` of the test's own."""
    root = tmp_path / "data"
    shutil.copytree(small_files_source, root)
    return root


def data_file_count(root: Path | str) -> int:
    """The data files readers count, over every table."""
    return sum(len(p.files) for table in TABLES for p in list_partitions(root, table))


def read_while_compacting(
    compaction: Callable[[], object], read: Callable[[int], object]
) -> tuple[int, list[BaseException]]:
    """Run `compaction` in a thread and `read(i)` over and over until it ends: how many reads there
    were, and what the compaction raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            compaction()
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    reads = 0
    while worker.is_alive():
        read(reads)
        reads += 1
    worker.join()
    return reads, errors
