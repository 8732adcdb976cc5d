"""Splitting reprocess over processes: which process takes a line, and one summary of their parts."""

from __future__ import annotations

import json
import os
import zlib
from collections import Counter

import msgspec
import orjson
import pytest
from fluxforge_common.messages import Rejection, decode_tick
from fluxforge_common.pipeline.embedded import RunSummary
from fluxforge_common.pipeline.shards import (
    Shard,
    ShardFailedError,
    merge_summaries,
    run_shards,
    shard_of,
)
from fluxforge_common.stopping import ReadStop
from fluxforge_common.writers.common import WrittenFile
from hypothesis import example, given, settings
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


class _Key(msgspec.Struct):
    exchange: str = ""
    symbol: str = ""


def _decoded_shard(line: bytes, shards: int) -> int | None:
    """The shard a full decode gives a line (the definition the native hash must agree with);
    None for a line that is not JSON."""
    try:
        key = msgspec.json.decode(line, type=_Key)
    except msgspec.ValidationError:
        return 0
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    return zlib.crc32(f"{key.exchange}:{key.symbol}".encode()) % shards


# The keys a shard reads (one escaped), with strings mostly; others with any value.
KEYS = st.sampled_from(["exchange", "symbol", "exchange", "symbol", "sym\\u0062ol", "\\u0065xchange"])
OTHERS = st.sampled_from(["type", "ts", "bids", "_ingest", "x"])
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=8) | st.sampled_from(["ex", "BTC/USDT"])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def _lines(draw: st.DrawFn) -> bytes:
    """Objects of envelope-like fields, keys repeated or escaped, values escaped or not, sometimes
    cut short."""
    field = st.tuples(KEYS, TEXT | VALUES) | st.tuples(OTHERS, VALUES)
    fields = draw(st.lists(field, max_size=6))
    ascii_only = draw(st.booleans())
    text = (
        "{"
        + ",".join(f'"{name}":' + json.dumps(value, ensure_ascii=ascii_only) for name, value in fields)
        + "}"
    )
    line = text.encode()
    return line[: draw(st.integers(0, len(line)))] if draw(st.integers(0, 9)) == 0 else line


@settings(max_examples=1500, deadline=None)
@given(_lines(), st.integers(1, 7))
@example(b'{"exchange":"a","symbol":"b","symbol":"c"}', 5)  # the last copy of a key counts
@example(b'{"exchange":"a","symbol":"b","sym\\u0062ol":"c"}', 5)  # an escaped one too
@example(b'{"symbol":"b","exchange":"a","x":"\\u0022symbol\\u0022"}', 7)  # not a key: the decode decides
def test_a_line_goes_to_the_shard_a_full_decode_gives_it(line: bytes, shards: int) -> None:
    """The native hash answers the common line and gives what a full decode would; a line that is
    not JSON may go to another shard than the first, where decoding refuses it all the same."""
    expected = _decoded_shard(line, shards)
    if expected is None:
        assert 0 <= shard_of(line, shards) < shards
        assert isinstance(decode_tick(line), Rejection)
    else:
        assert shard_of(line, shards) == expected


@settings(max_examples=500, deadline=None)
@given(st.lists(_lines() | st.just(b""), max_size=8), st.booleans(), st.integers(1, 5), st.data())
def test_a_shard_picks_its_lines_of_a_block_as_the_hash_of_each_line_would(
    lines: list[bytes], newline_at_end: bool, count: int, data: st.DataObject
) -> None:
    """`Shard.lines_of` drops the other shards' lines natively and decodes the lines the native
    hash leaves; it keeps what `shard_of` keeps, in order, empty lines left out."""
    shard = Shard(data.draw(st.integers(0, count - 1)), count)
    block = b"\n".join(lines) + (b"\n" if newline_at_end else b"")
    assert shard.lines_of(block) == [line for line in lines if line and shard_of(line, count) == shard.index]


@pytest.mark.parametrize(("index", "count"), [(2, 2), (-1, 2), (0, 0)])
def test_a_shard_that_does_not_exist_is_refused(index: int, count: int) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        Shard(index, count)


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


@pytest.mark.parametrize(
    ("text", "shard"), [("0/1", Shard(0, 1)), ("3/4", Shard(3, 4)), (" 1 / 2 ", Shard(1, 2))]
)
def test_a_shard_is_parsed_from_k_of_n(text: str, shard: Shard) -> None:
    assert Shard.parse(text) == shard


@pytest.mark.parametrize(
    ("text", "reason"),
    [("4/4", "4 of 4 does not exist"), ("1/0", "1 of 0 does not exist"), ("1", "is K/N"), ("-1/2", "is K/N")],
)
def test_a_shard_that_does_not_exist_is_refused_saying_how_shards_count(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Shard.parse(text)
