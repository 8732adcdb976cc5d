"""Invariant 3 through the whole stack: bad input never stops the pipeline and is never lost silently.

Half of the market goes through the collector, then bad messages are published straight to the
raw topic (the tests/support/bad_ticks.py lines, a batch that is not JSON, messages without or with a bad key,
a tick under another symbol's key, a late and a re-sent tick), then the other half. Bad lines in
the collector's own input are dead-lettered by the collector (records without lineage, which the
sink's de-duplication must let through). Every bad input ends in the dataset's `deadletter/`
with its reason and original bytes, exactly once; every good row is there, the last intervals
included (the second collector ends the input with its final watermarks).
"""

from __future__ import annotations

import asyncio
import re

import orjson
import pytest

from tests.support.bad_ticks import BAD_LINES
from tests.support.dataset import assert_same_dataset
from tests.support.feature_engine import publish
from tests.support.stack import Expected, Stack, dead_letters, raw_of

pytestmark = pytest.mark.e2e

BTC = b"binanceus:BTC/USDT"


def test_bad_input_ends_in_deadletter_and_the_good_rows_are_all_there(
    stack: Stack, expected: Expected
) -> None:
    lines = expected.lines
    half = len(lines) // 2
    usable = [(line, why) for line, why in BAD_LINES if line != b"[]" and len(line) < 100_000]
    in_file = usable[:3]  # the collector refuses these itself
    first = [*lines[:100], in_file[0][0], *lines[100:half], in_file[1][0]]
    second = [*lines[half : half + 50], in_file[2][0], *lines[half + 50 :]]
    (stack.tmp / "first.ndjson").write_bytes(b"\n".join(first) + b"\n")
    (stack.tmp / "second.ndjson").write_bytes(b"\n".join(second) + b"\n")

    btc_first = [line for line in lines[:half] if orjson.loads(line)["symbol"] == "BTC/USDT"
                 and orjson.loads(line)["exchange"] == "binanceus"]  # fmt: skip
    book = orjson.loads(next(line for line in btc_first if b'"book"' in line))
    late = orjson.dumps({**book, "ts": book["ts"] - 3_600_000, "recv_ts": book["recv_ts"] - 3_600_000})
    trade = next(line for line in reversed(btc_first) if b'"trade"' in line)
    straight: list[tuple[bytes | None, bytes, str]] = [  # key, value, what the dead letter must say
        *((BTC, line, why) for line, why in usable[3:]),
        (BTC, b"this is not json", "batch: invalid JSON"),
        (b"kraken:ETH/USD", b"[" + btc_first[1] + b"]", "key mismatch"),
        (None, btc_first[2], "message without key"),
        (b"\xff\xfebinanceus", btc_first[3], "bad key"),
        (BTC, late, "late event"),
        (BTC, trade, "duplicate trade|late event"),  # re-sent: already applied
    ]

    stack.create_topics()
    stack.engine()
    stack.sink()
    # The second file goes on with the same symbols: the first must not end them with a watermark.
    stack.collector(stack.tmp / "first.ndjson", name="collector", final_watermark=False)
    stack.wait_until_processed(timeout_s=90, collectors=("collector",))
    asyncio.run(publish(stack.kafka, stack.names.raw, [(key, value) for key, value, _ in straight]))
    stack.collector(stack.tmp / "second.ndjson", name="collector2")
    stack.wait_until_processed(timeout_s=90, collectors=("collector", "collector2"))
    stack.stop("sink", "engine")

    assert_same_dataset(stack.root, expected.embedded_root)
    records = dead_letters(stack.root)
    by_raw: dict[bytes, list[dict[str, object]]] = {}
    for record in records:
        by_raw.setdefault(raw_of(record), []).append(record)
    assert len(records) == len(in_file) + len(straight) + len(expected.rejections), records
    for (line, why), path, n in zip(
        in_file, ["first", "first", "second"], [101, len(first), 51], strict=True
    ):
        (record,) = by_raw[line]
        assert why in str(record["reason"]), record
        assert record["source"] == f"file:{stack.tmp / f'{path}.ndjson'}:{n}", record
    for key, value, why in straight:
        raw = value[1:-1] if key == b"kraken:ETH/USD" else value
        (record,) = by_raw[raw]
        assert any(part in str(record["reason"]) for part in why.split("|")), (record, why)
        assert re.fullmatch(r"raw:\d+@\d+", str(record["source"])), record
    sink_log = stack.services["sink"].log_text()
    assert "bad messages dead-lettered 0" in sink_log, sink_log[-2000:]
