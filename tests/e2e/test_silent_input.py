"""`fluxforge run --input -` on a pipe that stays open and silent (`tail -f ... |`): its rows
become files every `embedded.flush_interval_s`, not only when the next line comes."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

from fluxforge_common.pipeline import simulator_lines
from fluxforge_common.simulator import SimulatorConfig

FLUXFORGE = Path(sys.executable).with_name("fluxforge")
FLUSH_INTERVAL_S = 1.0
WAIT_S = 30.0


def test_a_silent_pipe_gets_its_rows_written_while_it_stays_open(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"embedded:\n  flush_interval_s: {FLUSH_INTERVAL_S}\n")
    root = tmp_path / "data"
    lines = list(itertools.islice(simulator_lines(SimulatorConfig(seed=5)), 3_000))
    with (tmp_path / "run.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(FLUXFORGE), "run", "--config", str(config), "--input", "-", "-o", str(root), "-q"],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"\n".join(lines) + b"\n")
        proc.stdin.flush()  # then nothing more, the pipe open
        deadline = time.monotonic() + WAIT_S
        while not (written := sorted(root.glob("hf/**/*.parquet"))) and time.monotonic() < deadline:
            time.sleep(0.2)
        running = proc.poll() is None
    finally:
        proc.stdin.close()
        code = proc.wait(timeout=120)
    log_text = (tmp_path / "run.log").read_text()
    assert running, f"the run ended while its input was open: {log_text[-2000:]}"
    assert written, f"no HF file within {WAIT_S:g} s of silence (flush interval {FLUSH_INTERVAL_S:g} s)"
    assert code == 0, log_text[-2000:]
