"""MessageProcessor: the feature engine's per-message logic, without Kafka or Faust.

The worker is a thin shell around it, so what is proven here holds for the
service: the same rows as the in-process engine for any batching, every bad
input dead-lettered with its reason and source, and a replay after a crash
that, deduplicated, equals an uninterrupted run.
"""

from __future__ import annotations

import base64
import random
import zlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast

import msgspec
import orjson
import pytest
from fluxforge_common.config import FluxForgeSettings, StateConfig
from fluxforge_common.features import FeatureEngine, SymbolState, output_tables
from fluxforge_common.kafka import TopicNames, parse_complete
from fluxforge_common.kafka.lineage import Deduplicator, Headers, parse_source
from fluxforge_common.messages.decoding import DEFAULT_MAX_MESSAGE_BYTES
from fluxforge_common.messages.envelopes import event_time
from fluxforge_common.messages.rows import decode_rows
from fluxforge_feature_engine.processor import (
    MessageProcessor,
    MessageResult,
    StateError,
    decode_stored,
    row_chunks,
)

from tests.support.engine_faults import TickLaneFault, failing
from tests.support.feature_engine import (
    IBARS,
    expected_rows,
    final_watermarks,
    per_symbol_batches,
    simulated_ticks,
    watermark_message,
    with_watermarks,
)
from tests.support.ticks import book, trade, trades_delayed
from tests.support.times import T0

CFG = StateConfig()
TOPICS = TopicNames.from_config(FluxForgeSettings().kafka)
TABLE_OF = {topic: table for table, topic in TOPICS.features.items()}
KEY = b"ex:BTC/USDT"
TICKS = simulated_ticks(4000, seed=5)


def processor() -> MessageProcessor:
    return MessageProcessor(CFG, TOPICS, clock=lambda: 1_765_600_000.0)


def run(
    messages: Sequence[tuple[bytes | None, bytes]],
    proc: MessageProcessor | None = None,
    table: dict[bytes, bytes] | None = None,
    partition: int = 0,
) -> tuple[list[MessageResult], dict[bytes, bytes]]:
    proc = proc or processor()
    table = {} if table is None else table
    results = []
    for offset, (key, value) in enumerate(messages):
        result = proc.process(key, value, partition, offset, None if key is None else table.get(key))
        if result.table_value is not None:
            assert key is not None
            table[key] = result.table_value
        results.append(result)
    return results, table


