"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from fluxforge_common.dataset.reader import read_table
from fluxforge_common.features import TABLES
from typer.testing import CliRunner

from fluxforge.cli.app import app

SORT_KEYS = [("exchange", "ascending"), ("symbol", "ascending"), ("ts", "ascending")]


def read_dataset(root: Path) -> dict[str, pa.Table]:
    """Every table of a dataset root, in a canonical row order (file layout does not matter)."""
    tables = {}
    for table in TABLES:
        data = read_table(root, table)
        keys = [*SORT_KEYS, ("duration_s", "ascending")] if table == "bars" else SORT_KEYS
        tables[table] = data.sort_by(keys) if data.num_rows else data
    return tables


def assert_same_dataset(actual: Path, expected: Path) -> None:
    a, b = read_dataset(actual), read_dataset(expected)
    for table in TABLES:
        assert a[table].num_rows == b[table].num_rows, table
        assert a[table].num_rows > 0, f"{table} is empty: the comparison would prove nothing"
        assert a[table].equals(b[table]), f"{table} differs"


@pytest.fixture
def cli() -> Callable[..., str]:
    """Invoke `fluxforge ...` in-process; returns its output, fails the test on a non-zero exit."""
    runner = CliRunner()

    def invoke(*args: str, expect_exit: int = 0, stdin: str | None = None) -> str:
        result = runner.invoke(app, [str(a) for a in args], input=stdin)
        assert result.exit_code == expect_exit, (
            f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
        )
        return result.output

    return invoke
