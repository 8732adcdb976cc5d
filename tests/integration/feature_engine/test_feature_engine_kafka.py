"""The feature engine service against a real broker, run as child processes.

Raw ticks from the simulated market are published in per-symbol batches to a
fresh `<prefix>.raw`; workers (`fluxforge engine`) turn them
into rows on `<prefix>.features.*`, which the tests read back read_committed,
keeping the first copy of each output (`fluxforge_common.kafka.Deduplicator`,
what the sink does). The reference is the in-process `FeatureEngine` on the same ticks
without its final flush (a stream never ends). Every test compares all four
tables row for row.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest
from fluxforge_common.config.state import StateConfig
from fluxforge_common.features import TABLES, output_tables

from tests.support.feature_engine import (
    EngineStack,
    OutputReader,
    Received,
    RowsByKey,
    count_rows,
    expected_rows,
    final_watermarks,
    key_of,
    per_symbol_batches,
    simulated_ticks,
    with_watermarks,
)
from tests.support.signals import seeded_rng, two_stop_signals_at_once

pytestmark = pytest.mark.integration

CFG = StateConfig()
TEN_SYMBOLS = {
    "binanceus": ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT"],
    "kraken": ["BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD", "ADA/USD"],
}


def complete(expected: RowsByKey) -> Any:
    want = count_rows(expected)
    return lambda got: all(got.count(table) >= want[table] for table in TABLES)


def assert_same_rows(got: Received, expected: RowsByKey, stack: EngineStack) -> None:
    for table in TABLES:
        assert got.count(table) == count_rows(expected)[table], f"{table}: row count\n{stack.logs()}"
        assert got.rows[table] == expected[table], f"{table} rows differ"
        if table in output_tables(CFG):
            assert expected[table], f"{table} is empty: the comparison would prove nothing"


def stopped_line(log: str) -> str:
    lines = [line for line in log.splitlines() if "stopped (exit" in line]
    assert lines, f"no final summary line in the worker log:\n{log[-3000:]}"
    return lines[-1]


def counted(line: str, what: str) -> int:
    match = re.search(rf"([\d,]+) {what}", line)
    assert match, f"{what!r} not in {line!r}"
    return int(match.group(1).replace(",", ""))


@pytest.mark.parametrize("batch_size", [100, 1])
def test_same_rows_as_the_in_process_engine(engine_stack: EngineStack, batch_size: int) -> None:
    lines = simulated_ticks(6000, seed=13)
    expected, rejected = expected_rows(lines, CFG)
    engine_stack.prepare()
    engine_stack.publish(per_symbol_batches(lines, batch_size))
    worker = engine_stack.worker("worker")
    got = engine_stack.read(complete(expected))
    assert worker.stop() == 0, engine_stack.logs()
    assert_same_rows(got, expected, engine_stack)
    assert got.duplicates == 0  # nothing re-sent without a crash
    assert len(got.dead_letters) == len(rejected)
    summary = stopped_line(worker.log_text())
    assert counted(summary, "applied") == len(lines) - len(rejected)


def test_kill_9_mid_stream_then_restart_gives_the_uninterrupted_output(engine_stack: EngineStack) -> None:
    """SIGKILL while ticks are still arriving, restart at once: every row once, none missing.

    A 5 s commit interval makes sure the restarted worker re-reads messages it
    had already applied (state ahead of the committed offset) and possibly
    re-sends outputs (dropped by the reader's dedupe). Every batch is followed
    by a true watermark of its symbol, so the kill lands between a watermark
    and the ticks after it, and the input ends with the collector's final
    watermarks: the rows of the in-process run, its end of input included.
    """
    lines = simulated_ticks(12000, seed=21)
    messages = [*with_watermarks(per_symbol_batches(lines, 5)), *final_watermarks(lines, CFG)]
    expected, _ = expected_rows(lines, CFG, flush=True)
    hf_total = count_rows(expected)["hf"]
    engine_stack.prepare()
    args = ("--commit-interval", "5")
    first = engine_stack.worker("first", *args)
    restarted = []

    async def kill_and_restart(reader: OutputReader) -> None:
        publishing = asyncio.create_task(engine_stack.publish_paced(messages, 8.0))
        while reader.received.count("hf") < hf_total * 0.3:
            await asyncio.sleep(0.02)
        print(f"kill -9 with {'all' if publishing.done() else 'part'} of the input published")
        first.kill9()
        assert first.proc is not None and first.proc.returncode == -9
        restarted.append(engine_stack.worker("restarted", *args))
        await publishing

    got = engine_stack.read(complete(expected), during=kill_and_restart, settle_s=3.0)
    (second,) = restarted
    assert second.stop() == 0, engine_stack.logs()
    assert_same_rows(got, expected, engine_stack)
    summary = stopped_line(second.log_text())
    re_read = counted(summary, "messages already applied")
    print(
        f"after kill -9: {re_read} raw messages re-read and skipped, {got.duplicates} output copies dropped"
    )
    assert re_read + got.duplicates > 0, "the restart re-read nothing: the test did not exercise recovery"


def test_sigterm_mid_stream_exits_0_and_a_restart_gives_the_uninterrupted_output(
    engine_stack: EngineStack,
) -> None:
    """SIGTERM at a seeded random moment while ticks are still arriving: the worker flushes, commits,
    leaves its group and exits 0; a restarted worker continues to exactly the uninterrupted rows."""
    share = seeded_rng("signal moment").uniform(0.1, 0.8)
    lines = simulated_ticks(12000, seed=23)
    messages = per_symbol_batches(lines, 5)
    expected, _ = expected_rows(lines, CFG)
    hf_total = count_rows(expected)["hf"]
    engine_stack.prepare()
    first = engine_stack.worker("first")
    restarted = []

    async def stop_and_restart(reader: OutputReader) -> None:
        publishing = asyncio.create_task(engine_stack.publish_paced(messages, 8.0))
        while reader.received.count("hf") < hf_total * share:
            await asyncio.sleep(0.02)
        print(f"SIGTERM with {share:.0%} of the hf rows out")
        assert await asyncio.to_thread(first.stop) == 0, engine_stack.logs()
        assert "SIGTERM: stopping" in first.log_text()
        restarted.append(engine_stack.worker("restarted"))
        await publishing

    got = engine_stack.read(complete(expected), during=stop_and_restart, settle_s=3.0)
    (second,) = restarted
    assert second.stop() == 0, engine_stack.logs()
    assert_same_rows(got, expected, engine_stack)


def test_a_second_signal_exits_at_once_and_a_restart_loses_nothing(engine_stack: EngineStack) -> None:
    """Two stop signals together: the worker exits 1 without its graceful stop; a restart (after the
    group's session timeout) still gives every row once."""
    share = seeded_rng("signal moment").uniform(0.1, 0.8)
    lines = simulated_ticks(12000, seed=29)
    expected, _ = expected_rows(lines, CFG)
    hf_total = count_rows(expected)["hf"]
    engine_stack.prepare()
    first = engine_stack.worker("first")
    restarted = []

    async def force_and_restart(reader: OutputReader) -> None:
        publishing = asyncio.create_task(engine_stack.publish_paced(per_symbol_batches(lines, 5), 8.0))
        while reader.received.count("hf") < hf_total * share:
            await asyncio.sleep(0.02)
        assert first.proc is not None
        two_stop_signals_at_once(first.proc.pid)
        assert await asyncio.to_thread(first.wait, 60.0) == 1, engine_stack.logs()
        assert re.search("second SIG(INT|TERM): exiting now", first.log_text()), first.log_text()[-3000:]
        restarted.append(engine_stack.worker("restarted"))
        await publishing

    got = engine_stack.read(complete(expected), during=force_and_restart, settle_s=3.0)
    (second,) = restarted
    assert second.stop() == 0, engine_stack.logs()
    assert_same_rows(got, expected, engine_stack)


def test_bad_input_is_dead_lettered_and_the_pipeline_goes_on(engine_stack: EngineStack) -> None:
    lines = simulated_ticks(3000, seed=9)
    expected, rejected = expected_rows(lines, CFG)
    assert not rejected
    good = per_symbol_batches(lines, 50)
    btc = b"binanceus:BTC/USDT"
    btc_ticks = [line for line in lines if key_of(line) == btc]
    crossed = orjson.loads(next(t for t in btc_ticks if b'"book"' in t))
    crossed["bids"], crossed["asks"] = [[101.0, 1.0]], [[100.0, 1.0]]
    late = orjson.loads(btc_ticks[0])
    late["ts"] -= 3_600_000
    late["recv_ts"] -= 3_600_000
    bad: list[tuple[bytes | None, bytes]] = [
        (btc, b"this is not json"),
        (btc, b'[{"type":"book"},' + orjson.dumps(crossed) + b"," + key_other(btc_ticks[1]) + b"]"),
        (b"kraken:ETH/USD", b"[" + btc_ticks[2] + b"]"),
        (None, btc_ticks[3]),
        (b"\xff\xfebinanceus", btc_ticks[4]),
        (btc, orjson.dumps(late)),
    ]
    half = len(good) // 2
    engine_stack.prepare()
    engine_stack.publish([*good[:half], *bad, *good[half:]])
    worker = engine_stack.worker("worker")
    got = engine_stack.read(lambda g: complete(expected)(g) and len(g.dead_letters) >= 7, timeout_s=90.0)
    assert worker.stop() == 0, engine_stack.logs()
    assert_same_rows(got, expected, engine_stack)
    reasons = sorted(record["reason"].split(":")[0] for record in got.dead_letters)
    assert reasons == sorted(
        [
            "batch",  # not JSON at all
            "schema",  # an element without its fields
            "crossed or locked book",
            "key mismatch",  # an ETH/USD element inside a BTC/USDT message
            "key mismatch",  # BTC/USDT ticks under the key kraken:ETH/USD
            "message without key",
            "bad key b'\\xff\\xfebinanceus'",
            "late event",
        ]
    ), got.dead_letters
    for record in got.dead_letters:
        assert re.fullmatch(r"raw:\d+@\d+", record["source"]), record
        assert record["raw"] or record.get("raw_b64")
        partition, offset, _ = record["_source"]
        assert record["source"] == f"raw:{partition}@{offset}"
    not_json = next(r for r in got.dead_letters if r["reason"].startswith("batch"))
    assert not_json["raw"] == "this is not json"


def key_other(tick: bytes) -> bytes:
    """The same tick, for another symbol (kraken:ETH/USD)."""
    envelope = orjson.loads(tick)
    envelope["exchange"], envelope["symbol"] = "kraken", "ETH/USD"
    return orjson.dumps(envelope)


def test_two_workers_share_the_partitions_through_a_rebalance(engine_stack: EngineStack) -> None:
    engine_stack.partitions = 4
    lines = simulated_ticks(12000, seed=33, exchanges=TEN_SYMBOLS)
    messages = per_symbol_batches(lines, 5)
    expected, _ = expected_rows(lines, CFG)
    hf_total = count_rows(expected)["hf"]
    engine_stack.prepare()
    first = engine_stack.worker("w1")
    joined = []

    # The last 40% of the input waits until the second worker holds raw partitions: under
    # load a worker can take longer to start than the first one needs for the whole input.
    head, tail = messages[: len(messages) * 6 // 10], messages[len(messages) * 6 // 10 :]
    holds_partitions = re.compile(rf"assigned partitions of {re.escape(engine_stack.outputs.raw)}: \[\d")

    async def second_worker_mid_stream(reader: OutputReader) -> None:
        publishing = asyncio.create_task(engine_stack.publish_paced(head, 5.0))
        while reader.received.count("hf") < hf_total * 0.25:
            await asyncio.sleep(0.02)
        print(f"second worker started with {'all' if publishing.done() else 'part'} of the head published")
        second = engine_stack.worker("w2")
        joined.append(second)
        await publishing
        waited = 0.0
        while not holds_partitions.search(second.log_text()):
            assert waited < 60, (
                f"the second worker got no raw partitions in 60 s: {second.log_text()[-3000:]}"
            )
            await asyncio.sleep(0.1)
            waited += 0.1
        print(f"second worker held raw partitions after {waited:.1f} s more; publishing the rest")
        await engine_stack.publish_paced(tail, 3.0)

    got = engine_stack.read(complete(expected), during=second_worker_mid_stream, settle_s=3.0)
    (second,) = joined
    assert second.stop() == 0 and first.stop() == 0, engine_stack.logs()
    assert_same_rows(got, expected, engine_stack)
    topic = engine_stack.outputs.raw
    for worker in (first, second):
        assigned = re.findall(rf"assigned partitions of {re.escape(topic)}: \[([\d, ]*)\]", worker.log_text())
        assert assigned, worker.log_text()[-3000:]
    w1_last = re.findall(rf"assigned partitions of {re.escape(topic)}: \[([\d, ]*)\]", first.log_text())
    assert len(w1_last) >= 2, "the first worker saw no rebalance"
    assert counted(stopped_line(second.log_text()), "raw messages") > 0, "the second worker processed nothing"
    print(f"rebalance: {got.duplicates} output copies dropped; w1 assignments {w1_last}")
