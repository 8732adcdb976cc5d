"""The spool drainer against a real broker: after a failure it sends again exactly what did not land."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fluxforge_collector.drainer import SPOOL_HEADER, SpoolDrainer, partition_for
from fluxforge_collector.spool import DiskSpool
from fluxforge_common.kafka import TopicNames, ensure_topics, producer, topic_specs

if TYPE_CHECKING:
    from tests.support.kafka import KafkaPrefix

pytestmark = pytest.mark.integration


def test_a_batch_that_failed_before_a_later_one_of_its_partition_landed_is_sent_again(
    kafka_prefix: KafkaPrefix, tmp_path: Path
) -> None:
    """An earlier producer landed batches 1, 2, 4 and 5 of one partition; 3 failed and 6 was never
    sent. The new drainer must skip 1, 2, 4 and 5 and send 3 and 6, not skip all up to 5."""
    settings = kafka_prefix.settings(partitions=1)
    topic = TopicNames.from_config(settings.kafka).raw
    spool = DiskSpool(tmp_path / "spool", max_bytes=1 << 20)
    for seq in range(1, 7):
        assert spool.append(topic, b"ex:BTC/USDT", b"batch %d" % seq, 1) == seq
    landed_before = [record for record in spool.read(0, 6) if record.seq not in (3, 6)]

    async def earlier_producer() -> None:
        await ensure_topics(settings.kafka, topic_specs(settings.kafka))
        kafka = producer(settings.kafka)
        await kafka.start()
        try:
            for record in landed_before:
                await kafka.send_and_wait(
                    topic,
                    record.value,
                    key=record.key,
                    partition=partition_for(record, 1),
                    headers=[(SPOOL_HEADER, f"{spool.ident}:{record.seq}".encode())],
                )
        finally:
            await kafka.stop()

    async def drain() -> None:
        drainer = SpoolDrainer(spool, settings.kafka, window=16)
        drainer.close()
        await asyncio.wait_for(drainer.run(), 60)

    asyncio.run(earlier_producer())
    asyncio.run(drain())
    values = [record.value for record in kafka_prefix.read(topic)]
    assert values == [b"batch %d" % seq for seq in (1, 2, 4, 5, 3, 6)]
    assert spool.acked == 6 and spool.records == 0
    spool.close()
