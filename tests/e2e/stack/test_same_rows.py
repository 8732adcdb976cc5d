"""Invariant 1, same rows three ways: embedded, stack (collector -> Kafka -> engine -> sink), reprocess.

One raw file (90 s of simulated market) goes through `fluxforge run --input` and through the
stack. The stack gives exactly the embedded rows of hf, bars, trades, ticker and ibars, the end of the
input included (the collector's final watermarks), for raw batches of 1 and of 100 ticks and two
engine workers; the raw archive the sink wrote, reprocessed, gives them too. Each HF file records how
complete its partition was when it was cut.
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fluxforge_common.kafka import COMPLETE_METADATA

from tests.support.dataset import assert_same_dataset
from tests.support.stack import (
    Expected,
    Stack,
    archived_ticks,
    counted,
    dead_letters,
    raw_of,
    run_cli,
)

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("batch_max_ticks", [1, 100])
def test_stack_gives_the_embedded_rows(stack: Stack, expected: Expected, batch_max_ticks: int) -> None:
    """Two engine workers share the raw partitions; the collector ends each symbol with its final
    watermark, so every row is there, the last interval of every symbol included."""
    stack.create_topics()
    stack.engine()
    stack.engine("engine2")
    stack.sink()
    collector = stack.collector(expected.input_path, batch_max_ticks=batch_max_ticks)
    stack.wait_until_processed(timeout_s=150)
    stack.stop("sink", "engine", "engine2")

    assert_same_dataset(stack.root, expected.embedded_root, expected.features)
    records = dead_letters(stack.root)
    assert sorted((r["reason"], raw_of(r)) for r in records) == sorted(expected.rejections)
    summary = collector.log_text()
    batches, ticks = counted(summary, "batches out"), len(expected.lines)
    assert counted(summary, "ticks in") == ticks, summary[-2000:]
    if batch_max_ticks == 1:
        assert batches == ticks
    else:
        assert batches is not None and batches < ticks / 20, summary[-2000:]

    # Completeness: per partition, the last HF file says every symbol of it is complete up to the
    # least of their last rows (the final watermarks closed them all).
    complete: dict[int, int] = {}
    last_rows: dict[int, dict[tuple[str, str], int]] = defaultdict(dict)
    for path in sorted((stack.root / "hf").rglob("*.parquet")):
        partition = int(path.stem.split("+")[1])
        mark = int(pq.read_metadata(path).metadata[COMPLETE_METADATA.encode()])
        complete[partition] = max(complete.get(partition, mark), mark)
        table = pq.read_table(path, columns=["exchange", "symbol", "ts"])
        names = zip(table["exchange"].to_pylist(), table["symbol"].to_pylist(), strict=True)
        last = last_rows[partition]
        for name, ts in zip(names, table.column("ts").cast(pa.int64()).to_pylist(), strict=True):
            last[name] = max(last.get(name, ts), ts)
    assert complete == {p: min(last.values()) for p, last in last_rows.items()}
    assert len(complete) == stack.partitions

    # The sink's raw archive holds every tick once and replays into the embedded rows.
    assert archived_ticks(stack.root) == ticks
    out = stack.tmp / "reprocessed"
    dates = ["--date", expected.dates[0]] if len(expected.dates) == 1 else \
        ["--start-date", expected.dates[0], "--end-date", expected.dates[-1]]  # fmt: skip
    run_cli("reprocess", "--source-root", stack.root, "-o", out, *dates, "-q", config=expected.config_path)
    assert_same_dataset(out, expected.embedded_root, expected.features)