def rows_of(results: list[MessageResult]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {table: defaultdict(list) for table in TOPICS.features}
    for result in results:
        for out in result.outgoing:
            table = TABLE_OF.get(out.topic)
            if table is not None:
                assert out.key is not None
                rows[table][out.key.decode()].extend(decode_rows(out.value))
    return {table: dict(by_key) for table, by_key in rows.items()}


def dead_letters(results: list[MessageResult]) -> list[dict[str, Any]]:
    return [
        orjson.loads(out.value) | {"_src": parse_source(out.headers)}
        for result in results
        for out in result.outgoing
        if out.topic == TOPICS.deadletter
    ]


@pytest.mark.parametrize("batch_size", [1, 7, 100])
def test_same_rows_as_the_in_process_engine(batch_size: int) -> None:
    expected, rejected = expected_rows(TICKS, CFG)
    results, table = run(per_symbol_batches(TICKS, batch_size))
    assert rows_of(results) == expected
    assert all(expected[t] for t in output_tables(CFG)), (
        "every table must have rows, or the test proves little"
    )
    assert len(dead_letters(results)) == len(rejected)
    assert len(table) == 5  # one state per simulated symbol


def test_states_kept_decoded_for_fewer_symbols_than_the_stream_has_give_the_same_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Symbols whose decoded state was evicted restore it from the table value."""
    monkeypatch.setattr("fluxforge_feature_engine.processor.DECODED_STATES", 2)
    expected, _ = expected_rows(TICKS, CFG)
    assert rows_of(run(per_symbol_batches(TICKS, 7))[0]) == expected


def test_a_state_kept_decoded_is_used_only_for_the_table_value_it_was_written_as() -> None:
    """A worker that gets a symbol back after another worker applied messages to it restores the
    other worker's state, not the one it kept."""
    messages = per_symbol_batches(TICKS, 50)
    key = messages[0][0]
    assert key is not None
    mine = [m for m in messages if m[0] == key]
    first, second, third, fourth = mine[:4]
    worker, other = processor(), processor()
    _, my_table = run([first, second], worker)
    _, other_table = run([first, third], other)
    assert my_table[key] != other_table[key]
    after_other = worker.process(key, fourth[1], 0, 10, other_table[key])
    fresh = processor().process(key, fourth[1], 0, 10, other_table[key])
    assert [o.value for o in after_other.outgoing] == [o.value for o in fresh.outgoing]
    assert after_other.table_value == fresh.table_value


@pytest.mark.parametrize("batch_size", [1, 100])
def test_trades_behind_later_depth_diffs_give_the_in_process_rows_for_any_batch_size(batch_size: int) -> None:
    """Ticks held for the allowed lateness live in the table value between messages."""
    skewed = trades_delayed(TICKS, max_delay_ms=200)
    expected, rejected = expected_rows(skewed, CFG)
    results, _ = run(per_symbol_batches(skewed, batch_size))
    assert rejected == [] and dead_letters(results) == []
    assert rows_of(results) == expected


@pytest.mark.parametrize("batch_size", [1, 100])
def test_watermarks_mid_stream_change_no_row_and_final_ones_give_the_flushed_rows(batch_size: int) -> None:
    """After every raw message a true watermark for its symbol, at the end the collector's final
    watermarks: the rows of the in-process run, flush included."""
    skewed = trades_delayed(TICKS, max_delay_ms=200)
    batches = per_symbol_batches(skewed, batch_size)
    messages = with_watermarks(batches)
    finals = final_watermarks(skewed, CFG)
    results, _ = run([*messages, *finals])
    expected, rejected = expected_rows(skewed, CFG, flush=True)
    assert rejected == [] and dead_letters(results) == []
    assert rows_of(results) == expected
    assert sum(r.watermarks for r in results) == len(messages) - len(batches) + len(finals)
    closed = sum(r.watermark_rows for r in results)
    assert closed > len(finals)  # the quiet stretches of a batch of one close early
    assert sum(r.rows for r in results[-len(finals) :]) > 0


@pytest.mark.parametrize("batch_size", [1, 7, 100])
def test_information_driven_bars_are_the_in_process_rows_for_any_batch_size(batch_size: int) -> None:
    """Bars follow the trades as applied: held for the lateness across messages, released by watermarks,
    stored in the table value between messages (a state of format 6)."""
    cfg = StateConfig(ibars=IBARS)
    skewed = trades_delayed(TICKS, max_delay_ms=200)
    messages = with_watermarks(per_symbol_batches(skewed, batch_size))
    proc = MessageProcessor(cfg, TOPICS, clock=lambda: 1_765_600_000.0)
    results, _ = run([*messages, *final_watermarks(skewed, cfg)], proc)
    expected, rejected = expected_rows(skewed, cfg, flush=True)
    assert rejected == [] and dead_letters(results) == []
    kinds = {row["kind"] for by_key in expected["ibars"].values() for row in by_key}
    assert kinds == {"tick", "volume", "dollar", "tick_imbalance"} and len(expected["ibars"]) == 5
    assert rows_of(results) == expected


def test_a_watermark_alone_is_stored_and_a_foreign_one_dead_lettered() -> None:
    proc = processor()
    results, table = run(
        [(KEY, book(T0 + 100, [(100.0, 1.0)], [(101.0, 1.0)])), watermark_message(KEY, T0 + 3_500)], proc
    )
    assert results[1].watermarks == 1 and results[1].table_value is not None
    assert [row["ts"] for row in rows_of(results)["hf"]["ex:BTC/USDT"]] == [
        T0 + 1_000,
        T0 + 2_000,
        T0 + 3_000,
    ]
    _, _, state = decode_stored(table[KEY])
    assert SymbolState.from_bytes(state, CFG).core.watermark_ms == T0 + 3_500
    late = proc.process(KEY, trade(T0 + 3_400, 100.5, 1.0), 0, 2, table[KEY])
    assert [r["reason"] for r in dead_letters([late])] == [
        f"late event: event time {T0 + 3_400} is before the watermark {T0 + 3_500}"
    ]
    _, foreign = watermark_message(b"ex:ETH/USDT", T0 + 4_000)
    other = proc.process(KEY, foreign, 0, 3, table[KEY])
    assert other.table_value is None and other.watermarks == 0
    assert [r["reason"] for r in dead_letters([other])] == [
        "key mismatch: element is for ex:ETH/USDT, message key is ex:BTC/USDT"
    ]


def test_table_value_records_the_applied_offset_and_round_trips() -> None:
    _, table = run(per_symbol_batches(TICKS[:300], 50))
    for key, value in table.items():
        partition, offset, state = decode_stored(value)
        assert partition == 0
        # The offset of the last message of that key.
        assert offset == max(i for i, (k, _) in enumerate(per_symbol_batches(TICKS[:300], 50)) if k == key)
        restored = SymbolState.from_bytes(state, CFG)
        assert f"{restored.exchange}:{restored.symbol}".encode() == key


def test_a_message_already_applied_is_skipped() -> None:
    messages = per_symbol_batches(TICKS[:500], 100)
    _, table = run(messages)
    proc = processor()
    for offset, (key, value) in enumerate(messages):
        assert key is not None
        again = proc.process(key, value, 0, offset, table[key])
        if offset <= decode_stored(table[key])[1]:
            assert again.skipped and not again.outgoing and again.table_value is None
    # Same offsets on another raw partition are another message.
    key, value = messages[0]
    assert key is not None
    assert not proc.process(key, value, 1, 0, table[key]).skipped


def test_replay_after_a_crash_deduplicated_equals_an_uninterrupted_run() -> None:
    """Model of a worker killed mid-stream (see the package docstring).

    Outputs go to 3 partitions per topic by key. A crash after message `crash`
    leaves in Kafka: every output of messages <= crash, part of the next
    message's outputs (never its state: outputs are acknowledged first), for each
    symbol one of the states it had (at least the one after its last message
    below the committed offset: Faust flushes before committing), and a
    committed offset <= crash + 1. The restarted worker re-runs from the
    committed offset against those states; a reader keeping the first copy of
    each output must see exactly the uninterrupted run's outputs, in order.
    """
    messages = per_symbol_batches(TICKS, 20)

    def log_of(results: list[MessageResult]) -> list[tuple[tuple[str, int], bytes, Headers]]:
        return [
            ((o.topic, zlib.crc32(o.key or b"") % 3), o.value, o.headers)
            for result in results
            for o in result.outgoing
        ]

    def per_partition(
        log: list[tuple[tuple[str, int], bytes, Headers]],
    ) -> dict[tuple[str, int], list[bytes]]:
        out: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        for where, value, _ in log:
            out[where].append(value)
        return dict(out)

    uninterrupted = per_partition(log_of(run(messages)[0]))
    rng = random.Random(11)
    copies = 0
    for _ in range(25):
        crash = rng.randrange(len(messages) - 1)
        committed = rng.randint(0, crash + 1)  # the offset of the first message not committed
        proc = processor()
        table: dict[bytes, bytes] = {}
        history: dict[bytes, list[tuple[int, bytes]]] = defaultdict(list)
        kafka = []
        for offset in range(crash + 1):
            key, value = messages[offset]
            assert key is not None
            result = proc.process(key, value, 0, offset, table.get(key))
            kafka += log_of([result])
            if result.table_value is not None:
                table[key] = result.table_value
                history[key].append((offset, result.table_value))
        key, value = messages[crash + 1]
        assert key is not None
        unfinished = log_of([proc.process(key, value, 0, crash + 1, table.get(key))])
        kafka += unfinished[: rng.randint(0, len(unfinished))]
        durable: dict[bytes, bytes] = {}
        for key, versions in history.items():
            floor = max((o for o, _ in versions if o < committed), default=-1)
            choices: list[bytes | None] = [v for o, v in versions if o >= floor]
            if floor < 0:
                choices.append(None)
            picked = rng.choice(choices)
            if picked is not None:
                durable[key] = picked
        _, table = run([], table=durable)
        proc = processor()
        for offset in range(committed, len(messages)):
            key, value = messages[offset]
            assert key is not None
            result = proc.process(key, value, 0, offset, table.get(key))
            if result.table_value is not None:
                table[key] = result.table_value
            kafka += log_of([result])
        dedupe = Deduplicator()
        seen = [entry for entry in kafka if dedupe.accept(entry[0][0], entry[0][1], entry[2])]
        copies += len(kafka) - len(seen)
        assert per_partition(seen) == uninterrupted, f"crash after {crash}, committed {committed}"
    assert copies > 0, "no trial re-sent anything: the model proves nothing"


def test_bad_input_goes_to_dead_letter_with_reason_and_source() -> None:
    good = [book(T0 + i * 100, [(100.0, 1.0)], [(101.0, 1.0)]) for i in range(30)]
    messages: list[tuple[bytes | None, bytes]] = [
        (KEY, b"[" + b",".join(good[:10]) + b"]"),
        (KEY, b"this is not json"),
        (
            KEY,
            b"["
            + b",".join(
                [
                    good[10],
                    b'{"type":"book"}',
                    book(T0 + 1050, [(100.0, 1.0)], [(99.0, 1.0)]),
                    book(T0 + 1060, [(100.0, 1.0)], [(101.0, 1.0)], symbol="ETH/USDT"),
                    good[11],
                ]
            )
            + b"]",
        ),
        (b"ex:ETH/USDT", b"[" + good[12] + b"]"),
        (None, good[13]),
        (b"\xff\xfe", good[14]),
        (b"no-colon", good[15]),
        (KEY, book(T0 - 5000, [(100.0, 1.0)], [(101.0, 1.0)])),  # late
        (KEY, b"[" + b",".join(good[16:]) + b"]"),
    ]
    results, table = run(messages)
    dead = dead_letters(results)
    reasons = [(d["source"], d["_src"], d["reason"]) for d in dead]
    assert [r[0] for r in reasons] == [
        "raw:0@1",
        "raw:0@2",
        "raw:0@2",
        "raw:0@2",
        "raw:0@3",
        "raw:0@4",
        "raw:0@5",
        "raw:0@6",
        "raw:0@7",
    ]
    assert [r[1] for r in reasons] == [
        (0, 1, 0),
        (0, 2, 0),
        (0, 2, 1),
        (0, 2, 2),
        (0, 3, 0),
        (0, 4, 0),
        (0, 5, 0),
        (0, 6, 0),
        (0, 7, 0),
    ]
    text = [r[2] for r in reasons]
    assert text[0].startswith("batch: invalid JSON")
    assert text[1].startswith("schema:")
    assert text[2].startswith("crossed or locked book")
    assert text[3] == "key mismatch: element is for ex:ETH/USDT, message key is ex:BTC/USDT"
    assert text[4] == "key mismatch: element is for ex:BTC/USDT, message key is ex:ETH/USDT"
    assert text[5].startswith("message without key")
    assert "not UTF-8" in text[6]
    assert "expected '<exchange>:<symbol>'" in text[7]
    assert text[8].startswith("late event")
    # Original bytes are kept; the no-key message's record has no key either.
    assert dead[0]["raw"] == "this is not json"
    assert dead[5]["raw"] == good[13].decode()
    # Good ticks around the bad ones all made rows: only BTC/USDT state exists.
    assert list(table) == [KEY]
    expected, _ = expected_rows([*good[:12], *good[16:]], CFG)
    assert rows_of(results)["hf"] == expected["hf"]
    assert results[-1].applied == len(good[16:])


def test_refusals_of_the_native_path_and_of_decoding_keep_the_order_of_their_elements() -> None:
    # The lane applies and refuses runs of elements in one call; an element it leaves is decoded
    # and refused here: the dead letters follow the elements' order whichever refused them.
    good = [book(T0 + i * 1000, [(100.0, 1.0)], [(101.0, 1.0)]) for i in range(4)]
    late = book(T0 - 5000, [(100.0, 1.0)], [(101.0, 1.0)])  # past the lateness once good[1] is in
    elements = [
        good[0],
        good[1],
        late,  # refused by the lane
        b'{"type":"book"}',  # left by the lane, refused by decoding
        good[2],
        late,
        book(T0 + 2500, [(100.0, 1.0)], [(101.0, 1.0)], symbol="ETH/USDT"),  # left, key mismatch
        good[3],
        late,
    ]
    (result,), _ = run([(KEY, b"[" + b",".join(elements) + b"]")])
    dead = dead_letters([result])
    assert [d["_src"] for d in dead] == [(0, 0, index) for index in range(5)]
    assert [d["raw"].encode() for d in dead] == [late, b'{"type":"book"}', late, elements[6], late]
    reasons = [d["reason"] for d in dead]
    assert [reason.split(":")[0] for reason in reasons] == [
        "late event",
        "schema",
        "late event",
        "key mismatch",
        "late event",
    ]
    assert (result.elements, result.applied, result.rejected) == (9, 4, 5)


def test_an_engine_exception_dead_letters_the_whole_batch_and_keeps_the_state() -> None:
    good = [book(T0 + i * 300, [(100.0 + i, 1.0)], [(200.0, 1.0)]) for i in range(12)]
    first = b"[" + b",".join(good[:4]) + b"]"
    poisoned = b"[" + b",".join(good[4:8]) + b"]"
    last = b"[" + b",".join(good[8:]) + b"]"
    proc = processor()
    proc.engine = failing(
        proc.engine, lambda _, item: event_time(item.tick) == T0 + 6 * 300, ZeroDivisionError("boom")
    )
    results, table = run([(KEY, first), (KEY, poisoned), (KEY, last)], proc)
    middle = results[1]
    assert middle.table_value is None and middle.applied == 0
    assert [o.topic for o in middle.outgoing] == [TOPICS.deadletter]  # no half-batch rows
    record = orjson.loads(middle.outgoing[0].value)
    assert record["reason"] == "engine error: ZeroDivisionError: boom"
    assert record["raw"] == poisoned.decode()
    assert decode_stored(table[KEY])[1] == 2
    # The pipeline goes on from the state before the poisoned batch.
    expected, _ = expected_rows([*good[:4], *good[8:]], CFG)
    assert rows_of(results)["hf"] == expected["hf"]


def test_an_error_raised_inside_the_native_path_dead_letters_the_whole_batch_and_keeps_the_state() -> None:
    # Intervals of 1 s: the first batch closes none, each later one closes one, where the kernel
    # calls its state back and the fault raises.
    good = [book(T0 + i * 300, [(100.0 + i, 1.0)], [(200.0, 1.0)]) for i in range(12)]
    batches = [b"[" + b",".join(good[i : i + 4]) + b"]" for i in (0, 4, 8)]
    proc = processor()
    fault = TickLaneFault(proc.engine, "ex", "BTC/USDT", ZeroDivisionError("boom"))
    proc.engine = cast(FeatureEngine, fault)  # as `failing` types its engine
    results, table = run([(KEY, batch) for batch in batches], proc)
    assert results[0].applied == 4 and results[0].rejected == 0
    for result, batch in zip(results[1:], batches[1:], strict=True):
        assert result.table_value is None and result.applied == 0
        assert [o.topic for o in result.outgoing] == [TOPICS.deadletter]
        record = orjson.loads(result.outgoing[0].value)
        assert record["reason"] == "engine error: ZeroDivisionError: boom"
        assert record["raw"] == batch.decode()
    assert decode_stored(table[KEY])[1] == 0  # the state the first batch left


def test_a_state_that_cannot_be_restored_is_fatal() -> None:
    _, table = run([(KEY, book(T0, [(100.0, 1.0)], [(101.0, 1.0)]))])
    proc = MessageProcessor(StateConfig(horizons=(1, 5)), TOPICS)
    with pytest.raises(StateError, match="another feature config"):
        proc.process(KEY, book(T0 + 10, [(100.0, 1.0)], [(101.0, 1.0)]), 0, 1, table[KEY])
    with pytest.raises(StateError, match="unreadable"):
        processor().process(KEY, b"[]", 0, 1, b"\xc1garbage")
    with pytest.raises(StateError, match="format"):
        processor().process(KEY, b"[]", 0, 1, msgspec.msgpack.encode([2, 0, 0, b"x"]))


def test_large_outputs_are_split_in_chunks_with_their_own_index() -> None:
    rows = [{"ts": i, "pad": "x" * 1000} for i in range(300)]
    chunks = row_chunks(rows, limit=64 * 1024)
    assert len(chunks) > 1 and all(len(c) <= 64 * 1024 for c in chunks)
    assert [r for c in chunks for r in decode_rows(c)] == rows
    # A quiet hour: one tick then one an hour later emits 3600 HF rows at once; the row at the
    # later tick's own grid point waits for the allowed lateness to pass.
    msgs = [
        (KEY, book(T0, [(100.0, 1.0)], [(101.0, 1.0)])),
        (KEY, book(T0 + 3_600_000, [(100.0, 1.0)], [(101.0, 1.0)])),
    ]
    results, _ = run(msgs)
    hf = [o for o in results[1].outgoing if o.topic == TOPICS.features["hf"]]
    assert len(hf) > 1
    assert [parse_source(o.headers) for o in hf] == [(0, 1, i) for i in range(len(hf))]
    assert sum(len(decode_rows(o.value)) for o in hf) == 3600 - 1


def test_huge_rejected_values_are_truncated_in_their_record() -> None:
    value = b"\x01" * (DEFAULT_MAX_MESSAGE_BYTES - 1)  # within the limit; as JSON text, six times it
    results, _ = run([(KEY, value)])
    out = results[0].outgoing[0].value
    record = orjson.loads(out)
    assert len(out) <= DEFAULT_MAX_MESSAGE_BYTES and record["truncated"] is True
    assert record["raw_bytes"] == len(value) and value.startswith(base64.b64decode(record["raw_b64"]))


def test_a_trade_then_its_duplicate_in_another_batch_is_refused() -> None:
    msgs = [
        (KEY, trade(T0, 100.0, 1.0, id="t1")),
        (KEY, trade(T0 + 5, 100.0, 1.0, id="t1")),
    ]
    results, _ = run(msgs)
    assert results[0].applied == 1
    assert dead_letters(results)[0]["reason"].startswith("duplicate trade")


def test_feature_messages_say_up_to_when_every_symbol_of_the_partition_is_complete() -> None:
    """`ff-complete`: the least last-closed grid point of the partition's symbols; a quiet symbol holds
    it back until its watermark; a worker taking the partition over loads it from the table."""
    other = b"ex:ETH/USDT"
    b1 = ([(100.0, 1.0)], [(101.0, 1.0)])
    eth = orjson.loads(book(T0 + 200, *b1)) | {"symbol": "ETH/USDT"}
    messages: list[tuple[bytes | None, bytes]] = [
        (other, orjson.dumps([eth])),
        (KEY, book(T0 + 100, *b1)),
        (KEY, book(T0 + 4_600, *b1)),
        watermark_message(other, T0 + 3_000),
        (KEY, book(T0 + 6_600, *b1)),
    ]
    results, table = run(messages)

    def complete(result: MessageResult) -> set[int | None]:
        return {parse_complete(o.headers) for o in result.outgoing if o.topic != TOPICS.deadletter}

    assert complete(results[2]) == {T0}  # BTC closed up to T0 + 4_000; ETH only had its first tick
    assert complete(results[3]) == {T0 + 3_000}  # ETH's watermark closed its intervals
    assert complete(results[4]) == {T0 + 3_000}  # BTC at T0 + 6_000, ETH still at T0 + 3_000
    taken_over = processor()
    taken_over.load_completeness(0, table.items())
    again = taken_over.process(KEY, book(T0 + 8_600, *b1), 0, 5, table[KEY])
    uninterrupted = processor()
    run(messages, uninterrupted)
    assert complete(again) == complete(uninterrupted.process(KEY, book(T0 + 8_600, *b1), 0, 5, table[KEY]))
    assert complete(again) == {T0 + 3_000}


def test_a_value_that_is_no_batch_still_counts_its_symbols_state_toward_completeness() -> None:
    """A symbol whose stored state came from another partition joins this partition's completeness
    with its next message, readable or not."""
    other = b"ex:ETH/USDT"
    b1 = ([(100.0, 1.0)], [(101.0, 1.0)])
    proc = processor()
    first = proc.process(KEY, book(T0, *b1), 0, 0, None)
    assert first.table_value is not None
    refused = proc.process(KEY, b"not json", 1, 0, first.table_value)
    assert refused.rejected == 1 and refused.table_value is None
    eth = [orjson.loads(book(T0 + 5_000 + i * 700, *b1)) | {"symbol": "ETH/USDT"} for i in range(10)]
    later = proc.process(other, orjson.dumps(eth), 1, 1, None)
    heads = {parse_complete(o.headers) for o in later.outgoing if o.topic != TOPICS.deadletter}
    assert heads == {T0}  # BTC/USDT, with only its first tick, holds the partition back


def test_the_native_path_takes_no_tick_into_a_stored_state_of_other_names() -> None:
    """A table value under the wrong key (misrouted, corrupt) gets the key's ticks decoded, as
    before the native path, never taken natively into it."""
    b1 = ([(100.0, 1.0)], [(101.0, 1.0)])
    eth = orjson.loads(book(T0, *b1)) | {"symbol": "ETH/USDT"}
    proc = processor()
    misrouted = proc.process(b"ex:ETH/USDT", orjson.dumps([eth]), 0, 0, None).table_value
    eth_later = orjson.loads(book(T0 + 100, *b1)) | {"symbol": "ETH/USDT"}
    value = b"[" + orjson.dumps(eth_later) + b"," + book(T0 + 200, *b1) + b"]"
    result = proc.process(KEY, value, 0, 1, misrouted)
    assert result.applied == 1 and result.rejected == 1
    (dead,) = [orjson.loads(o.value) for o in result.outgoing if o.topic == TOPICS.deadletter]
    assert dead["reason"] == "key mismatch: element is for ex:ETH/USDT, message key is ex:BTC/USDT"
