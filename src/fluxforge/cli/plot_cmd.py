"""`fluxforge plot`: aligned feature panels of one or several symbols, as a PNG or an interactive HTML page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from fluxforge.cli.common import ConfigOption, output_file, settings_or_exit

# A PNG side in pixels: below the minimum the panels' labels overlap; the maximum is ~400 MB of pixels.
_MIN_PX, _MAX_PX = 200, 10_000


def plot(
    root: Annotated[
        str | None,
        typer.Argument(help="Dataset root, a directory or s3://bucket/prefix (default: storage.root)."),
    ] = None,
    symbol: Annotated[
        str, typer.Option(help="Unified symbol(s), comma-separated: BTC/USDT or BTC/USDT,ETH/USDT.")
    ] = "BTC/USDT",
    exchange: Annotated[
        str | None, typer.Option(help="Only this exchange (default: every one with the symbol).")
    ] = None,
    start: Annotated[str | None, typer.Option(help="From this time (ms, or ISO date/time, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Before this time (exclusive).")] = None,
    out: Annotated[
        Path,
        typer.Option("-o", "--out", help="Output file: .png or .html (interactive).", callback=output_file),
    ] = Path("fluxforge.png"),
    overlay: Annotated[
        bool,
        typer.Option(
            help="Overlay the symbols in one column (prices in bps from the first mid) instead of tiling."
        ),
    ] = False,
    size: Annotated[
        str, typer.Option(help="PNG size in pixels, WIDTHxHEIGHT, each side 200 to 10000.")
    ] = "1600x1400",
    config: ConfigOption = None,
) -> None:
    """Mid and microprice, 1-minute candles, spread, L1 imbalance, OFI (interval and cumulative), realized
    volatility and trade volume of each symbol, aligned in time."""
    from fluxforge.api.dataset import open_dataset
    from fluxforge.plots.series import load_series

    if out.suffix not in (".png", ".html"):
        raise typer.BadParameter("--out must end in .png or .html")
    match = re.fullmatch(r"(\d+)x(\d+)", size)
    if not match or not all(_MIN_PX <= int(side) <= _MAX_PX for side in match.groups()):
        raise typer.BadParameter(f"--size must be WIDTHxHEIGHT in pixels, each from {_MIN_PX} to {_MAX_PX}")
    if out.suffix == ".html" and size != "1600x1400":
        raise typer.BadParameter("--size applies to a .png only; the HTML page fills the browser window")
    symbols = [s.strip() for s in symbol.split(",") if s.strip()]
    try:
        settings = settings_or_exit(config)
        dataset = open_dataset(root or settings.storage.root, s3=settings.storage.s3)
        series = load_series(dataset, symbols, exchange=exchange, start=start, end=end)
    except (ValueError, OSError) as exc:  # FileNotFoundError, DatasetUnreachableError
        typer.echo(f"plot failed: {exc}", err=True)
        raise typer.Exit(1) from None
    if out.suffix == ".png":
        from fluxforge.plots.static import write_png

        write_png(series, out, width=int(match[1]), height=int(match[2]), overlay=overlay)
    else:
        from fluxforge.plots.interactive import write_html

        write_html(series, out, overlay=overlay)
    typer.echo(f"wrote {out} ({', '.join(s.label for s in series)})")
