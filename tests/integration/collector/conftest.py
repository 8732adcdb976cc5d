"""Fixtures of the collector's integration tests: a unique topic prefix per test, and reading a topic back.

The collector creates its own topics (`<prefix>.raw`, `<prefix>.deadletter`, ...) with
`ensure_topics`, so tests give it a fresh prefix instead of pre-created topics; every topic
under the prefix is deleted after the test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fluxforge_common.config import FluxForgeSettings, KafkaConfig

READ_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    def ticks(self) -> list[bytes]:
        """The exact bytes of each tick in a batch value."""
        return [bytes(raw) for raw in msgspec.json.decode(self.value, type=list[msgspec.Raw])]


@dataclass(frozen=True)
class KafkaPrefix:
    bootstrap: str
    prefix: str

    def settings(self, **kafka: object) -> FluxForgeSettings:
        """Settings whose topics all live under this test's prefix (3 partitions unless told)."""
        options: dict[str, object] = {"partitions": 3, **kafka}
        return FluxForgeSettings(
            kafka=KafkaConfig(bootstrap_servers=self.bootstrap, topic_prefix=self.prefix, **options)
        )

    def env(self, **kafka: object) -> dict[str, str]:
        """The same as environment variables, for the CLI and subprocesses."""
        values = {"bootstrap_servers": self.bootstrap, "topic_prefix": self.prefix, "partitions": 3, **kafka}
        return {f"FLUXFORGE_KAFKA__{key.upper()}": str(value) for key, value in values.items()}

    def read(self, topic: str) -> list[Record]:
        """Everything in `topic` now, in offset order per partition (nothing if it does not exist)."""
        return asyncio.run(_read_all(self.bootstrap, topic))


async def _partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # Listed first: describing a missing topic would have the broker auto-create it (with
        # one partition), racing the collector, which creates its topics once Kafka answers.
        if topic not in await admin.list_topics():
            return []
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert described["error_code"] == 0, f"topic {topic}: error {described['error_code']}"
    return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]


async def _read_all(bootstrap: str, topic: str) -> list[Record]:
    partitions = await _partitions(bootstrap, topic)
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Record] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READ_TIMEOUT_S
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert loop.time() < deadline, f"could not read {topic} to its end in {READ_TIMEOUT_S} s"
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                records += [Record(tp.partition, r.offset, r.key, r.value) for r in batch]
        return records
    finally:
        await consumer.stop()


async def _delete_prefixed(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix + ".")]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


@pytest.fixture
def kafka_prefix(kafka_bootstrap: str) -> Iterator[KafkaPrefix]:
    """A topic prefix no other test uses; its topics are deleted afterwards."""
    prefix = KafkaPrefix(kafka_bootstrap, f"fftest-collector-{uuid.uuid4().hex[:10]}")
    yield prefix
    try:
        asyncio.run(_delete_prefixed(kafka_bootstrap, prefix.prefix))
    except Exception as exc:  # cleanup only: prefixes are unique, a leftover harms no one
        print(f"warning: could not delete topics under {prefix.prefix}: {exc!r}")
