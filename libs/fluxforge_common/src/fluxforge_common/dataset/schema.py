"""The columns every Parquet row carries, whatever its table."""

from __future__ import annotations

from typing import Final

import pyarrow as pa

# Event time as UTC milliseconds: what DuckDB, Polars and pandas show as a time without a unit guess.
TS_TYPE: Final = pa.timestamp("ms", tz="UTC")
KEY_SCHEMA: Final = pa.schema([("exchange", pa.string()), ("symbol", pa.string()), ("ts", TS_TYPE)])
