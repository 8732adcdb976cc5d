"""Storage fixtures (`data_root`, `storage`) and a backend that fails on purpose.

`storage` is the backend under test. The contract tests are written against
`StorageBackend` only, so the S3 backend can be added as another fixture param.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from fluxforge_common.storage import LocalStorage


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """The dataset root directory (created by the backend)."""
    return tmp_path / "data"


@pytest.fixture
def storage(data_root: Path) -> LocalStorage:
    return LocalStorage(data_root)


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
    """LocalStorage whose writes fail after `fail_after_opens` opens or `fail_after_bytes` bytes."""

    def __init__(
        self, root: Any, *, fail_after_opens: int | None = None, fail_after_bytes: int | None = None
    ) -> None:
        super().__init__(root)
        self.opens_left = fail_after_opens
        self.bytes_budget = fail_after_bytes

    @contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        with self._failing(path, super().open_write) as f:
            yield f

    @contextmanager
    def open_recoverable(self, path: str) -> Iterator[BinaryIO]:
        with self._failing(path, super().open_recoverable) as f:
            yield f

    @contextmanager
    def _failing(
        self, path: str, opener: Callable[[str], AbstractContextManager[BinaryIO]]
    ) -> Iterator[BinaryIO]:
        if self.opens_left is not None:
            if self.opens_left == 0:
                raise OSError(5, f"injected failure opening {path}")
            self.opens_left -= 1
        with opener(path) as f:
            if self.bytes_budget is None:
                yield f
            else:
                yield _FailingFile(f, [self.bytes_budget])  # type: ignore[misc]
