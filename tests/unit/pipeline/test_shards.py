"""Splitting reprocess over processes: which process takes a line, and one summary of their parts."""

from __future__ import annotations

import os
from collections import Counter

import orjson
import pytest
from fluxforge_common.pipeline.embedded import RunSummary
from fluxforge_common.pipeline.shards import ShardFailedError, merge_summaries, run_shards, shard_of
from fluxforge_common.stopping import ReadStop
from fluxforge_common.writers.common import WrittenFile
from hypothesis import given
from hypothesis import strategies as st


@given(exchange=st.text(max_size=20), symbol=st.text(max_size=20), shards=st.integers(1, 16))
def test_every_tick_of_a_symbol_goes_to_one_shard_whatever_its_type(
    exchange: str, symbol: str, shards: int
) -> None:
    ticks = [
        {"type": "book", "exchange": exchange, "symbol": symbol, "seq": 1, "bids": [], "asks": []},
        {"type": "trade", "symbol": symbol, "exchange": exchange, "price": 1.0},
        {"type": "watermark", "exchange": exchange, "symbol": symbol, "_ingest": [1, 2]},
    ]
    assert len({shard_of(orjson.dumps(tick), shards) for tick in ticks}) == 1
    assert 0 <= shard_of(orjson.dumps(ticks[0]), shards) < shards


def test_the_shard_is_the_same_in_every_process() -> None:
    line = b'{"type":"trade","exchange":"binanceus","symbol":"BTC/USDT"}'
    assert [shard_of(line, n) for n in (2, 3, 7)] == [1, 2, 0]  # crc32, not the per-process hash()


def test_a_line_that_names_no_symbol_goes_to_the_first_shard() -> None:
    for line in (b"not json", b"[1,2]", b'{"exchange":1,"symbol":"A/B"}', b""):
        assert shard_of(line, 5) == 0


def test_summaries_of_disjoint_parts_add_up() -> None:
    a = RunSummary(
        lines=10, accepted=8, rejected=2, late=1, duplicates=1, first_event_ms=5, last_event_ms=50,
        rows=Counter({"hf": 3, "bars": 0}), per_symbol=Counter({"x:A/B": 8}), reasons=Counter({"late": 1}),
        files=[WrittenFile("hf/a.parquet", 3, 100)],
    )  # fmt: skip
    b = RunSummary(
        lines=4, accepted=4, first_event_ms=2, last_event_ms=40, rows=Counter({"hf": 1, "bars": 0}),
        per_symbol=Counter({"x:C/D": 4}), files=[WrittenFile("hf/b.parquet", 1, 90)], needs_recovery=True,
    )  # fmt: skip
    merged = merge_summaries([a, b, RunSummary()])
    assert (merged.lines, merged.accepted, merged.rejected, merged.late, merged.duplicates) == (
        14,
        12,
        2,
        1,
        1,
    )
    assert (merged.first_event_ms, merged.last_event_ms) == (2, 50)
    assert merged.rows == Counter({"hf": 4, "bars": 0}) and "bars" in merged.rows  # zeros kept
    assert merged.per_symbol == Counter({"x:A/B": 8, "x:C/D": 4})
    assert [f.path for f in merged.files] == ["hf/a.parquet", "hf/b.parquet"]
    assert merged.needs_recovery and merged.disk_full is None


class _FailingJob:
    """A shard's job that raises, or ends its process without a word (module level: shards import it)."""

    def __init__(self, exit_code: int | None) -> None:
        self.exit_code = exit_code

    def run(self, **_: object) -> RunSummary:
        if self.exit_code is not None:
            os._exit(self.exit_code)
        raise OSError("injected: the archive cannot be read")


class _ReadingJob:
    """A shard's job that reads its (no) lines to their end, or is stopped before it."""

    def __init__(self, read_all: bool) -> None:
        self.read_all = read_all

    def run(self, *, read_stop: ReadStop | None = None, **_: object) -> RunSummary:
        assert read_stop is not None
        if not self.read_all:
            read_stop.stop()
        list(read_stop.lines([]))
        return RunSummary()


@pytest.mark.parametrize("read_all", [True, False])
def test_a_stop_after_every_shard_read_to_the_end_cuts_nothing_short(read_all: bool) -> None:
    read_stop = ReadStop()
    run_shards(_ReadingJob(read_all), 2, read_stop=read_stop)
    read_stop.stop()  # while the parent writes what the shards made
    assert read_stop.cut_short is not read_all


@pytest.mark.parametrize(
    ("exit_code", "said"),
    [(None, r"shard \d of 2 failed: OSError: injected"), (3, r"shard \d of 2 ended with exit code 3")],
)
def test_a_shard_that_fails_is_named(exit_code: int | None, said: str) -> None:
    with pytest.raises(ShardFailedError, match=said):
        run_shards(_FailingJob(exit_code), 2)
