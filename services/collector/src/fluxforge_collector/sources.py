"""Where a collector's raw envelopes come from: the `TickSource` protocol; simulator, file and archive sources.

A source delivers raw envelope bytes (docs/design.md "Raw messages"), one tick
each, in publishing order; the collector validates, paces, limits and
batches. The live exchange source is `fluxforge_collector.exchange`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
from collections.abc import AsyncGenerator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from fluxforge_common.pipeline.lines import (
    IDLE,
    IDLE_AFTER_S,
    archive_dates,
    archive_exchanges,
    archive_lines,
    input_lines,
    simulator_lines,
    stdin_lines,
)
from fluxforge_common.simulator import SimulatorConfig
from fluxforge_common.storage.local import LocalStorage

if TYPE_CHECKING:
    from fluxforge_common.pipeline.shards import Shard

# Lines pulled per hand-off from a blocking iterator: large enough that the hand-off
# costs nothing per tick, small enough that a paced or stopped run wastes little.
CHUNK_LINES = 1024


class TickSource(Protocol):
    """A stream of raw envelope bytes."""

    @property
    def name(self) -> str:
        """Short description, used in logs and as the dead-letter record's `source`."""
        ...

    def lines(self) -> AsyncGenerator[bytes, None]:
        """The raw envelopes, one tick per item, in publishing order.

        An async generator, so the collector can close it when it stops early
        and the source gets to release its threads or connections.
        """
        ...

    def request_stop(self) -> bool:
        """Ask the stream to end after yielding what the source already received.

        False when the source cannot end it itself: the caller then cancels the read.
        """
        ...


class IteratorSource:
    """A synchronous iterator of lines (simulator, file, archive, stdin) as a `TickSource`.

    The iterator is advanced in a reader thread, `chunk` lines at a time, so a
    read that blocks (stdin, a slow disk) never stalls the event loop: batches
    keep lingering out and signals keep being handled while it waits. The
    thread is a daemon: a collector stopped while stdin is idle still exits.
    stdin uses chunks of one line, so a piped tick is published as soon as it
    is read.
    """

    def __init__(self, lines: Iterable[bytes], name: str, *, chunk: int = CHUNK_LINES) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        self._lines = lines
        self._name = name
        self._chunk = chunk

    @property
    def name(self) -> str:
        return self._name

    def request_stop(self) -> bool:
        return False  # the reader thread may be blocked in a read: only cancelling the read stops it

    async def lines(self) -> AsyncGenerator[bytes, None]:
        loop = asyncio.get_running_loop()
        requests: queue.SimpleQueue[asyncio.Future[list[bytes]] | None] = queue.SimpleQueue()
        threading.Thread(
            target=self._serve, args=(loop, requests), name=f"source {self._name}", daemon=True
        ).start()
        try:
            while True:
                future: asyncio.Future[list[bytes]] = loop.create_future()
                requests.put(future)
                chunk = await future
                if not chunk:
                    return
                for line in chunk:
                    yield line
        finally:
            requests.put(None)

    def _serve(
        self, loop: asyncio.AbstractEventLoop, requests: queue.SimpleQueue[asyncio.Future[list[bytes]] | None]
    ) -> None:
        """Reader thread: one chunk per request, until told to stop (None) or the input ends."""
        iterator = iter(self._lines)
        try:
            while (future := requests.get()) is not None:
                try:
                    chunk = list(itertools.islice(iterator, self._chunk))
                except Exception as exc:
                    _settle(loop, future, exc)
                    return
                _settle(loop, future, chunk)
                if not chunk:
                    return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


def _settle(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[list[bytes]], outcome: list[bytes] | Exception
) -> None:
    """Hand a chunk (or the reader's exception) to the event loop, unless nobody waits any more."""

    def settle() -> None:
        if future.cancelled():
            return
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    with contextlib.suppress(RuntimeError):  # the loop is closed: the collector has finished
        loop.call_soon_threadsafe(settle)


def simulator_source(config: SimulatorConfig) -> IteratorSource:
    """The simulated market's endless stream (stop it with the collector's limits or a signal)."""
    return IteratorSource(simulator_lines(config), f"simulator(seed={config.seed})")


