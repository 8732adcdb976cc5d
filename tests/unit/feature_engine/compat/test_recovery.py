"""The faust-streaming fix: after a rebalance, stream partitions resume only once they are seeked."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.tables.recovery import Recovery
from fluxforge_feature_engine.compat import recovery
from fluxforge_feature_engine.compat.recovery import seek_before_resume

RAW0, RAW1, LOG0 = ("raw", 0), ("raw", 1), ("app-changelog", 0)


class FakeConsumer:
    def __init__(self) -> None:
        self.calls: list[Any] = []
        self._committed_offset = {RAW0: 17}  # RAW1 never committed

    async def earliest_offsets(self, *tps: Any) -> dict[Any, int]:
        return dict.fromkeys(tps, 3)

    async def seek_wait(self, offsets: dict[Any, int]) -> None:
        self.calls.append(("seek", offsets))

    def resume_partitions(self, tps: Any) -> None:
        self.calls.append(("resume", sorted(tps)))

    async def perform_seek(self) -> None:
        self.calls.append("seek")


class FakeRecovery:
    """Calls the consumer the way Faust 0.15.3's `_resume_streams` / `on_recovery_completed` do."""

    def __init__(self, consumer: FakeConsumer, *, seek: bool = True) -> None:
        self.app = type("App", (), {"consumer": consumer})()
        self.seek = seek

    def _is_changelog_tp(self, tp: Any) -> bool:
        return str(tp[0]).endswith("-changelog")

    async def resume_streams(self, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        consumer.resume_partitions({RAW0, RAW1, LOG0})
        if self.seek:
            await consumer.perform_seek()
        consumer.calls.append("flow resumed")


def test_stream_partitions_resume_after_the_seek() -> None:
    consumer = FakeConsumer()
    asyncio.run(seek_before_resume(FakeRecovery.resume_streams)(FakeRecovery(consumer)))
    assert consumer.calls == [
        ("resume", [LOG0]),
        "seek",
        ("seek", {RAW1: 3}),  # no committed offset: from the earliest, as auto_offset_reset says
        ("resume", [RAW0, RAW1]),
        "flow resumed",
    ]
    # The consumer's own methods are back.
    assert "resume_partitions" not in vars(consumer) and "perform_seek" not in vars(consumer)


def test_without_a_seek_the_stream_partitions_still_resume() -> None:
    consumer = FakeConsumer()
    asyncio.run(seek_before_resume(FakeRecovery.resume_streams)(FakeRecovery(consumer, seek=False)))
    assert consumer.calls == [("resume", [LOG0]), "flow resumed", ("resume", [RAW0, RAW1])]


def test_apply_patches_fausts_recovery_once() -> None:
    recovery.apply()
    first = Recovery._resume_streams, Recovery.on_recovery_completed
    recovery.apply()
    assert (Recovery._resume_streams, Recovery.on_recovery_completed) == first
    assert all(getattr(m, "_fluxforge_seek_before_resume", False) for m in first)
