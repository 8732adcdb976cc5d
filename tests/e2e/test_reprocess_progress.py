"""What a user sees of `fluxforge reprocess --workers 2`: on a terminal, a status line merged from the
shard processes that only grows and ends at the closing report, the report of one worker.

Off a terminal (a pipe, a log) the same line is printed every 10 s instead (tests/unit/cli); this
short run ends before that, with the start line and the closing report. That reports arrive while
the shards run, whatever the speed, is proven by tests/integration/pipeline/test_shard_progress.py.
"""

from __future__ import annotations

import itertools
import os
import re
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fluxforge.stack.services import fluxforge_argv
from tests.support.dataset import simulated_dataset

DATE = "2025-12-12"
EXIT_TIMEOUT_S = 120.0
STATUS = re.compile(r"([\d,]+) ticks \([\d,]+/s\) \| rows: (.*?) \| dead-letter ([\d,]+) \| symbols (\d+)")
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 240 s simulator run (~27,000 ticks of one date) with its raw archive."""
    return simulated_dataset(tmp_path_factory.mktemp("recorded"), duration_s=240, seed=3)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def status_lines(terminal: str) -> list[dict[str, Any]]:
    """The figures of each drawing of the status line, in order (a redraw of the same once)."""
    drawn: list[dict[str, Any]] = []
    for piece in re.split(r"[\r\n]", ESCAPE.sub("", terminal)):
        if match := STATUS.search(piece):
            ticks, rows, dead_letter, symbols = match.groups()
            pairs = rows.split()
            figures = {
                "ticks": number(ticks),
                "rows": {pairs[i]: number(pairs[i + 1]) for i in range(0, len(pairs), 2)},
                "dead_letter": number(dead_letter),
                "symbols": int(symbols),
            }
            if not drawn or drawn[-1] != figures:
                drawn.append(figures)
    return drawn


def closing_report(output: str) -> dict[str, Any]:
    """The closing report's figures: ticks read, applied, dead-lettered, rows per table, ticks per symbol
    (the files per table depend on when the writers flushed)."""
    read = re.search(r"Read ([\d,]+) raw ticks in .*?: ([\d,]+) applied, ([\d,]+) to dead-letter", output)
    assert read is not None, output
    tables, symbols = output.split("Ticks applied per symbol:")
    return {
        "ticks": number(read[1]),
        "applied": number(read[2]),
        "dead_letter": number(read[3]),
        "rows": {t: int(n) for t, n in re.findall(r"^(\w+)\s+\d+\s+(\d+)$", tables, re.M)},
        "per_symbol": {s: int(n) for s, n in re.findall(r"^(\S+:\S+)\s+(\d+)$", symbols, re.M)},
    }


def on_a_terminal(args: list[str], stdout: Path) -> str:
    """`fluxforge ARGS` with stderr on a pseudo-terminal (stdout into `stdout`); what the terminal got.
    Wide enough for the status line to stay one line; TERM set, as a dumb terminal gets no redraws."""
    master, slave = os.openpty()
    with stdout.open("wb") as out:
        proc = subprocess.Popen(
            fluxforge_argv(*args),
            stdout=out,
            stderr=slave,
            env={**os.environ, "COLUMNS": "300", "TERM": "xterm"},
        )
    os.close(slave)
    received = bytearray()
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                received += chunk
        assert proc.wait(timeout=max(deadline - time.monotonic(), 1.0)) == 0, stdout.read_text()
    finally:
        proc.kill()
        os.close(master)
    return received.decode()


def test_two_workers_on_a_terminal_show_progress_ending_at_the_report_of_one(
    archive: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    reprocess = ["reprocess", "--date", DATE, "--source-root", str(archive)]
    off_terminal = cli(*reprocess, "-o", tmp_path / "one", "--workers", "1")
    assert f"Reprocessing {DATE}" in off_terminal
    one = closing_report(off_terminal)
    assert one["ticks"] > 0 and one["rows"]["hf"] > 0 and len(one["per_symbol"]) == 5

    report = tmp_path / "two.out"
    terminal = on_a_terminal([*reprocess, "-o", str(tmp_path / "two"), "--workers", "2"], report)
    assert f"Reprocessing {DATE}" in terminal
    two = closing_report(report.read_text())
    assert two == one
    drawn = status_lines(terminal)
    assert drawn, terminal
    for before, after in itertools.pairwise(drawn):
        assert before["ticks"] <= after["ticks"] and before["dead_letter"] <= after["dead_letter"]
        assert before["symbols"] <= after["symbols"]
        assert all(before["rows"][t] <= after["rows"][t] for t in before["rows"]), (before, after)
    assert drawn[-1] == {
        "ticks": two["ticks"],
        "rows": two["rows"],
        "dead_letter": two["dead_letter"],
        "symbols": len(two["per_symbol"]),
    }
    print(f"{two['ticks']:,} ticks: {len(drawn) - 1} status line(s) before the final one")
