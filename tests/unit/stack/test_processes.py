"""The stack's process supervisor with real child processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fluxforge.stack.processes import ProcessSupervisor, ServiceSpec

SLEEPER = ServiceSpec(
    "sleeper", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
)
STUBBORN = ServiceSpec(
    "stubborn",
    [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)",
    ],
)


def test_start_status_stop(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(tmp_path)
    assert not supervisor.status("sleeper").running
    started = supervisor.start(SLEEPER)
    assert started.running
    assert supervisor.start(SLEEPER).pid == started.pid, "a running service is not started twice"
    assert supervisor.stop("sleeper", timeout_s=10)
    assert not supervisor.status("sleeper").running
    assert not supervisor.stop("sleeper")


def test_stale_or_foreign_pid_file_counts_as_stopped(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(tmp_path)
    (tmp_path / "sleeper.pid").write_text("1 12345\n")  # pid 1 exists, but is not ours
    assert not supervisor.status("sleeper").running
    (tmp_path / "sleeper.pid").write_text("999999999 0\n")
    assert not supervisor.status("sleeper").running


def test_sigterm_ignored_leads_to_sigkill(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(tmp_path)
    status = supervisor.start(STUBBORN)
    deadline = time.monotonic() + 10
    while b"up" not in status.log.read_bytes():  # its SIGTERM handler is installed
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    assert supervisor.stop("stubborn", timeout_s=1.0)
    assert time.monotonic() - started >= 1.0, "it survived SIGTERM, so only SIGKILL can have ended it"
    assert not supervisor.status("stubborn").running
