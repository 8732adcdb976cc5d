"""Fixtures of the feature engine's integration tests: a unique topic prefix and app id per test,
workers as child processes (so `kill -9` is real), and reading their output back deduplicated.

Every topic the test's workers created (raw, features, dead-letter under the prefix, and the
state changelog under the app id) is deleted after the test, and every worker still running is
killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.kafka import TopicNames
from fluxforge_feature_engine.harness import OutputReader, Received, WorkerProcess, publish
from fluxforge_feature_engine.topics import EngineTopics, prepare_topics

if TYPE_CHECKING:
    from tests.integration.conftest import KafkaTopics

READ_TIMEOUT_S = 90.0


@dataclass
class EngineStack:
    """One test's topics, config and workers."""

    bootstrap: str
    prefix: str
    root: Path
    partitions: int = 3
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def app_id(self) -> str:
        return f"{self.prefix}-app"

    @property
    def kafka(self) -> KafkaConfig:
        return KafkaConfig(
            bootstrap_servers=self.bootstrap, topic_prefix=self.prefix, partitions=self.partitions
        )

    @property
    def outputs(self) -> TopicNames:
        return TopicNames.from_config(self.kafka)

    def config_file(self) -> Path:
        path = self.root / "config.yaml"
        path.write_text(
            "kafka:\n"
            f"  bootstrap_servers: '{self.bootstrap}'\n"
            f"  topic_prefix: '{self.prefix}'\n"
            f"  partitions: {self.partitions}\n"
        )
        return path

    def prepare(self) -> EngineTopics:
        """Create the topics now (the worker would), so a test can publish before any worker runs."""
        return asyncio.run(prepare_topics(self.kafka, None, self.app_id))

    def worker(self, name: str, *extra: str) -> WorkerProcess:
        """Start `python -m fluxforge_feature_engine` for this stack; its log is <root>/<name>.log."""
        args = [
            "--config",
            str(self.config_file()),
            "--app-id",
            self.app_id,
            "--data-dir",
            str(self.root / f"faust-{name}"),
            *extra,
        ]
        process = WorkerProcess(args, self.root / f"{name}.log").start()
        self.workers.append(process)
        return process

    def publish(self, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        asyncio.run(publish(self.kafka, self.outputs.raw, messages))

    async def publish_paced(self, messages: Sequence[tuple[bytes | None, bytes]], duration_s: float) -> None:
        """Publish in ~20 slices spread over `duration_s`: a stream that is still arriving."""
        slices = 20
        size = max(1, -(-len(messages) // slices))
        for start in range(0, len(messages), size):
            await publish(self.kafka, self.outputs.raw, messages[start : start + size])
            await asyncio.sleep(duration_s / slices)

    def read(
        self,
        done: Callable[[Received], bool],
        *,
        timeout_s: float = READ_TIMEOUT_S,
        settle_s: float = 2.0,
        during: Callable[[OutputReader], Coroutine[Any, Any, None]] | None = None,
    ) -> Received:
        """Read the outputs until `done` (then `settle_s` more); `during` runs alongside the reading."""

        async def go() -> Received:
            async with OutputReader(self.kafka, self.outputs) as reader:
                task = asyncio.create_task(during(reader)) if during is not None else None
                try:
                    got = await reader.read_until(done, timeout_s, settle_s)
                    if task is not None:
                        await task
                    return got
                finally:
                    if task is not None and not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task

        return asyncio.run(go())

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.log_text()[-6000:]}" for w in self.workers)


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
