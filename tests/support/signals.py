"""Real signals to real child processes: seeded moments, and two stop signals that land together."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def seeded_rng(what: str) -> random.Random:
    """A generator for `what` (signal moments, schedules), seeded from FLUXFORGE_E2E_SEED or at random, printed."""
    seed = int(os.environ.get("FLUXFORGE_E2E_SEED", random.randrange(1 << 30)))
    print(f"\n{what} seed {seed} (FLUXFORGE_E2E_SEED={seed} repeats it)")
    return random.Random(seed)


def wait_until(
    condition: Callable[[], bool],
    what: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout_s: float = 60.0,
) -> None:
    """Until `condition` holds; fails, showing the child's log, if the child exits first or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, f"exited {proc.returncode} before {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} after {timeout_s} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.02)


def wait_for_text(log: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Until `text` is in the child's log."""
    wait_until(lambda: text in log.read_text(errors="replace"), repr(text), proc, log, timeout_s)


def two_stop_signals_at_once(pid: int) -> None:
    """SIGINT and SIGTERM delivered together: the second is handled before the first stop can finish.

    The child is stopped while both are sent and continued after, so they are
    pending at the same time (two SIGTERMs would merge into one).
    """
    os.kill(pid, signal.SIGSTOP)
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGCONT)
