"""Status line and closing report of the pipeline commands."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from fluxforge_common.pipeline import RunSummary

from fluxforge.cli.render import Every, print_arrow, print_table, status_line

PREVIEW_COLUMNS = ["ts", "exchange", "symbol", "mid", "spread", "imbalance_l1", "ofi_l1", "rv_60s", "tfi_60s"]


@contextlib.contextmanager
def run_progress(started: float, *, quiet: bool) -> Iterator[Callable[[RunSummary], None] | None]:
    """A pipeline run's status line: redrawn on a terminal and kept when the block ends; elsewhere (a
    pipe, a log, a container) printed to stderr every `STATUS_INTERVAL_S`; None when quiet."""
    if quiet:
        yield None
        return

    def text(summary: RunSummary) -> str:
        elapsed = max(time.monotonic() - started, 1e-9)
        rows = " ".join(f"{t} {n:,}" for t, n in summary.rows.items())
        return (
            f"  {summary.lines:,} ticks ({summary.lines / elapsed:,.0f}/s) | rows: {rows} | "
            f"dead-letter {summary.rejected:,} | symbols {len(summary.per_symbol)}"
        )

    line = status_line()
    if line is None:
        every = Every()

        def print_status(summary: RunSummary) -> None:
            if every.due():
                typer.echo(text(summary), err=True)

        yield print_status
        return
    try:
        yield lambda summary: line.show(text(summary))
    finally:
        line.close()


def print_summary(summary: RunSummary, root: Path, elapsed: float, *, preview: bool) -> None:
    files: Counter[str] = Counter()
    for written in summary.files:
        files[written.path.split("/", 1)[0]] += 1
    typer.echo(
        f"\nRead {summary.lines:,} raw ticks in {elapsed:.1f} s ({summary.lines / max(elapsed, 1e-9):,.0f}/s): "
        f"{summary.accepted:,} applied, {summary.rejected:,} to dead-letter"
        + (
            f" ({', '.join(f'{k}: {v}' for k, v in summary.reasons.most_common())})"
            if summary.reasons
            else ""
        )
    )
    typer.echo(f"Dataset written under {root.resolve()}:")
    kinds = [*summary.rows, "raw", "deadletter"]
    print_table(
        ["table", "files", "rows"],
        [[k, files[k], summary.rows.get(k, "-")] for k in kinds if files[k] or k in summary.rows],
    )
    if summary.per_symbol:
        typer.echo("\nTicks applied per symbol:")
        print_table(["exchange:symbol", "ticks"], sorted(summary.per_symbol.items()))
    if preview and summary.rows["hf"]:
        # Imported here: the dataset reader loads pyarrow.dataset and pandas (~0.4 s of start-up),
        # which only the preview needs.
        from fluxforge_common.dataset.reader import read_table

        hf = read_table(root, "hf", columns=PREVIEW_COLUMNS)
        typer.echo(f"\nPreview of hf/ ({hf.num_rows:,} rows in the dataset):")
        print_arrow(hf.sort_by("ts").slice(0, 8), limit=8)
        typer.echo(f"\nRead it back: fluxforge query hf --root {root} --symbol BTC/USDT --limit 20")
