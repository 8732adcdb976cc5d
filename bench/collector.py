"""Collector publish rates against a real Kafka broker (`make kafka-up`, or $FLUXFORGE_KAFKA_BOOTSTRAP).

Each run publishes to topics under a fresh prefix, deleted afterwards. A rate
counts from the first tick read to the last batch acknowledged (acks=all), so
it is what a collector sustains, not what its producer buffers. Without a
reachable broker the rows say so instead of failing the whole bench.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import AsyncGenerator

from aiokafka.admin import AIOKafkaAdminClient
from fluxforge_collector.collector import Collector, CollectorStats, Limits
from fluxforge_collector.launch import CollectorError, publish
from fluxforge_collector.sources import TickSource, simulator_source
from fluxforge_common.config import FluxForgeSettings, KafkaConfig, load_settings
from fluxforge_common.pipeline.lines import simulator_lines
from fluxforge_common.simulator import SimulatorConfig

Row = tuple[str, str, str]
# One message per tick is ~10x slower; fewer ticks keep the bench short.
UNBATCHED_TICKS = 50_000


class _MemorySource:
    """Pre-generated ticks, so the rate is the collector's alone (validation, batching, producer, broker)."""

    name = "memory"

    def __init__(self, lines: list[bytes]) -> None:
        self._lines = lines

    def request_stop(self) -> bool:
        return False  # a stop cancels the read

    async def lines(self) -> AsyncGenerator[bytes, None]:
        for line in self._lines:
            yield line


def _bootstrap() -> str:
    return os.environ.get("FLUXFORGE_KAFKA_BOOTSTRAP") or load_settings().kafka.bootstrap_servers


async def delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix + ".")]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def _publish(bootstrap: str, source: TickSource, limits: Limits, batch_max_ticks: int) -> CollectorStats:
    prefix = f"ffbench-{uuid.uuid4().hex[:8]}"
    kafka = KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=prefix, batch_max_ticks=batch_max_ticks)
    settings = FluxForgeSettings(kafka=kafka)
    try:
        return publish(Collector(settings, source, limits=limits), settings)
    finally:
        asyncio.run(delete_topics(bootstrap, prefix))


def run(n: int) -> list[Row]:
    bootstrap = _bootstrap()
    lines = list(itertools.islice(simulator_lines(SimulatorConfig(seed=99)), n))
    try:
        batched = _publish(bootstrap, _MemorySource(lines), Limits(), 100)
    except CollectorError as exc:
        return [("collector publish", "skipped", f"no Kafka broker at {bootstrap}: {exc}"[:160])]
    simulated = _publish(bootstrap, simulator_source(SimulatorConfig(seed=99)), Limits(events=n), 100)
    unbatched = _publish(bootstrap, _MemorySource(lines[:UNBATCHED_TICKS]), Limits(), 1)
    return [
        (
            "collector publish, 100-tick batches (validate, zstd, acks=all)",
            f"{batched.rate:,.0f}",
            "ticks/s, one process, broker on this machine (target >= 50,000)",
        ),
        (
            "collector, simulated market -> Kafka (generation included)",
            f"{simulated.rate:,.0f}",
            "ticks/s, one process",
        ),
        (
            "collector publish, one message per tick (batch_max_ticks=1)",
            f"{unbatched.rate:,.0f}",
            f"ticks/s ({UNBATCHED_TICKS:,} ticks; why batches)",
        ),
    ]
