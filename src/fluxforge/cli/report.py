"""Progress line and closing report of the pipeline commands."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import typer
from fluxforge_common.dataset.reader import read_table
from fluxforge_common.pipeline import RunSummary

from fluxforge.cli.render import arrow_text, table_text

PREVIEW_COLUMNS = ["ts", "exchange", "symbol", "mid", "spread", "imbalance_l1", "ofi_l1", "rv_60s", "tfi_60s"]


def print_progress(started: float) -> Callable[[RunSummary], None]:
    """A callback that redraws one status line on stderr."""

    def show(summary: RunSummary) -> None:
        elapsed = max(time.monotonic() - started, 1e-9)
        rows = " ".join(f"{t} {n:,}" for t, n in summary.rows.items())
        sys.stderr.write(
            f"\r  {summary.lines:,} ticks ({summary.lines / elapsed:,.0f}/s) | rows: {rows} | "
            f"dead-letter {summary.rejected:,} | symbols {len(summary.per_symbol)}   "
        )
        sys.stderr.flush()

    return show


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
    typer.echo(
        table_text(
            ["table", "files", "rows"],
            [[k, files[k], summary.rows.get(k, "-")] for k in kinds if files[k] or k in summary.rows],
        )
    )
    if summary.per_symbol:
        typer.echo("\nTicks applied per symbol:")
        typer.echo(table_text(["exchange:symbol", "ticks"], sorted(summary.per_symbol.items())))
    if preview and summary.rows["hf"]:
        hf = read_table(root, "hf", columns=PREVIEW_COLUMNS)
        typer.echo(f"\nPreview of hf/ ({hf.num_rows:,} rows in the dataset):")
        typer.echo(arrow_text(hf.sort_by("ts").slice(0, 8), limit=8))
        typer.echo(f"\nRead it back: fluxforge query hf --root {root} --symbol BTC/USDT --limit 20")
