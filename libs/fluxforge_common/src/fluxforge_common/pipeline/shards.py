"""`fluxforge reprocess --workers N`: the archive's symbols split over N processes.

A symbol's rows depend on its own ticks only (its book, trades, ticker and
watermarks), so N processes that each read the whole archive and keep the ticks
of the symbols hashed to them (crc32 of `exchange:symbol`, the same in every
process), in ingest order, write, between them, the rows one process would, each
into its own symbols' partitions. Every process decompresses every segment; it
picks its lines from each block natively (`Shard.lines_of`) and merges only those
(README "A shard's lines picked natively"). A line that is not a JSON object goes
to the first process, one without exchange or symbol to the process of those
empty names, and one that is not JSON after its symbol to that symbol's: either
way one engine rejects it once.

`fluxforge replay --shard K/N` publishes shard K's lines by the same split, so
that N replays publish an archive side by side, each symbol by one of them, in
order (docs/capacity.md "Reprocessing one month").

The parent only waits: it merges the shards' progress and summaries,
forwards a stop (SIGTERM) to each shard once, and fails when one fails.
Shards ignore SIGINT (a terminal's Ctrl-C reaches the parent, which forwards
it), start with SIGTERM blocked until their handler is in place (so a stop
during their start-up waits for it instead of killing them), and exit when
the parent is gone.
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing
import os
import queue
import signal
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any, Protocol

import msgspec
from fluxforge_native import shard_lines, symbol_crc32

from fluxforge_common.pipeline.embedded import RunSummary
from fluxforge_common.stopping import ReadStop


class ShardJob(Protocol):
    """What each shard runs over the lines it keeps (`reprocess.RebuildJob`); picklable."""

    def run(
        self,
        *,
        shard: Shard | None = None,
        on_progress: Callable[[RunSummary], None] | None = None,
        read_stop: ReadStop | None = None,
    ) -> RunSummary: ...


_PARENT_CHECK_S = 1.0
_REPORT_GRACE_S = 2.0


class ShardFailedError(RuntimeError):
    """A reprocess shard raised (its traceback is on stderr) or ended without reporting."""


class _Key(msgspec.Struct):
    exchange: str = ""
    symbol: str = ""


_decode_key = msgspec.json.Decoder(_Key).decode


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`: the lines of the symbols hashed to it (`shard_of`)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"shard {self.index} of {self.count} does not exist (K/N: N >= 1, K from 0 to N - 1)"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`K/N`: shard K (counted from 0, as a Kubernetes indexed Job numbers its pods) of N."""
        index, sep, count = (part.strip() for part in text.partition("/"))
        if not (sep and index.isdecimal() and count.isdecimal()):
            raise ValueError(f"a shard is K/N, K counted from 0 (0/4 to 3/4 for four); got {text!r}")
        return cls(int(index), int(count))

    def keeps(self, line: bytes) -> bool:
        return shard_of(line, self.count) == self.index

    def lines_of(self, block: bytes) -> list[bytes]:
        """The lines of `block` (whole lines, empty ones left out) this shard keeps, in order: the
        others dropped natively, without a Python object each."""
        lines, undecided = shard_lines(block, self.count, self.index)
        for i in reversed(undecided):
            if not self.keeps(lines[i]):
                del lines[i]
        return lines


def shard_of(line: bytes, shards: int) -> int:
    """The shard of the symbol a raw line names (`""` for a name it lacks); 0 for a line that is not
    a JSON object of string names.

    The common line is hashed natively (`symbol_crc32`, ~5x faster); the rest is decoded here,
    to the same hash.
    """
    crc = symbol_crc32(line)
    if crc is None:
        try:
            key = _decode_key(line)
        except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for a string not UTF-8
            return 0
        crc = zlib.crc32(f"{key.exchange}:{key.symbol}".encode())
    return crc % shards


def merge_summaries(summaries: Iterable[RunSummary]) -> RunSummary:
    """One summary of the shards' disjoint parts."""
    merged = RunSummary()
    for part in summaries:
        merged.lines += part.lines
        merged.accepted += part.accepted
        merged.rejected += part.rejected
        merged.late += part.late
        merged.duplicates += part.duplicates
        merged.first_event_ms = _either(min, merged.first_event_ms, part.first_event_ms)
        merged.last_event_ms = _either(max, merged.last_event_ms, part.last_event_ms)
        merged.rows.update(part.rows)
        merged.per_symbol.update(part.per_symbol)
        merged.reasons.update(part.reasons)
        merged.files += part.files
        merged.disk_full = merged.disk_full or part.disk_full
        merged.needs_recovery = merged.needs_recovery or part.needs_recovery
    return merged


