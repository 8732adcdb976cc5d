"""Dataset writers: partitioned Parquet tables, the raw NDJSON archive and dead-letter files."""

from fluxforge_common.writers.common import WrittenFile, check_stem
from fluxforge_common.writers.ndjson import (
    DeadLetterWriter,
    RawArchiveWriter,
    dead_letter_record,
    iter_ndjson,
)
from fluxforge_common.writers.parquet import PartitionedParquetWriter, check_row_schema

__all__ = [
    "DeadLetterWriter",
    "PartitionedParquetWriter",
    "RawArchiveWriter",
    "WrittenFile",
    "check_row_schema",
    "check_stem",
    "dead_letter_record",
    "iter_ndjson",
]
