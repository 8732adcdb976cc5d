"""The compiled kernel and its pure-Python source write the same dataset, and `make setup` compiles it
wherever a C compiler is (README "Performance")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from fluxforge_common import kernel
from fluxforge_common.dataset import read_table
from fluxforge_common.pipeline import archive_lines
from fluxforge_common.storage import LocalStorage

TABLES = ("hf", "bars", "trades", "ticker", "ibars")
IBARS = {"FLUXFORGE_FEATURES__IBARS": '{"tick": [50], "dollar": [20000.0], "tick_imbalance": {}}'}


def _kernel_of(env: dict[str, str]) -> str:
    code = "from fluxforge_common import kernel; print(kernel.choose())"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def _run(root: Path, pure: str) -> str:
    env = {**os.environ, kernel.PURE_ENV: pure, **IBARS}
    fluxforge = Path(sys.executable).with_name("fluxforge")
    subprocess.run(
        [fluxforge, "run", "--output", str(root), "--events", "40000", "--seed", "7"],
        env=env,
        capture_output=True,
        check=True,
    )
    return _kernel_of(env)


def _sorted(table: pa.Table) -> pa.Table:
    keys = [
        name
        for name in ("exchange", "symbol", "ts", "start_ms", "end_ms", "kind")
        if name in table.column_names
    ]
    return table.sort_by([(key, "ascending") for key in keys])


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler here: the kernel runs as pure Python")
def test_the_compiled_kernel_writes_the_rows_its_source_writes(tmp_path: Path) -> None:
    assert _run(tmp_path / "compiled", "0") == "compiled", "make setup did not compile the kernel"
    assert _run(tmp_path / "pure", "1") == "pure (FLUXFORGE_PURE_PYTHON=1)"
    for table in TABLES:
        compiled = _sorted(read_table(tmp_path / "compiled", table))
        pure = _sorted(read_table(tmp_path / "pure", table))
        assert compiled.num_rows > 0, table
        assert compiled.equals(pure), table
    lines = [list(archive_lines(LocalStorage(tmp_path / mode))) for mode in ("compiled", "pure")]
    assert len(lines[0]) == len(lines[1]) == 40_000
