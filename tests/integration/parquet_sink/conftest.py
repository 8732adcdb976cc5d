"""The `pipeline` fixture: the sink's topics under a prefix no other test uses, deleted afterwards."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.kafka import TopicNames, ensure_topics, topic_specs

from tests.support.kafka import delete_topics
from tests.support.sink_kafka import PARTITIONS, PipelineTopics


async def _wait_for_leaders(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            described = await admin.describe_topics(topics)
            if all(
                d["error_code"] == 0 and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
                for d in described
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics without leaders: {topics}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


@pytest.fixture
def pipeline(kafka_bootstrap: str) -> Iterator[PipelineTopics]:
    prefix = f"fftest-sink-{uuid.uuid4().hex[:10]}"
    settings = FluxForgeSettings(
        kafka=KafkaConfig(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=PARTITIONS)
    )
    names = TopicNames.from_config(settings.kafka)
    specs = topic_specs(settings.kafka)
    asyncio.run(ensure_topics(settings.kafka, specs))
    asyncio.run(_wait_for_leaders(kafka_bootstrap, [s.name for s in specs]))
    yield PipelineTopics(settings, names)
    try:
        asyncio.run(delete_topics(kafka_bootstrap, [s.name for s in specs]))
    except Exception as exc:  # cleanup only: names are unique
        print(f"warning: could not delete topics of {prefix}: {exc!r}")
