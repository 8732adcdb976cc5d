"""Reading a dataset root back, and comparing two of them table by table."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from fluxforge_common.config.state import StateConfig
from fluxforge_common.dataset.reader import read_table
from fluxforge_common.features import TABLES, output_tables

SORT_KEYS = [("exchange", "ascending"), ("symbol", "ascending"), ("ts", "ascending")]
# Bars of one series are told apart by when they end (several may open in one millisecond).
_IBAR_KEYS = [
    (name, "ascending")
    for name in ("exchange", "symbol", "kind", "threshold", "ts", "end_ts", "tick_count", "volume")
]


def sort_keys(table: str) -> list[tuple[str, str]]:
    if table == "bars":
        return [*SORT_KEYS, ("duration_s", "ascending")]
    return _IBAR_KEYS if table == "ibars" else SORT_KEYS


def read_dataset(root: Path | str) -> dict[str, pa.Table]:
    """Every table of a dataset root, in a canonical row order (file layout does not matter)."""
    tables = {}
    for table in TABLES:
        data = read_table(root, table)
        tables[table] = data.sort_by(sort_keys(table)) if data.num_rows else data
    return tables


def assert_same_dataset(
    actual: Path | str, expected: Path | str, features: StateConfig | None = None
) -> None:
    """Every table equal; every table `features` fills (the defaults: all but ibars) holds rows."""
    a, b = read_dataset(actual), read_dataset(expected)
    filled = output_tables(features or StateConfig())
    for table in TABLES:
        assert a[table].num_rows == b[table].num_rows, table
        if table in filled:
            assert a[table].num_rows > 0, f"{table} is empty: the comparison would prove nothing"
        assert a[table].equals(b[table]), f"{table} differs"


def simulated_dataset(root: Path, *, duration_s: int, seed: int) -> Path:
    """`fluxforge run -o ROOT --duration D --seed S -q`: the simulator's tables and raw archive in `root`."""
    from typer.testing import CliRunner

    from fluxforge.cli.app import app

    args = ["run", "-o", str(root), "--duration", str(duration_s), "--seed", str(seed), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return root
