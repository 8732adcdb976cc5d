"""The dataset's layout (Hive partitions), reading it back, and checking/repairing it."""

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
from fluxforge_common.dataset.reader import DatasetWarning, PartitionInfo, list_partitions, read_table
from fluxforge_common.dataset.validation import Problem, rewrite_legacy_layout, validate_dataset

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