def _either(pick: Callable[[int, int], int], a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else pick(a, b)


def run_shards(
    job: ShardJob,
    shards: int,
    *,
    on_progress: Callable[[RunSummary], None] | None = None,
    read_stop: ReadStop | None = None,
) -> RunSummary:
    """`job` over `shards` processes; raises ShardFailedError naming the shard that failed.

    When every shard read its lines to their end, `read_stop` is marked ended: a stop that comes
    after that (while the parent writes) cuts nothing short, as with one process."""
    context = multiprocessing.get_context("spawn")  # no fork of this process's threads
    messages: Queue[tuple[str, int, Any]] = context.Queue()
    processes = [
        context.Process(
            target=_shard_main,
            args=(job, shard, shards, messages, on_progress is not None),
            name=f"fluxforge reprocess shard {shard}",
        )
        for shard in range(shards)
    ]
    with _inherited_stop_signals():
        for process in processes:
            process.start()
    latest: dict[int, RunSummary] = {}
    done: dict[int, RunSummary] = {}
    read_to_the_end: set[int] = set()
    ended: dict[int, float] = {}  # shards seen ended without their report, and since when
    stop_sent = False
    try:
        while len(done) < shards:
            if read_stop is not None and read_stop.stopped and not stop_sent:
                stop_sent = True
                _signal_all(processes, signal.SIGTERM)
            try:
                kind, shard, payload = messages.get(timeout=0.2)
            except queue.Empty:
                _fail_if_one_died(processes, done, ended)
                continue
            if kind == "failed":
                raise ShardFailedError(f"reprocess shard {shard} of {shards} failed: {payload}")
            if kind == "done":
                summary, read_all = payload
                latest[shard] = done[shard] = summary
                if read_all:
                    read_to_the_end.add(shard)
                continue
            latest[shard] = payload
            if on_progress is not None:
                on_progress(merge_summaries(latest.values()))
    finally:
        if len(done) < shards:
            _signal_all(processes, signal.SIGKILL)
        for process in processes:
            process.join()
        messages.close()
        messages.join_thread()
    if read_stop is not None and len(read_to_the_end) == shards:
        read_stop.ended = True
    return merge_summaries(done[shard] for shard in range(shards))


@contextlib.contextmanager
def _inherited_stop_signals() -> Iterator[None]:
    """While shards start: SIGINT ignored and SIGTERM blocked, which they inherit."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if in_main:
            signal.signal(signal.SIGINT, previous)


def _signal_all(processes: Sequence[BaseProcess], signum: signal.Signals) -> None:
    for process in processes:
        if process.pid is not None and process.exitcode is None:
            os.kill(process.pid, signum)


def _fail_if_one_died(
    processes: Sequence[BaseProcess], done: dict[int, RunSummary], ended: dict[int, float]
) -> None:
    """Raise for a shard that ended without reporting; its report, if it sent one, is given a
    moment to come out of the queue first."""
    now = time.monotonic()
    for shard, process in enumerate(processes):
        gone = shard not in done and process.exitcode is not None
        if gone and now - ended.setdefault(shard, now) > _REPORT_GRACE_S:
            raise ShardFailedError(
                f"reprocess shard {shard} of {len(processes)} ended with exit code "
                f"{process.exitcode} before reporting"
            )


def _shard_main(
    job: ShardJob, shard: int, shards: int, messages: Queue[tuple[str, int, Any]], progress: bool
) -> None:
    read_stop = ReadStop()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: read_stop.stop())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # a stop sent meanwhile lands now
    parent = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()

    def report(summary: RunSummary) -> None:
        # A copy: the queue pickles in its own thread while the run goes on counting.
        messages.put(("progress", shard, copy.deepcopy(replace(summary, files=[]))))

    try:
        summary = job.run(
            shard=Shard(shard, shards),
            on_progress=report if progress else None,
            read_stop=read_stop,
        )
    except Exception as exc:
        traceback.print_exc()
        messages.put(("failed", shard, f"{type(exc).__name__}: {exc}"))
        return
    messages.put(("done", shard, (summary, read_stop.ended)))


def _exit_with_parent(parent: int) -> None:
    """A shard whose parent was killed has nobody to report to: it leaves what it wrote and exits."""
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_S)
    os._exit(1)
