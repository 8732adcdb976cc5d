"""The dataset's layout (Hive partitions), reading it back, and checking/repairing it.

Only the layout is imported here: the readers and checks (`reader`, `validation`) pull in
pyarrow's dataset module and pandas (~0.4 s), which the configuration, the collector and the
writers, all importing the layout, do not need.
"""

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

__all__ = [
    "CHANNELS",
    "PARQUET_TABLES",
    "Channel",
    "ParquetPartition",
    "deadletter_dir",
    "decode_value",
    "encode_value",
    "parse_partition_dir",
    "partition_dir",
    "raw_partition_dir",
    "utc_date",
]
