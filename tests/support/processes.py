"""A service (`fluxforge <command>`, as deployed) as a child process of a test, so the test can `kill -9` it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TextIO

from fluxforge.stack.services import fluxforge_argv


class ServiceProcess:
    """`fluxforge <command> ...` as a child process in its own process group; restartable."""

    def __init__(self, name: str, command: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.command = command
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: TextIO | None = None

    def start(self, args: list[str] | None = None) -> ServiceProcess:
        assert not self.running, f"{self.name} is running"
        if args is not None:
            self.args = args
        self._close_log()
        self._log = self.log_path.open("a")
        self.starts += 1
        self._log.write(f"\n=== {self.name} start #{self.starts} at {time.strftime('%H:%M:%S')}\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            fluxforge_argv(self.command, *self.args),
            cwd=self.log_path.parent,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill9(self) -> None:
        """SIGKILL to the whole process group: no chance to flush or commit anything."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._close_log()

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, wait (SIGKILL after `timeout_s`); the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._close_log()
        return self.proc.returncode

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            if self.proc.poll() is not None:
                self._close_log()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
