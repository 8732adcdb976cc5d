"""The `engine_stack` fixture: a unique topic prefix and app id per test, workers as child
processes (so `kill -9` is real), their output read back deduplicated (`EngineStack`).

Every topic the test's workers created (raw, features, dead-letter under the prefix, and the
state changelog under the app id) is deleted after the test, and every worker still running is
killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.support.feature_engine import EngineStack
from tests.support.kafka import KafkaTopics


async def _topics_of(bootstrap: str, prefix: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return [t for t in await admin.list_topics() if t.startswith(prefix)]
    finally:
        await admin.close()


@pytest.fixture
def engine_stack(
    kafka_topics: KafkaTopics, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[EngineStack]:
    stack = EngineStack(kafka_topics.bootstrap, f"ffe-{uuid.uuid4().hex[:10]}", tmp_path)
    started = time.monotonic()
    try:
        yield stack
    finally:
        for worker in stack.workers:
            if worker.proc is not None and worker.proc.poll() is None:
                worker.kill9()
        with contextlib.suppress(Exception):
            kafka_topics.created += asyncio.run(_topics_of(stack.bootstrap, stack.prefix))
        print(f"{request.node.name}: {time.monotonic() - started:.1f} s, logs in {tmp_path}")
