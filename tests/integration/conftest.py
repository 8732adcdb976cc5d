"""Every integration test spools under its own tmp_path (the broker fixtures are `tests.support.kafka`)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def spool_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Collectors started by a test (in process or as children) spool under its tmp_path, not ./data."""
    spool = tmp_path / "spool"
    monkeypatch.setenv("FLUXFORGE_COLLECTOR__SPOOL_DIR", str(spool))
    return spool
