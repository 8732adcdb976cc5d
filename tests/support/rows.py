"""Fixtures of a small feature table, shared by the writer and dataset tests: its schema and rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
from fluxforge_common.dataset.schema import TS_TYPE

from tests.support.times import T0

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
