"""Progress of the pipeline commands off a terminal: a status line every `STATUS_INTERVAL_S`, on stderr."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from fluxforge_common.pipeline import RunSummary

from fluxforge.cli import render, report


def summary(lines: int) -> RunSummary:
    return RunSummary(lines=lines, rows=Counter(hf=lines // 10))


def test_off_a_terminal_a_status_line_is_printed_once_per_interval(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = [1_000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    with report.run_progress(time.monotonic(), quiet=False) as show:
        assert show is not None
        now[0] += render.STATUS_INTERVAL_S - 0.1
        show(summary(100))  # before the first interval: nothing yet
        now[0] += 0.1
        show(summary(2_000))
        now[0] += render.STATUS_INTERVAL_S - 0.1
        show(summary(2_500))  # the same interval: held back
        now[0] += 0.1
        show(summary(3_000))
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert [line.split(" ticks")[0].strip() for line in lines] == ["2,000", "3,000"], lines
    assert "rows: hf 300 | dead-letter 0 | symbols 0" in lines[-1]


def test_quiet_shows_nothing() -> None:
    with report.run_progress(time.monotonic(), quiet=True) as show:
        assert show is None