def file_source(path: str | Path, dates: list[str] | None = None) -> IteratorSource:
    """An NDJSON file (`.zst` too), `-` for stdin, or a dataset root / `raw/` directory.

    For a directory, the raw archive is read back in ingest order, limited to
    `dates` when given; asking for dates of anything else, or dates the archive
    does not hold, is a `ValueError` that names what exists.
    """
    text = str(path)
    if text == "-":
        if dates:
            raise ValueError("--date/--start-date/--end-date need a dataset root as input, not stdin")
        return IteratorSource(stdin_lines(), "stdin", chunk=1)
    candidate = Path(path)
    if not candidate.exists():
        raise ValueError(f"input {path} does not exist")
    if not candidate.is_dir():
        if dates:
            raise ValueError(f"--date/--start-date/--end-date need a dataset root as input; {path} is a file")
        return IteratorSource(input_lines(candidate), f"file:{path}")
    return archive_source(candidate, dates)


def archive_source(
    root: str | Path, dates: list[str] | None = None, shard: Shard | None = None, exchange: str | None = None
) -> IteratorSource:
    """The raw archive under a dataset root (or its `raw/` directory), in ingest order; of the symbols
    of `shard` and the segments of `exchange` only, given them."""
    base = Path(root)
    if base.name == "raw":
        base = base.parent
    storage = LocalStorage(base)
    present = archive_dates(storage)
    if not present:
        raise ValueError(f"no raw archive under {base} (expected {base / 'raw'}/exchange=.../date=...)")
    if dates is not None:
        missing = sorted(set(dates) - set(present))
        if len(missing) == len(set(dates)):
            raise ValueError(
                f"the raw archive under {base} has none of {', '.join(missing)}; "
                f"it holds {', '.join(present)}"
            )
    label = "all dates" if dates is None else (dates[0] if len(dates) == 1 else f"{dates[0]}..{dates[-1]}")
    if exchange is not None:
        exchanges = archive_exchanges(storage)
        if exchange not in exchanges:
            raise ValueError(
                f"the raw archive under {base} has no exchange {exchange!r}; it holds {', '.join(exchanges)}"
            )
        label += f", {exchange}"
    if shard is not None:
        label += f", shard {shard.index}/{shard.count}"
    return IteratorSource(archive_lines(storage, dates, shard, exchange), f"archive:{base}[{label}]")


class BlockingLines:
    """An async `TickSource` read from synchronous code (the embedded pipeline): iterate, `stop()` to end.

    The source runs on an event loop in a thread of its own and hands lines
    over through a bounded queue, so a slow consumer holds the source back
    rather than piling lines up; after `IDLE_AFTER_S` without a line it yields
    `IDLE` (`fluxforge_common.pipeline.lines`). `stop()` (safe from a signal handler) asks a
    live source to finish (it still hands over what it received) or cancels
    any other; iteration ends when the source has. An exception the source
    raised is raised by the iteration.
    """

    _END = object()

    def __init__(self, source: TickSource, *, maxsize: int = 10_000) -> None:
        self.source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._stop_requested = False
        self._thread = threading.Thread(target=self._run, name=f"source {source.name}", daemon=True)

    def __iter__(self) -> Iterator[bytes]:
        self._thread.start()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=IDLE_AFTER_S)
                except queue.Empty:
                    yield IDLE  # a quiet market: the reader still gets a turn
                    continue
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, bytes)
                yield item
        finally:
            self.stop()
            self._drain_until_end()

    def stop(self) -> None:
        """Ask the source to end (from any thread)."""
        self._stop_requested = True
        if self._ready.is_set() and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already finished
                self._loop.call_soon_threadsafe(self._request_stop)

    def _request_stop(self) -> None:
        if not self.source.request_stop() and self._task is not None:
            self._task.cancel()

    def _drain_until_end(self) -> None:
        """After an early exit: let the source's thread finish (it may be blocked on a full queue)."""
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                if self._queue.get(timeout=0.1) is self._END:
                    break
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._ready.set()
        if self._stop_requested:
            self._request_stop()
        outcome: object = self._END
        try:
            async with contextlib.aclosing(self.source.lines()) as lines:
                async for line in lines:
                    if self._queue.full():  # the consumer is behind: wait without blocking the loop
                        await asyncio.to_thread(self._queue.put, line)
                    else:
                        self._queue.put_nowait(line)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            outcome = exc
        if outcome is not self._END:
            self._queue.put(outcome)
        self._queue.put(self._END)
