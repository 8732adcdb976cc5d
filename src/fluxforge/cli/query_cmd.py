"""`fluxforge query`: read the dataset back through the Python API, filtered; or SQL via DuckDB."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fluxforge.cli.common import ConfigOption, output_file, settings_or_exit

if TYPE_CHECKING:
    import pyarrow as pa

    from fluxforge.api.dataset import Dataset

# dataset.partitioning.PARQUET_TABLES and raw, spelled out so that the command starts without pyarrow
# (tests/unit/test_cli_app.py checks that they agree).
TABLE_NAMES = ("hf", "bars", "trades", "ticker", "ibars", "raw")


def query(
    table: Annotated[str, typer.Argument(help=f"One of: {', '.join(TABLE_NAMES)}.")] = "hf",
    config: ConfigOption = None,
    root: Annotated[
        str | None,
        typer.Option(help="Dataset root, a directory or s3://bucket/prefix (default: storage.root)."),
    ] = None,
    exchange: Annotated[str | None, typer.Option(help="e.g. binanceus (comma-separated for several)")] = None,
    symbol: Annotated[
        str | None, typer.Option(help="Unified symbol, e.g. BTC/USDT (comma-separated for several)")
    ] = None,
    start: Annotated[str | None, typer.Option(help="From this time (ms, or ISO date/time, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Before this time (exclusive).")] = None,
    duration: Annotated[
        str | None, typer.Option(help="bars only: one bar duration (60, 60s, 1m, 1h).")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="raw only: book, trade or ticker.")] = None,
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns (default: all).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows printed to the terminal.")] = 20,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write all matching rows to a .csv or .parquet file.", callback=output_file
        ),
    ] = None,
    sql: Annotated[
        str | None,
        typer.Option(help="DuckDB SQL over views hf, bars, trades, ticker, ibars (other filters ignored)."),
    ] = None,
) -> None:
    """Read the dataset back: filter by exchange, symbol and time, or run SQL over the tables."""
    from fluxforge.api.dataset import open_dataset
    from fluxforge.cli.render import print_arrow

    if out is not None and out.suffix not in (".csv", ".parquet"):
        raise typer.BadParameter("--out must end in .csv or .parquet")
    try:
        settings = settings_or_exit(config)
        dataset = open_dataset(root or settings.storage.root, s3=settings.storage.s3)
        if sql is not None:
            result = _duckdb(dataset, sql)
        else:
            result = _select(dataset, table, exchange, symbol, start, end, duration, channel, columns)
    except (KeyError, ValueError, OSError) as exc:  # FileNotFoundError, DatasetUnreachableError
        typer.echo(f"query failed: {exc}", err=True)
        raise typer.Exit(1) from None
    if out is not None:
        _write(result, out)
        typer.echo(f"wrote {result.num_rows:,} rows to {out}")
        return
    print_arrow(result, limit=limit)


def _select(
    dataset: Dataset,
    table: str,
    exchange: str | None,
    symbol: str | None,
    start: str | None,
    end: str | None,
    duration: str | None,
    channel: str | None,
    columns: str | None,
) -> pa.Table:
    if table not in TABLE_NAMES:
        raise typer.BadParameter(f"unknown table {table!r}; choose one of {', '.join(TABLE_NAMES)}")
    if channel is not None and table != "raw":
        raise typer.BadParameter("--channel filters the raw table only")
    exchanges, symbols, wanted = _listed(exchange), _listed(symbol), _listed(columns)
    if table == "raw":
        selection = dataset.raw(
            exchange=exchanges, symbol=symbols, channel=_listed(channel), start=start, end=end, columns=wanted
        )
    else:
        selection = dataset.table(
            table, exchange=exchanges, symbol=symbols, start=start, end=end, columns=wanted, duration=duration
        )
    result = selection.to_arrow()
    if result.num_rows == 0 and selection.files:
        typer.echo(
            f"no rows of {table!r} match the filters in the {len(selection.files)} file(s) chosen", err=True
        )
        if duration is not None:
            held = dataset.table(
                table, exchange=exchanges, symbol=symbols, start=start, end=end, columns=["duration_s"]
            )
            durations = sorted(set(held.to_arrow().column("duration_s").to_pylist()))
            if durations:  # else the other filters alone leave nothing
                typer.echo(
                    f"bars there have the durations {', '.join(f'{d} s' for d in durations)}", err=True
                )
    return result.sort_by([("ts", "ascending")]) if "ts" in result.column_names and table != "raw" else result


def _listed(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",")] if text else None


def _write(result: pa.Table, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if out.suffix == ".csv":
        nested = [f.name for f in result.schema if pa.types.is_nested(f.type)]
        if nested:
            typer.echo(
                f"query failed: CSV cannot hold the list column(s) {', '.join(nested)}; write a .parquet "
                "file, or leave them out with --columns",
                err=True,
            )
            raise typer.Exit(1)
        pacsv.write_csv(result, out)
    else:
        pq.write_table(result, out, compression="zstd")


def _duckdb(dataset: Dataset, sql: str) -> pa.Table:
    """`sql` over the tables it names, each scanned through the API (so it works on any root)."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    for table in TABLE_NAMES[:-1]:
        if re.search(rf"\b{table}\b", sql) and dataset.partitions(table):
            con.register(table, dataset.table(table).to_dataset())
    try:
        result = con.sql(sql).arrow()
        # duckdb 1.x returns a Table, 2.x a RecordBatchReader.
        return result.read_all() if isinstance(result, pa.RecordBatchReader) else result
    except duckdb.Error as exc:
        typer.echo(f"SQL failed: {exc}", err=True)
        raise typer.Exit(1) from None
