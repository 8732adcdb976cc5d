"""A Kafka producer stand-in and list sources for the collector's unit tests (no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class FakeProducer:
    """Records sends; `fail_after` makes the n-th and later sends fail as a broker would."""

    sent: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    fail_after: int | None = None
    stopped: bool = False
    on_send: Any = None
    gate: asyncio.Event | None = None  # when set, sends wait for it: a broker that stopped answering

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    async def flush(self) -> None:
        pass

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(6))

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[None]:
        if self.gate is not None:
            await self.gate.wait()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            future.set_exception(RuntimeError("broker said no"))
        else:
            self.sent.append((topic, key, value))
            future.set_result(None)
        if self.on_send is not None:
            self.on_send()
        return future


class ListSource:
    """A `TickSource` over a list, counting how many lines it has handed out."""

    def __init__(self, lines: list[bytes], name: str = "list") -> None:
        self._lines = lines
        self.name = name
        self.yielded = 0

    def request_stop(self) -> bool:
        return False  # a stop cancels the read

    async def lines(self) -> AsyncGenerator[bytes, None]:
        for line in self._lines:
            self.yielded += 1
            yield line


def elements_of(producer: FakeProducer, topic: str = "unit.raw") -> dict[bytes, list[dict[str, Any]]]:
    """Per key, the raw elements (ticks and watermarks) in the order they were sent."""
    per_key: dict[bytes, list[dict[str, Any]]] = {}
    for to, key, value in producer.sent:
        if to == topic:
            assert key is not None
            per_key.setdefault(key, []).extend(orjson.loads(value))
    return per_key


def ticks_of(producer: FakeProducer, topic: str = "unit.raw") -> dict[bytes, list[bytes]]:
    """Per key, the raw ticks in the order they were sent."""
    return {
        key: [orjson.dumps(e) for e in elements if e["type"] != "watermark"]
        for key, elements in elements_of(producer, topic).items()
    }
