"""The shared stop helper: a first signal asks for a graceful stop, a second one or the deadline forces it."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

from fluxforge_common.stopping import ReadStop, StopRequests


def test_a_stop_ends_the_lines_between_two_lines() -> None:
    read_stop = ReadStop()
    got = []
    for line in read_stop.lines(iter([b"a", b"b", b"c"])):
        got.append(line)
        read_stop.stop()  # while the line is processed: it is kept, the next one is not read
    assert got == [b"a"]


def test_a_stop_interrupts_a_read_that_waits() -> None:
    read_stop = ReadStop()

    def waiting() -> Iterator[bytes]:
        yield b"first"
        read_stop.stop()  # as a signal handler would, while the reader waits for the next line
        yield b"never handed out"

    assert list(read_stop.lines(waiting())) == [b"first"]


def test_first_signal_is_graceful_second_forces_and_handlers_are_restored() -> None:
    calls: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    with StopRequests(
        lambda: calls.append("graceful"),
        force=lambda: calls.append("force"),
        deadline_s=60,
        setting="test.stop_deadline_s",
        doing="testing",
    ) as stops:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        assert stops.signals == 2
    assert calls == ["graceful", "force"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_deadline_forces_a_stop_that_does_not_finish() -> None:
    forced = threading.Event()
    with StopRequests(
        lambda: None, force=forced.set, deadline_s=0.05, setting="test.stop_deadline_s", doing="testing"
    ):
        os.kill(os.getpid(), signal.SIGTERM)
        assert forced.wait(30)


def test_a_stop_after_the_input_ended_cuts_nothing_short() -> None:
    """Reprocess replaces the earlier files when its input was read to the end, even if a stop came
    afterwards (while it wrote); a stop before the end leaves them."""
    late = ReadStop()
    assert list(late.lines([b"a", b"b"])) == [b"a", b"b"]
    late.stop()
    assert late.stopped and not late.cut_short
    early = ReadStop()
    read = []
    for line in early.lines([b"a", b"b", b"c"]):
        read.append(line)
        early.stop()
    assert read == [b"a"] and early.cut_short
