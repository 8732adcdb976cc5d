"""The dataset's layout (Hive partitions), reading it back, and checking/repairing it.

Only the layout is imported with the package: the readers and checks (`reader`, `validation`)
pull in pyarrow's dataset module and pandas (~0.4 s), which the configuration, the collector and
the writers, all importing the layout, do not need. Their names are still given here, imported
on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fluxforge_common.dataset.partitioning import (
    CHANNELS,
    PARQUET_TABLES,
    Channel,
    ParquetPartition,
    deadletter_dir,
    decode_value,
    encode_value,
    parse_partition_dir,
    partition_dir,
    raw_partition_dir,
    utc_date,
)

if TYPE_CHECKING:
    from fluxforge_common.dataset.reader import DatasetWarning, PartitionInfo, list_partitions, read_table
    from fluxforge_common.dataset.validation import Problem, rewrite_legacy_layout, validate_dataset

_ON_FIRST_USE = {
    "DatasetWarning": "reader",
    "PartitionInfo": "reader",
    "list_partitions": "reader",
    "read_table": "reader",
    "Problem": "validation",
    "rewrite_legacy_layout": "validation",
    "validate_dataset": "validation",
}


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "CHANNELS",
    "PARQUET_TABLES",
    "Channel",
    "DatasetWarning",
    "ParquetPartition",
    "PartitionInfo",
    "Problem",
    "deadletter_dir",
    "decode_value",
    "encode_value",
    "list_partitions",
    "parse_partition_dir",
    "partition_dir",
    "raw_partition_dir",
    "read_table",
    "rewrite_legacy_layout",
    "utc_date",
    "validate_dataset",
]
