"""EventFlusher: the order that makes crashes harmless, with fake Faust objects (no Kafka).

Outputs acknowledged by Kafka -> table writes (one per symbol) -> event acks, one
flush at a time; a flush never splits an event; a failed output stops all
later writes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from fluxforge_common.config import FluxForgeSettings, StateConfig
from fluxforge_common.kafka import TopicNames
from fluxforge_feature_engine.processor import MessageProcessor, decode_stored
from fluxforge_feature_engine.worker import EventFlusher, WorkerConfig, WorkerStats

from tests.support.feature_engine import per_symbol_batches, simulated_ticks

TOPICS = TopicNames.from_config(FluxForgeSettings().kafka)
MESSAGES = per_symbol_batches(simulated_ticks(600, seed=3), 20)


@dataclass
class Message:
    key: bytes
    value: bytes
    partition: int
    offset: int


@dataclass
class Event:
    message: Message


@dataclass
class Fakes:
    journal: list[tuple[str, Any]] = field(default_factory=list)
    futures: list[asyncio.Future[None]] = field(default_factory=list)
    data: dict[bytes, bytes] = field(default_factory=dict)
    crashed: BaseException | None = None

    # producer
    async def send(self, topic: str, key: bytes, value: bytes, *_: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        self.journal.append(("send", topic))
        await asyncio.sleep(0)  # a real send may yield to the loop
        return future

    async def flush(self) -> None:
        self.journal.append(("producer.flush", None))

    # app
    async def maybe_start_producer(self) -> Fakes:
        return self

    @property
    def producer(self) -> Fakes:
        return self

    async def crash(self, exc: BaseException) -> None:
        self.crashed = exc

    # table
    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def send_changelog(self, partition: int, key: bytes, value: bytes) -> None:
        self.journal.append(("changelog", (key, decode_stored(value)[1])))

    # stream
    async def ack(self, event: Event) -> None:
        self.journal.append(("ack", event.message.offset))


async def make(batch_events: int = 1000) -> tuple[EventFlusher, Fakes]:
    fakes = Fakes()
    config = WorkerConfig(app_id="t", data_dir=Path(), batch_events=batch_events, batch_within_s=0.0)
    flusher = EventFlusher(
        cast(Any, fakes), cast(Any, fakes), MessageProcessor(StateConfig(), TOPICS), WorkerStats(), config
    )
    cast(Any, flusher.table).data = fakes.data
    await flusher.start(fakes)
    return flusher, fakes


def events(messages: list[tuple[bytes, bytes]]) -> list[Event]:
    return [Event(Message(key, value, 0, offset)) for offset, (key, value) in enumerate(messages)]


def test_outputs_then_state_then_acks() -> None:
    async def go() -> Fakes:
        flusher, fakes = await make()
        for event in events(MESSAGES[:12]):
            await flusher.add(event)
        flushing = asyncio.create_task(flusher.flush())
        await asyncio.sleep(0.01)
        # Outputs not acknowledged yet: nothing written, nothing acked.
        assert not any(kind in ("changelog", "ack") for kind, _ in fakes.journal)
        for future in fakes.futures:
            future.set_result(None)
        await flushing
        return fakes

    fakes = asyncio.run(go())
    kinds = [kind for kind, _ in fakes.journal]
    last_send = max(i for i, k in enumerate(kinds) if k == "send")
    first_write = kinds.index("changelog")
    assert last_send < first_write < kinds.index("ack")
    writes = [what for kind, what in fakes.journal if kind == "changelog"]
    keys = {key for key, _ in MESSAGES[:12]}
    assert len(writes) == len(keys)  # one changelog record per symbol per flush
    for key, offset in writes:  # the newest state of each symbol
        assert offset == max(o for o, (k, _) in enumerate(MESSAGES[:12]) if k == key)
    assert [what for kind, what in fakes.journal if kind == "ack"] == list(range(12))


def test_a_flush_during_an_add_never_splits_the_event() -> None:
    async def go() -> Fakes:
        flusher, fakes = await make()
        evs = events(MESSAGES[:30])

        async def resolve_forever() -> None:
            while True:
                for future in fakes.futures:
                    if not future.done():
                        future.set_result(None)
                await asyncio.sleep(0)

        resolver = asyncio.create_task(resolve_forever())
        for event in evs:
            adding = asyncio.create_task(flusher.add(event))
            await asyncio.sleep(0)  # let add reach its first send
            await flusher.flush()  # a timer flush in the middle of it
            await adding
        await flusher.flush()
        resolver.cancel()
        return fakes

    fakes = asyncio.run(go())
    # Every ack comes after the sends of its event and after its symbol's state write.
    sends_before: list[int] = []
    sent = 0
    for kind, _ in fakes.journal:
        if kind == "send":
            sent += 1
        elif kind == "ack":
            sends_before.append(sent)
    assert sorted(sends_before) == sends_before and len(sends_before) == 30
    acked = [what for kind, what in fakes.journal if kind == "ack"]
    assert acked == list(range(30))
    for i, (kind, what) in enumerate(fakes.journal):
        if kind == "ack":
            key = MESSAGES[what][0]
            written = [w for k, w in fakes.journal[:i] if k == "changelog" and w[0] == key]
            assert written and written[-1][1] >= what


def test_a_refused_output_stops_every_later_write() -> None:
    async def go() -> tuple[EventFlusher, Fakes]:
        flusher, fakes = await make()
        for event in events(MESSAGES[:5]):
            await flusher.add(event)
        fakes.futures[0].set_exception(RuntimeError("broker says no"))
        for future in fakes.futures[1:]:
            future.set_result(None)
        with pytest.raises(RuntimeError, match="broker says no"):
            await flusher.flush()
        for event in events(MESSAGES[5:8]):
            await flusher.add(event)
        with pytest.raises(RuntimeError, match="earlier flush failed"):
            await flusher.flush()
        return flusher, fakes

    _, fakes = asyncio.run(go())
    assert isinstance(fakes.crashed, RuntimeError)
    assert not any(kind in ("changelog", "ack") for kind, _ in fakes.journal)


def test_drain_flushes_and_forget_drops_the_overlay() -> None:
    async def go() -> tuple[EventFlusher, Fakes]:
        flusher, fakes = await make()
        for event in events(MESSAGES[:4]):
            await flusher.add(event)
        assert flusher.latest
        for future in fakes.futures:
            future.set_result(None)
        await flusher.drain()
        flusher.forget()
        return flusher, fakes

    flusher, fakes = asyncio.run(go())
    kinds = [kind for kind, _ in fakes.journal]
    assert kinds[-1] == "producer.flush" and "ack" in kinds
    assert not flusher.latest
    assert set(fakes.data) == {key for key, _ in MESSAGES[:4]}


def test_a_full_batch_flushes_by_itself() -> None:
    async def go() -> Fakes:
        flusher, fakes = await make(batch_events=3)

        async def resolve() -> None:
            while True:
                for future in fakes.futures:
                    if not future.done():
                        future.set_result(None)
                await asyncio.sleep(0)

        resolver = asyncio.create_task(resolve())
        for event in events(MESSAGES[:7]):
            await flusher.add(event)
        resolver.cancel()
        return fakes

    fakes = asyncio.run(go())
    assert [what for kind, what in fakes.journal if kind == "ack"] == list(range(6))
