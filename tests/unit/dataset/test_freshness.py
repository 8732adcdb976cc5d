"""`newest_row_ms`: a symbol's newest row, from the footers of its newest partitions, through storage."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
from fluxforge_common.dataset.freshness import DAY_MS, newest_row_ms
from fluxforge_common.storage import StorageBackend
from fluxforge_common.writers import PartitionedParquetWriter

from tests.support.rows import Rows

NOW = 1_765_500_000_000  # 2025-12-12T00:40Z


def _write(storage: StorageBackend, schema: pa.Schema, rows: Rows) -> None:
    writer = PartitionedParquetWriter(storage, "hf", schema)
    writer.add(rows)
    writer.flush()


def test_the_newest_row_is_found_in_todays_partition_across_files(
    storage: StorageBackend, hf_schema: pa.Schema, make_rows: Callable[..., Rows]
) -> None:
    _write(storage, hf_schema, make_rows("binanceus", "BTC/USDT", NOW - 60_000, 3))
    _write(storage, hf_schema, make_rows("binanceus", "BTC/USDT", NOW - 30_000, 2))
    _write(storage, hf_schema, make_rows("binanceus", "ETH/USDT", NOW, 2))
    assert newest_row_ms(storage, "hf", "binanceus", "BTC/USDT", now_ms=NOW) == NOW - 29_000
    assert newest_row_ms(storage, "hf", "binanceus", "ETH/USDT", now_ms=NOW) == NOW + 1000


def test_an_old_feed_is_found_in_its_last_date_and_a_missing_one_is_none(
    storage: StorageBackend, hf_schema: pa.Schema, make_rows: Callable[..., Rows]
) -> None:
    _write(storage, hf_schema, make_rows("kraken", "BTC/USD", NOW - 10 * DAY_MS, 3))
    _write(storage, hf_schema, make_rows("kraken", "BTC/USD", NOW - 30 * DAY_MS, 3))
    assert newest_row_ms(storage, "hf", "kraken", "BTC/USD", now_ms=NOW) == NOW - 10 * DAY_MS + 2000
    assert newest_row_ms(storage, "hf", "kraken", "ETH/USD", now_ms=NOW) is None
