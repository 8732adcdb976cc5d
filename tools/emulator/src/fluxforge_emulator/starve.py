"""A CPU-starved client: a co-task that takes its event loop away for a fixed share of every period.

On a saturated core (other processes, a GC pause, a slow consumer in the
same process) a collector's event loop gets only part of each moment: frames
pile up in the socket buffers and then arrive in a rush, and everything the
loop runs (ccxt's parsing, the collector's hand-over, the queue's consumer)
competes for what is left. `starve` reproduces that inside the process under
test, independent of the machine's other load (which `nice` or `taskset`
would depend on): it spins on the CPU, holding the loop, for `share` of
every `period_s`, and yields for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator


def _busy_s(share: float, period_s: float) -> float:
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1 (exclusive), got {share}")
    return share * period_s


async def starve(share: float, period_s: float = 0.05) -> None:
    """Hold the running loop busy for `share` of every `period_s`, until cancelled."""
    busy = _busy_s(share, period_s)
    while True:
        end = time.perf_counter() + busy
        while time.perf_counter() < end:
            pass
        await asyncio.sleep(period_s - busy)


@contextlib.asynccontextmanager
async def starved(share: float, period_s: float = 0.05) -> AsyncIterator[None]:
    """The loop starved (`starve`) while the block runs."""
    _busy_s(share, period_s)
    task = asyncio.create_task(starve(share, period_s), name="cpu starvation")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
