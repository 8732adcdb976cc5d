"""Tables and status lines of the CLI, drawn by Rich.

A table goes to stdout: fitted to a terminal's width, at its natural width
when piped or captured (every column unabridged, a line per row, so scripts
and tests can split it). A status line (progress) is redrawn in place, and
only on a terminal: `status_line` gives None elsewhere, where a long
command prints (or logs) the same line every `STATUS_INTERVAL_S` instead
(`Every`), so a job under cron, nohup or Kubernetes still shows progress.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    import pyarrow as pa

UNBOUNDED_WIDTH = 100_000  # off a terminal a table takes the width it needs
STATUS_INTERVAL_S = 10.0  # off a terminal, how often a long command writes its status line


def fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return str(value)


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr) as it is now: a terminal's width, else unbounded."""
    found = Console(stderr=stderr, highlight=False)
    return found if found.is_terminal else Console(stderr=stderr, highlight=False, width=UNBOUNDED_WIDTH)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """Headers over a rule, then the rows; a column of numbers is right-aligned."""
    cells = [[fmt(v) for v in row] for row in rows]
    drawn = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i, header in enumerate(headers):
        numeric = bool(cells) and all(_numeric(row[i]) or row[i] in ("-", "null") for row in cells)
        drawn.add_column(header, justify="right" if numeric else "left", overflow="fold")
    for row in cells:
        drawn.add_row(*(Text(cell) for cell in row))  # Text: a cell's brackets are not markup
    return drawn


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    console().print(table(headers, rows))


def print_arrow(result: pa.Table, limit: int = 20) -> None:
    """The first `limit` rows of an Arrow table, and how many more there are."""
    shown = result.slice(0, limit).to_pylist()
    print_table(result.column_names, [[row[c] for c in result.column_names] for row in shown])
    if result.num_rows > limit:
        console().print(f"... {result.num_rows - limit:,} more rows")


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).replace("-", "", 1).replace("e", "", 1).isdigit()


class StatusLine:
    """One line on a terminal's stderr, redrawn in place at each `show` (Rich Live); `close` keeps the last."""

    def __init__(self, on: Console) -> None:
        self._live = Live(console=on, auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
        self._started = False

    def show(self, text: str) -> None:
        if not self._started:
            self._live.start()
            self._started = True
        self._live.update(Text(text), refresh=True)

    def close(self) -> None:
        if self._started:
            self._live.stop()
            self._started = False


class Every:
    """Says when a status line is due off a terminal: once every `STATUS_INTERVAL_S`, the first after one."""

    __slots__ = ("_due",)

    def __init__(self) -> None:
        self._due = time.monotonic() + STATUS_INTERVAL_S

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._due:
            return False
        self._due = now + STATUS_INTERVAL_S
        return True


def status_line() -> StatusLine | None:
    """A status line when stderr is a terminal; None otherwise (callers then print or log a line
    every `STATUS_INTERVAL_S`: `Every`)."""
    on = Console(stderr=True)
    return StatusLine(on) if on.is_terminal else None
