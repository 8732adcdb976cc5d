"""Rows, schemas and a failure-injecting backend shared by the writer and dataset tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import pyarrow as pa
import pytest
from fluxforge_common.dataset.schema import TS_TYPE
from fluxforge_common.storage import LocalStorage

from tests.unit.storage.conftest import data_root, storage

__all__ = ["DAY_MS", "T0", "FailingStorage", "data_root", "hf_schema", "make_rows", "storage"]

T0 = 1_765_500_000_000  # 2025-12-12T00:40:00Z
DAY_MS = 86_400_000

Rows = list[dict[str, Any]]


@pytest.fixture
def hf_schema() -> pa.Schema:
    """A small feature-table schema: the key columns plus a float and an int."""
    return pa.schema(
        [
            ("exchange", pa.string()),
            ("symbol", pa.string()),
            ("ts", TS_TYPE),
            ("mid", pa.float64()),
            ("n", pa.int64()),
        ]
    )


@pytest.fixture
def make_rows() -> Callable[..., Rows]:
    """`make_rows(exchange, symbol, start_ms, count, step_ms=1000)`: rows 1 step apart, mid = 100 + i."""

    def make(exchange: str, symbol: str, start_ms: int = T0, count: int = 3, step_ms: int = 1000) -> Rows:
        return [
            {"exchange": exchange, "symbol": symbol, "ts": start_ms + i * step_ms, "mid": 100.0 + i, "n": i}
            for i in range(count)
        ]

    return make


class _FailingFile:
    """Wraps a real file and raises on the write that crosses `fail_after` bytes."""

    def __init__(self, inner: BinaryIO, budget: list[int]) -> None:
        self._inner = inner
        self._budget = budget

    def write(self, data: bytes) -> int:
        self._budget[0] -= len(data)
        if self._budget[0] < 0:
            raise OSError(28, "No space left on device (injected)")
        return self._inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FailingStorage(LocalStorage):
    """LocalStorage whose `open_write` fails after `fail_after_opens` opens or `fail_after_bytes` bytes."""

    def __init__(
        self, root: Any, *, fail_after_opens: int | None = None, fail_after_bytes: int | None = None
    ) -> None:
        super().__init__(root)
        self.opens_left = fail_after_opens
        self.bytes_budget = fail_after_bytes

    @contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        if self.opens_left is not None:
            if self.opens_left == 0:
                raise OSError(5, f"injected failure opening {path}")
            self.opens_left -= 1
        with super().open_write(path) as f:
            if self.bytes_budget is None:
                yield f
            else:
                yield _FailingFile(f, [self.bytes_budget])  # type: ignore[misc]
