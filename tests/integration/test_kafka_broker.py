"""Round trips through a real Kafka broker with the client settings FluxForge uses.

The producer side matches the collector (acks=all, idempotence, zstd through cramjam, keyed by
"<exchange>:<symbol>"); the consumer side reads back with a consumer group. A second test shows
transactions: read_committed consumers never see an aborted transaction's messages.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.codec import has_zstd

if TYPE_CHECKING:
    from tests.support.kafka import KafkaTopics

pytestmark = pytest.mark.integration

KEYS = [f"binanceus:SYM{i:02d}/USDT" for i in range(12)]
PER_KEY = 50
CONSUME_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Received:
    key: str | None
    value: bytes
    partition: int
    offset: int


def _received(records: Any) -> list[Received]:
    return [
        Received(
            key=None if r.key is None else bytes(r.key).decode(),
            value=bytes(r.value),
            partition=int(r.partition),
            offset=int(r.offset),
        )
        for r in records
    ]


async def _consume(
    bootstrap: str,
    topic: str,
    group_id: str,
    *,
    until: int,
    isolation_level: str = "read_uncommitted",
    settle_s: float = 1.0,
) -> list[Received]:
    """Read with a consumer group until `until` records arrived, then `settle_s` more (to catch
    duplicates), commit, and return them in arrival order (which is offset order per partition)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    await consumer.start()
    got: list[Received] = []
    try:
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while len(got) < until and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(_received(records))
        settle_end = time.monotonic() + settle_s
        while time.monotonic() < settle_end:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                got.extend(_received(records))
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


async def _positions_after_rejoin(bootstrap: str, topic: str, group_id: str) -> tuple[int, dict[int, int]]:
    """Join the group again: how many records it still gets, and where each partition resumes."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen = 0
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while not consumer.assignment() and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen += len(records)
        for _ in range(3):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen += len(records)
        positions = {tp.partition: int(await consumer.position(tp)) for tp in consumer.assignment()}
    finally:
        await consumer.stop()
    return seen, positions


async def _produce_keyed(bootstrap: str, topic: str) -> dict[str, set[int]]:
    """Send PER_KEY messages for every key, keys interleaved; returns the partitions each key went to."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        compression_type="zstd",
        linger_ms=5,
    )
    await producer.start()
    try:
        pending: list[tuple[str, Any]] = []
        for seq in range(PER_KEY):
            for key in KEYS:
                value = json.dumps({"key": key, "seq": seq, "pad": "x" * 200}).encode()
                pending.append((key, await producer.send(topic, value=value, key=key.encode())))
        partitions: dict[str, set[int]] = defaultdict(set)
        for key, future in pending:
            metadata = await future
            partitions[key].add(int(metadata.partition))
    finally:
        await producer.stop()
    return partitions


async def _end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: int(ends[tp]) for tp in tps}
    finally:
        await consumer.stop()


def test_keyed_round_trip_with_consumer_group(kafka_topics: KafkaTopics) -> None:
    assert has_zstd(), "zstd compression needs the cramjam package"
    bootstrap = kafka_topics.bootstrap
    topic = kafka_topics.create(partitions=3)
    group = f"{topic}-group"
    total = len(KEYS) * PER_KEY

    key_partitions = asyncio.run(_produce_keyed(bootstrap, topic))
    assert all(len(parts) == 1 for parts in key_partitions.values()), "a key must map to one partition"
    assert {p for parts in key_partitions.values() for p in parts} == {0, 1, 2}, "keys should spread"

    got = asyncio.run(_consume(bootstrap, topic, group, until=total))

    # Every message exactly once.
    payloads = [json.loads(r.value) for r in got]
    sent = {(key, seq) for key in KEYS for seq in range(PER_KEY)}
    received = [(p["key"], p["seq"]) for p in payloads]
    assert len(received) == total, f"got {len(received)} messages, want {total}"
    assert set(received) == sent
    # Per-key order, and the message key on the wire is the one the payload names.
    by_key: dict[str, list[int]] = defaultdict(list)
    for record, payload in zip(got, payloads, strict=True):
        assert record.key == payload["key"]
        assert {record.partition} == key_partitions[payload["key"]]
        by_key[payload["key"]].append(payload["seq"])
    for key, seqs in by_key.items():
        assert seqs == list(range(PER_KEY)), f"{key} out of order"

    # The group committed what it read: rejoining resumes at the end and gets nothing again.
    seen_again, positions = asyncio.run(_positions_after_rejoin(bootstrap, topic, group))
    assert seen_again == 0
    assert positions == asyncio.run(_end_offsets(bootstrap, topic, 3))
    assert sum(positions.values()) == total


async def _produce_transactions(bootstrap: str, topic: str) -> None:
    """committed-0..2 in a committed transaction, aborted-0..2 in an aborted one, committed-3..5 after."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"{topic}-txn",
        enable_idempotence=True,
        acks="all",
        compression_type="zstd",
    )
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(3):
                await producer.send_and_wait(topic, f"committed-{i}".encode(), key=b"k")
        await producer.begin_transaction()
        for i in range(3):
            await producer.send_and_wait(topic, f"aborted-{i}".encode(), key=b"k")
        await producer.abort_transaction()
        async with producer.transaction():
            for i in range(3, 6):
                await producer.send_and_wait(topic, f"committed-{i}".encode(), key=b"k")
    finally:
        await producer.stop()


def test_read_committed_skips_aborted_transactions(kafka_topics: KafkaTopics) -> None:
    bootstrap = kafka_topics.bootstrap
    topic = kafka_topics.create(partitions=1)
    asyncio.run(_produce_transactions(bootstrap, topic))

    committed = [f"committed-{i}".encode() for i in range(6)]
    aborted = [f"aborted-{i}".encode() for i in range(3)]

    got = asyncio.run(
        _consume(bootstrap, topic, f"{topic}-committed", until=6, isolation_level="read_committed")
    )
    assert [r.value for r in got] == committed

    # The aborted records are in the log all the same: a read_uncommitted consumer gets them.
    got_all = asyncio.run(_consume(bootstrap, topic, f"{topic}-uncommitted", until=9))
    assert [r.value for r in got_all] == committed[:3] + aborted + committed[3:]
