"""`fluxforge report`: the data-quality report of a dataset, as a table, JSON or an HTML page."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fluxforge.cli.common import ConfigOption, output_file, settings_or_exit

if TYPE_CHECKING:
    from fluxforge_common.dataset.quality import QualityReport, SymbolQuality


def report(
    root: Annotated[str, typer.Argument(help="Dataset root: a directory or s3://bucket/prefix.")],
    date: Annotated[str | None, typer.Option(help="One UTC date, YYYY-MM-DD (default: every date).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", help="Also write an HTML page with the table and plots.", callback=output_file
        ),
    ] = None,
    min_silent_s: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Carried-forward grid rows for this long count as the feed silent "
            "(default: the collector's stall timeout, `MIN_SILENT_S` of fluxforge_common.dataset.quality).",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Per exchange and symbol: HF coverage, silent stretches and grid rows missing (nothing recorded),
    resyncs, dead letters by reason, late ticks, crossed or empty books, latency percentiles and trade
    id gaps; from the files alone (an s3:// root is reached as `storage.s3` of the config says)."""
    import orjson
    from fluxforge_common.dataset.location import dataset_root
    from fluxforge_common.dataset.partitioning import check_date
    from fluxforge_common.dataset.quality import MIN_SILENT_S, quality_report

    settings = settings_or_exit(config)
    try:
        if date is not None:
            check_date(date)
        result = quality_report(
            dataset_root(root, s3=settings.storage.s3),
            date=date,
            min_silent_s=MIN_SILENT_S if min_silent_s is None else min_silent_s,
        )
    except (ValueError, OSError) as exc:  # FileNotFoundError, DatasetUnreachableError
        typer.echo(f"report failed: {exc}", err=True)
        raise typer.Exit(1) from None
    if result.empty:
        where = f"{result.root} on {date}" if date is not None else result.root
        typer.echo(
            f"report failed: {where} holds no rows of any table; check the root and the date", err=True
        )
        raise typer.Exit(1)
    if json_out:
        typer.echo(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        _print_table(result)
    if html is not None:
        from fluxforge.plots.quality_page import write_quality_page

        write_quality_page(result, html)
        typer.echo(f"wrote {html}", err=json_out)


def _print_table(result: QualityReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Data quality of {result.root}" + (f", {_day(result.start_ms)}" if result.start_ms else "")
    )
    for name in (
        "exchange",
        "symbol",
        "HF coverage",
        "silent stretches",
        "rows missing",
        "gaps / resyncs",
        "dead letters",
        "late",
        "crossed / empty",
        "latency p50/p90/p99 ms",
        "trade id gaps",
        "",
    ):
        table.add_column(
            name, justify="left" if name in ("exchange", "symbol", "dead letters", "") else "right"
        )
    for s in result.symbols:
        table.add_row(*_cells(s), style=None if s.clean else "yellow")
    console = Console()
    if not console.is_terminal:
        console = Console(width=220)  # a pipe or a file gets every column unabridged
    console.print(table)
    if result.unattributed_dead_letters:
        reasons = ", ".join(f"{r}: {n}" for r, n in result.unattributed_dead_letters.most_common())
        console.print(f"dead letters naming no symbol: {reasons}")
    console.print("clean" if result.clean else "[yellow]findings above (marked CHECK)[/yellow]")


def _cells(s: SymbolQuality) -> list[str]:
    longest = max((b - a for a, b in s.silent_stretches), default=None)
    silent = f"{len(s.silent_stretches)} (longest {(longest or 0) / 1000:g} s)" if s.silent_stretches else "0"
    dead = ", ".join(f"{r}: {n}" for r, n in s.dead_letters.most_common(3)) or "0"
    latency = "/".join(str(s.latency_ms.get(k, "-")) for k in ("p50", "p90", "p99"))
    return [
        s.exchange,
        s.symbol,
        f"{s.coverage:.1%}",
        silent,
        f"{s.missing_rows} in {len(s.missing_stretches)}" if s.missing_stretches else "0",
        f"{s.sequence_gaps} / {s.resyncs}",
        dead,
        str(s.late_ticks),
        f"{s.crossed_books} / {s.empty_books}",
        latency,
        str(s.trade_id_gaps),
        "ok" if s.clean else "CHECK",
    ]


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat()
