"""Fixtures for the storage contract; the writer and dataset tests reuse them.

`storage` is the backend under test. The contract tests are written against
`StorageBackend` only, so the S3 backend can be added as another fixture param.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fluxforge_common.storage import LocalStorage


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """The dataset root directory (created by the backend)."""
    return tmp_path / "data"


@pytest.fixture
def storage(data_root: Path) -> LocalStorage:
    return LocalStorage(data_root)
