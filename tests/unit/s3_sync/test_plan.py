"""Which files s3_sync moves and which it may delete."""

from __future__ import annotations

from fluxforge_s3_sync.plan import closed, in_scope, table_of


def test_only_the_dataset_and_never_files_being_written() -> None:
    assert in_scope("hf/exchange=a/symbol=B/date=2025-12-12/part-1.parquet")
    assert in_scope("deadletter/date=2025-12-12/dl-1.ndjson")
    assert not in_scope("spool/binanceus/seg-0")  # the collector's, not the dataset
    assert not in_scope(".runs/run-1.json")
    assert not in_scope("hf/exchange=a/symbol=B/date=2025-12-12/.tmp-ab12-part_parquet")
    assert not in_scope("raw/exchange=a/channel=trade/date=2025-12-12/.unsealed-seg.ndjson.zst.part")
    assert table_of("raw/x/y") == "raw" and table_of("other/x") == "other"


def test_only_closed_partitions_are_deleted() -> None:
    assert closed("hf/exchange=a/symbol=B/date=2025-12-11/p.parquet", today="2025-12-12")
    assert not closed("hf/exchange=a/symbol=B/date=2025-12-12/p.parquet", today="2025-12-12")
    assert not closed("hf/exchange=a/symbol=B/p.parquet", today="2025-12-12")
