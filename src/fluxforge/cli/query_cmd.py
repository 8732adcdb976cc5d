"""`fluxforge query`: read the dataset back, filtered, as a table, CSV or Parquet; or SQL via DuckDB."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer
from fluxforge_common.dataset.partitioning import PARQUET_TABLES
from fluxforge_common.dataset.reader import dataset_root, read_table

from fluxforge.cli.common import ConfigOption, parse_time_ms, settings_or_exit
from fluxforge.cli.render import arrow_text


def query(
    table: Annotated[str, typer.Argument(help=f"One of: {', '.join(PARQUET_TABLES)}.")] = "hf",
    config: ConfigOption = None,
    root: Annotated[
        str | None,
        typer.Option(help="Dataset root: a directory or s3://BUCKET/PREFIX (default: storage.root)."),
    ] = None,
    exchange: Annotated[str | None, typer.Option(help="e.g. binanceus")] = None,
    symbol: Annotated[str | None, typer.Option(help="Unified symbol, e.g. BTC/USDT")] = None,
    start: Annotated[str | None, typer.Option(help="From this time (ms, or ISO date/time, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Before this time (exclusive).")] = None,
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns (default: all).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows printed to the terminal.")] = 20,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write all matching rows to a .csv or .parquet file.")
    ] = None,
    sql: Annotated[
        str | None,
        typer.Option(help="DuckDB SQL over views hf, bars, trades, ticker (other filters ignored)."),
    ] = None,
) -> None:
    """Read the dataset back: filter by exchange, symbol and time, or run SQL over the tables."""
    settings = settings_or_exit(config)
    try:
        base = dataset_root(root or settings.storage.root, settings.storage.s3)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if sql is not None:
        if base.filesystem is not None:
            raise typer.BadParameter("--sql reads local roots only; query an s3:// root without --sql")
        result = _duckdb(Path(base.base), sql)
    else:
        if table not in PARQUET_TABLES:
            raise typer.BadParameter(f"unknown table {table!r}; choose one of {', '.join(PARQUET_TABLES)}")
        wanted = [c.strip() for c in columns.split(",")] if columns else None
        try:
            result = read_table(
                base,
                table,
                exchange=exchange,
                symbol=symbol,
                start_ms=parse_time_ms(start),
                end_ms=parse_time_ms(end),
                columns=wanted,
            )
        except (KeyError, ValueError, OSError) as exc:
            typer.echo(f"query failed: {exc}", err=True)
            raise typer.Exit(1) from None
        if "ts" in result.column_names:
            result = result.sort_by([("ts", "ascending")])
    if out is not None:
        if out.suffix == ".csv":
            pacsv.write_csv(result, out)
        elif out.suffix == ".parquet":
            pq.write_table(result, out, compression="zstd")
        else:
            raise typer.BadParameter("--out must end in .csv or .parquet")
        typer.echo(f"wrote {result.num_rows:,} rows to {out}")
        return
    typer.echo(arrow_text(result, limit=limit))


def _duckdb(root: Path, sql: str) -> pa.Table:
    import duckdb

    con = duckdb.connect()
    for table in PARQUET_TABLES:
        if any((root / table).rglob("*.parquet")):
            pattern = str(root / table / "**" / "*.parquet")
            con.execute(
                f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{pattern}', hive_partitioning = false)"
            )
    try:
        result = con.sql(sql).arrow()
        # duckdb 1.x returns a Table, 2.x a RecordBatchReader.
        return result.read_all() if isinstance(result, pa.RecordBatchReader) else result
    except duckdb.Error as exc:
        typer.echo(f"SQL failed: {exc}", err=True)
        raise typer.Exit(1) from None
