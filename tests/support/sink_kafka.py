"""A pipeline's worth of topics under a unique prefix, filled the way the stack fills them."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.features import TABLES
from fluxforge_common.kafka import TopicNames, producer

from tests.support.stack_data import Message, Output, StackData

PARTITIONS = 3
TRANSACTION_SIZE = 37  # feature messages per engine transaction: markers land between offsets


@dataclass
class PipelineTopics:
    """Settings pointing at this test's topics (prefix unique per test)."""

    settings: FluxForgeSettings
    names: TopicNames

    @property
    def kafka(self) -> KafkaConfig:
        return self.settings.kafka

    @property
    def topics(self) -> list[str]:
        return [self.names.raw, self.names.deadletter, *self.names.features.values()]


def _part(messages: list[Message], part: tuple[float, float]) -> list[Message]:
    return messages[round(part[0] * len(messages)) : round(part[1] * len(messages))]


async def produce(cfg: KafkaConfig, stack_data: StackData, *, part: tuple[float, float] = (0.0, 1.0)) -> None:
    """The collector's raw batches (idempotent producer), then the engine's rows and dead-letters
    in transactions (as an exactly-once Faust app writes them): the `part` (from, to fractions) of
    each topic's messages, so consecutive parts keep every key's order."""
    names = TopicNames.from_config(cfg)
    raw = producer(cfg)
    await raw.start()
    try:
        sent = [
            await raw.send(names.raw, value, key=key.encode()) for key, value in _part(stack_data.raw, part)
        ]
        await asyncio.gather(*sent)
    finally:
        await raw.stop()
    messages = [
        (names.features[t], key, value) for t in TABLES for key, value in _part(stack_data.features[t], part)
    ]
    messages += [(names.deadletter, key, value) for key, value in _part(stack_data.deadletter, part)]
    engine = producer(cfg, transactional_id=f"{cfg.topic_prefix}-engine-{uuid.uuid4().hex[:6]}")
    await engine.start()
    try:
        for start in range(0, len(messages), TRANSACTION_SIZE):
            async with engine.transaction():
                for topic, key, value in messages[start : start + TRANSACTION_SIZE]:
                    await engine.send(topic, value, key=key.encode())
    finally:
        await engine.stop()


async def produce_outputs(cfg: KafkaConfig, log: list[Output]) -> None:
    """An engine log (`stack_data.engine_outputs`, copies included) as the engine sends it: keyed,
    with its `ff-src` headers, in order, by an idempotent producer (the engine runs at-least-once)."""
    client = producer(cfg)
    await client.start()
    try:
        sent = [await client.send(o.topic, o.value, key=o.key.encode(), headers=list(o.headers)) for o in log]
        await asyncio.gather(*sent)
    finally:
        await client.stop()


async def committed_metadata(cfg: KafkaConfig, group: str) -> dict[str, tuple[int, str]]:
    """The group's commits, "topic/partition" -> (offset, metadata), through the admin API."""
    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.bootstrap_servers)
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {f"{tp.topic}/{tp.partition}": (om.offset, om.metadata) for tp, om in found.items()}


async def offsets(cfg: KafkaConfig, group: str, topics: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """The group's committed offsets and the topics' end offsets (read_committed), by "topic/partition"."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=cfg.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    tps = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    assert len({tp.topic for tp in tps}) == len(topics), described
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
        committed = {f"{tp.topic}/{tp.partition}": (await consumer.committed(tp)) or 0 for tp in tps}
        return committed, {f"{tp.topic}/{tp.partition}": int(ends[tp]) for tp in tps}
    finally:
        await consumer.stop()


def kill_9_then_finish(
    command: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    files: Callable[[], int],
    thresholds: Sequence[int],
) -> str:
    """Run the sink `command`, SIGKILL it once `files()` reaches each threshold in turn, then let it
    run to the end; returns its log. Fails unless it was killed at every threshold and then exited 0."""
    log_path = cwd / "sink.log"
    kills = 0
    proc: subprocess.Popen[bytes] | None = None
    with log_path.open("wb") as log:
        for threshold in (*thresholds, None):
            proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                if threshold is not None and files() >= threshold:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills += 1
                    break
                time.sleep(0.01)
            if proc.poll() is None:
                proc.kill()
                raise AssertionError(f"the sink did not finish; log in {log_path}")
            if threshold is None or proc.returncode == 0:
                break
    output = log_path.read_text()
    assert proc is not None and proc.returncode == 0, output[-3000:]
    assert kills == len(thresholds), (
        f"the sink finished before it could be killed ({kills} kills):\n{output[-2000:]}"
    )
    return output
