"""`MirroredStorage`: a file counts as written once both backends hold it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fluxforge_common.storage import LocalStorage
from fluxforge_common.storage.mirror import MirroredStorage

PATH = "hf/exchange=x/symbol=A%2FB/date=2025-01-01/f.parquet"


def test_writes_and_deletes_reach_both_and_reads_come_from_the_primary(tmp_path: Path) -> None:
    primary, mirror = LocalStorage(tmp_path / "a"), LocalStorage(tmp_path / "b")
    both = MirroredStorage(primary, mirror)
    both.write_bytes(PATH, b"x" * 100)
    assert primary.read_bytes(PATH) == mirror.read_bytes(PATH) == both.read_bytes(PATH) == b"x" * 100
    assert both.list_files() == [PATH] and both.exists(PATH) and both.size(PATH) == 100
    mirror.delete(PATH)
    assert both.exists(PATH)  # the primary answers
    both.delete(PATH)
    assert primary.list_files() == [] and mirror.list_files() == []


def test_a_failed_write_leaves_nothing_on_either_side(tmp_path: Path) -> None:
    primary, mirror = LocalStorage(tmp_path / "a"), LocalStorage(tmp_path / "b")
    both = MirroredStorage(primary, mirror)
    with pytest.raises(RuntimeError), both.open_write(PATH) as f:
        f.write(b"half")
        raise RuntimeError("writer failed")
    assert list(primary.walk_files()) == [] and list(mirror.walk_files()) == []
