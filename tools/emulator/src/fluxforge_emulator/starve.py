"""A CPU-starved client: a co-task that takes its event loop away for a fixed share of every period.

On a saturated core (other processes, a CPU quota, a GC pause) a collector's
event loop gets only part of each moment: frames pile up in the socket
buffers and then arrive in a rush, and everything the loop runs (ccxt's
parsing, the collector's hand-over, the queue's consumer) competes for what
is left. `starve` reproduces that inside the process under test, independent
of the machine's other load (which `nice` or `taskset` would depend on): it
blocks the loop's thread for `share` of every `period_s`, and yields for the
rest. It blocks by sleeping, not by spinning: the time is taken from the
loop alone, as the scheduler takes it from a starved process, while the
exchange (an emulator in another thread of the same process, standing for a
remote server) goes on sending. A spinning co-task would hold the GIL and a
core too, and starve the emulator with the client: on a loaded 2-core box it
went silent for seconds and the collector's stall watchdog rightly dropped
its connections.
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
    """Hold the running loop for `share` of every `period_s`, until cancelled."""
    busy = _busy_s(share, period_s)
    while True:
        time.sleep(busy)  # the loop's thread is held; other threads run
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
