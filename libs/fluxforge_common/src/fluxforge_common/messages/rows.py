"""Wire format of output rows on the feature topics: a JSON array of row objects.

Rows travel in batches (one Kafka message per input batch and table), like raw
ticks. orjson writes the shortest representation that round-trips a float64, so
the sink rebuilds bit-identical values; `ts` and other times stay integer ms.
"""

from __future__ import annotations

from typing import Any

import orjson


def encode_rows(rows: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(rows)


def decode_rows(data: bytes) -> list[dict[str, Any]]:
    """Rows of one message; a single object is a batch of one. Raises ValueError on anything else."""
    value = orjson.loads(data)
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise ValueError("a feature message must be a JSON array of row objects")
    return value
