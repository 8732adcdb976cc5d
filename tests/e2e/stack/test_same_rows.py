"""Invariant 1, same rows three ways: embedded, stack (collector -> Kafka -> engine -> sink), reprocess.

One raw file (90 s of simulated market) goes through `fluxforge run --input` and through the
stack. The stack gives exactly the embedded rows of hf, bars, trades and ticker, the end of the
input included (the collector's final watermarks), for raw batches of 1 and of 100 ticks and two
engine workers; the raw archive the sink wrote, reprocessed, gives them too.
"""

from __future__ import annotations

import pytest

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

    assert_same_dataset(stack.root, expected.embedded_root)
    records = dead_letters(stack.root)
    assert sorted((r["reason"], raw_of(r)) for r in records) == sorted(expected.rejections)
    summary = collector.log_text()
    batches, ticks = counted(summary, "batches out"), len(expected.lines)
    assert counted(summary, "ticks in") == ticks, summary[-2000:]
    if batch_max_ticks == 1:
        assert batches == ticks
    else:
        assert batches is not None and batches < ticks / 20, summary[-2000:]

    # The sink's raw archive holds every tick once and replays into the embedded rows.
    assert archived_ticks(stack.root) == ticks
    out = stack.tmp / "reprocessed"
    dates = ["--date", expected.dates[0]] if len(expected.dates) == 1 else \
        ["--start-date", expected.dates[0], "--end-date", expected.dates[-1]]  # fmt: skip
    run_cli("reprocess", "--source-root", stack.root, "-o", out, *dates, "-q", config=expected.config_path)
    assert_same_dataset(out, expected.embedded_root)
