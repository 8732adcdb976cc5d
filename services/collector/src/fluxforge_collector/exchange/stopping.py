"""How a stop reaches an exchange source's watchers: at their next wait, never while they hand data over."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


class Stopped:
    """The result of a wait that a stop ended."""


STOPPED = Stopped()


class StopSignal:
    """Set once when the source stops; `wait` is where a watcher may be stopped."""

    def __init__(self) -> None:
        self.is_set = False
        self._waiting: set[asyncio.Task[Any]] = set()  # tasks inside `wait`: safe to cancel

    def set(self) -> None:
        """No wait starts any more."""
        self.is_set = True

    def interrupt(self) -> None:
        """Set, and end the waits in progress (each returns `STOPPED`)."""
        self.is_set = True
        for task in list(self._waiting):
            task.cancel()

    async def wait(self, awaitable: Awaitable[Any]) -> Any:
        """Await something a stop may interrupt (a ccxt watch or a backoff sleep); `STOPPED` if it did."""
        task = asyncio.current_task()
        assert task is not None
        if self.is_set:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            return STOPPED
        self._waiting.add(task)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self.is_set:
                return STOPPED
            raise
        finally:
            self._waiting.discard(task)
