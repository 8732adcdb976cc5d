"""Where a collector's raw envelopes come from.

A source is anything with a `name` (it goes into dead-letter records, so a
bad line can be traced back) and `lines()`, an async iterator of raw envelope
bytes (DESIGN.md "Raw messages"), one tick each, in the order the collector
must publish them. The collector validates, paces, limits and batches; a
source only delivers bytes. The simulated market and files are sources here;
a ccxt.pro exchange source (a later issue) is another implementation of the
same protocol, whose `lines()` awaits the exchange's websockets.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from fluxforge_common.pipeline.sources import archive_dates, archive_lines, input_lines, simulator_lines
from fluxforge_common.simulator import SimulatorConfig
from fluxforge_common.storage.local import LocalStorage

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


class IteratorSource:
    """A synchronous iterator of lines (simulator, file, archive, stdin) as a `TickSource`.

    The iterator is advanced in a worker thread, `chunk` lines at a time, so a
    read that blocks (stdin, a slow disk) never stalls the event loop: batches
    keep lingering out and signals keep being handled while it waits. stdin
    uses chunks of one line, so a piped tick is published as soon as it is read.
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

    async def lines(self) -> AsyncGenerator[bytes, None]:
        iterator = iter(self._lines)
        loop = asyncio.get_running_loop()
        # One dedicated thread: the iterator is never advanced by two threads at once.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collector-source")
        try:
            while chunk := await loop.run_in_executor(executor, _take, iterator, self._chunk):
                for line in chunk:
                    yield line
        finally:
            executor.shutdown(wait=False, cancel_futures=True)


def _take(iterator: Iterator[bytes], n: int) -> list[bytes]:
    return list(itertools.islice(iterator, n))


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
        return IteratorSource(input_lines(text), "stdin", chunk=1)
    candidate = Path(path)
    if not candidate.exists():
        raise ValueError(f"input {path} does not exist")
    if not candidate.is_dir():
        if dates:
            raise ValueError(f"--date/--start-date/--end-date need a dataset root as input; {path} is a file")
        return IteratorSource(input_lines(candidate), f"file:{path}")
    return archive_source(candidate, dates)


def archive_source(root: str | Path, dates: list[str] | None = None) -> IteratorSource:
    """The raw archive under a dataset root (or its `raw/` directory), in ingest order."""
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
    return IteratorSource(archive_lines(storage, dates), f"archive:{base}[{label}]")
