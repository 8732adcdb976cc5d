"""SIGTERM and SIGINT mean the same thing to every FluxForge command and service.

The first signal asks for a graceful stop: stop reading, write what was
processed, seal what is open, exit 0. A second signal, or the stop deadline
passing (a `stop_deadline_s` setting per mode), forces the exit at once. A
forced exit leaves what is durable as it is: every file a FluxForge writer
makes visible is complete (written aside, then renamed), so what was not yet
written is what a forced exit loses (docs/design.md "Loss windows").
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from types import FrameType, TracebackType
from typing import Any

# Exit status of a stop that did not finish writing (a second signal or the deadline).
FORCED_EXIT_STATUS = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def say(text: str) -> None:
    """One line on stderr, unbuffered: safe inside a signal handler that interrupted another write."""
    os.write(2, f"\n{text}\n".encode())


def exit_now() -> None:
    """Leave at once, without writing anything more (what is on disk stays as it is)."""
    os._exit(FORCED_EXIT_STATUS)


class StopRequests:
    """Counts stop signals: the first calls `graceful`, a second one or the deadline calls `force`.

    `graceful` and `force` run in the thread that handles the signal (the main
    thread or the event loop); the deadline calls `force` from a timer thread,
    so a stop that hangs is still ended. Use it as a context manager around
    the work: on leaving, the handlers are removed and the deadline disarmed.
    `then` says what to do after a forced exit.
    """

    def __init__(
        self,
        graceful: Callable[[], object],
        *,
        deadline_s: float,
        setting: str,
        doing: str,
        then: str = "",
        force: Callable[[], object] = exit_now,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.graceful = graceful
        self.then = then
        self.force = force
        self.deadline_s = deadline_s
        self.setting = setting
        self.doing = doing
        self.loop = loop
        self.signals = 0
        self._timer: threading.Timer | None = None
        self._previous: dict[signal.Signals, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signals > 0

    def __call__(self, signum: int, frame: FrameType | None = None) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            say(
                f"{name}: stopping, {self.doing} (a second signal, or {self.deadline_s:g} s "
                f"[{self.setting}], exits at once)"
            )
            timer = self._timer = threading.Timer(self.deadline_s, self._forced, args=("stop deadline",))
            timer.daemon = True
            timer.start()
            self.graceful()
        else:
            self._forced(f"second {name}")

    def _forced(self, why: str) -> None:
        then = f" {self.then}" if self.then else ""
        say(f"{why}: exiting now; files already written stay, what was not yet written is not written.{then}")
        self.force()

    def install(self) -> None:
        """Handle SIGTERM and SIGINT from now on (replacing any handler installed before)."""
        for sig in STOP_SIGNALS:
            if self.loop is None:
                self._previous[sig] = signal.signal(sig, self)
            else:
                self.loop.add_signal_handler(sig, self, sig)

    def disarm(self) -> None:
        """The stop is over: the deadline no longer applies."""
        if self._timer is not None:
            self._timer.cancel()

    def __enter__(self) -> StopRequests:
        self.install()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig in STOP_SIGNALS:
            if self.loop is None:
                signal.signal(sig, self._previous.pop(sig))
            else:
                self.loop.remove_signal_handler(sig)
        self.disarm()


class _ReadInterruptedError(Exception):
    """Raised by `ReadStop.stop` into a read that is blocked waiting for input."""


class ReadStop:
    """Ends the lines it passes on (`lines`) when `stop()` is called from a signal handler.

    The stop lands between two lines, or at once when the reader is blocked
    waiting for the next one (a slow pipe), never while a line is processed.
    Every line handed out was read whole; a line being read when the stop
    came is not handed out.
    """

    def __init__(self) -> None:
        self._reading = False
        self.stopped = False
        self.ended = False  # the source ran out: every line was handed out

    @property
    def cut_short(self) -> bool:
        """A stop ended the lines before their source did (a stop after the end cuts nothing)."""
        return self.stopped and not self.ended

    def lines(self, source: Iterable[bytes]) -> Iterator[bytes]:
        lines = iter(source)
        while not self.stopped:
            try:
                self._reading = True
                line = next(lines, None)
                self._reading = False  # a stop before this line is taken interrupts the read
            except _ReadInterruptedError:
                return
            except BaseException:
                self._reading = False
                raise
            if line is None:
                self.ended = True
                return
            yield line

    def stop(self) -> None:
        self.stopped = True
        if self._reading:
            raise _ReadInterruptedError
