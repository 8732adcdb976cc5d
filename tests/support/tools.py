"""Command-line tools the deploy tests run, installed by the repository's own scripts into .cache/."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _install(script: str, timeout_s: float) -> str:
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / script), "install"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(
            f"scripts/{script} install failed (exit {proc.returncode}):\n{proc.stderr}", pytrace=False
        )
    return proc.stdout.strip().splitlines()[-1]


@functools.cache
def prometheus_dir() -> Path:
    """The directory of `prometheus` and `promtool` (Debian's package, scripts/prometheus.sh)."""
    return Path(_install("prometheus.sh", 600))


@functools.cache
def kustomize() -> Path:
    """The kustomize binary (built from its Go module by scripts/kustomize.sh)."""
    return Path(_install("kustomize.sh", 900))


def run(*command: str | Path, cwd: Path = REPO_ROOT) -> str:
    """Run a tool; fails the test with its output when it exits non-zero. Returns stdout."""
    proc = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, command))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.stdout
