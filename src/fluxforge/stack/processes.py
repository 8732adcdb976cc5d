"""Start, stop and inspect long-running service processes with pid files and log files.

Each service runs in its own session (so a signal reaches its whole process
group), writes to `<run dir>/<name>.log`, and is tracked by `<name>.pid`. A
pid file whose process is gone, or belongs to another command, counts as
stopped, so a crash or a reboot never leaves the stack looking "up".
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ServiceSpec:
    """How to start one service: its name (of its pid and log files), command line, more environment."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int | None = None  # where it serves /metrics, /healthz and /readyz (0: any free port)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    log: Path

    @property
    def running(self) -> bool:
        return self.pid is not None


class ProcessSupervisor:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    def status(self, name: str) -> ServiceStatus:
        pid_file = self._pid_file(name)
        pid: int | None = None
        if pid_file.exists():
            text = pid_file.read_text().split()
            if len(text) == 2 and text[0].isdigit() and _alive(int(text[0]), text[1]):
                pid = int(text[0])
        return ServiceStatus(name, pid, self.log_file(name))

    def start(self, service: ServiceSpec, env: dict[str, str] | None = None) -> ServiceStatus:
        """Start `service` unless it already runs; returns its status."""
        current = self.status(service.name)
        if current.running:
            return current
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file(service.name).open("ab") as log:
            process = subprocess.Popen(
                service.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **service.env, **(env or {})},
            )
        self._pid_file(service.name).write_text(f"{process.pid} {_start_marker(process.pid)}\n")
        return ServiceStatus(service.name, process.pid, self.log_file(service.name))

    def stop(self, name: str, timeout_s: float = 30.0) -> bool:
        """SIGTERM the service's process group, wait, then SIGKILL; True if it was running."""
        status = self.status(name)
        self._pid_file(name).unlink(missing_ok=True)
        if status.pid is None:
            return False
        _signal_group(status.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _exists(status.pid):
                return True
            time.sleep(0.2)
        _signal_group(status.pid, signal.SIGKILL)
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state != "Z"


def _start_marker(pid: int) -> str:
    """The process's start time in clock ticks since boot: tells a reused pid from ours."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def _alive(pid: int, marker: str) -> bool:
    return _exists(pid) and _start_marker(pid) == marker
