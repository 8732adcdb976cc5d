"""The panels as a PNG (matplotlib, drawn off-screen): one column per symbol, or all overlaid."""

from __future__ import annotations

from pathlib import Path

from fluxforge.plots.series import CANDLE_S, PANELS, Series, in_bps

DPI = 100


def write_png(series: list[Series], path: Path, *, width: int, height: int, overlay: bool) -> None:
    """Draw `series` into a `width` x `height` pixel PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [[in_bps(s) for s in series]] if overlay else [[s] for s in series]
    fig, axes = plt.subplots(
        len(PANELS), len(columns), figsize=(width / DPI, height / DPI), dpi=DPI, sharex="col", squeeze=False
    )
    for col, group in enumerate(columns):
        for row, (title, keys) in enumerate(PANELS):
            ax = axes[row][col]
            twin = ax.twinx() if "ofi_cum" in keys else None  # the cumulative OFI's own scale, shared
            for s in group:
                prefix = f"{s.label} " if overlay else ""
                for key in keys:
                    if key == "candles":
                        _candles(ax, s, overlay)
                    elif key == "ofi_cum" and twin is not None:
                        twin.plot(
                            s.ts, s.values[key], linewidth=0.8, linestyle="--", label=f"{prefix}cumulative"
                        )
                        twin.tick_params(labelsize=7)
                    else:
                        ax.plot(s.ts, s.values[key], linewidth=0.7, label=f"{prefix}{s.names.get(key, key)}")
            ax.set_title(
                f"{title}{'' if overlay else ' - ' + group[0].label}"
                + (" (bps)" if overlay and row < 2 else ""),
                fontsize=8,
            )
            ax.tick_params(labelsize=7)
            ax.ticklabel_format(axis="y", useOffset=False)
            if keys != ("candles",) or overlay:
                ax.legend(fontsize=6, loc="upper left")
    fig.autofmt_xdate()
    fig.subplots_adjust(left=0.07, right=0.94, top=0.97, bottom=0.06, hspace=0.45, wspace=0.25)
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)


def _candles(ax: object, s: Series, overlay: bool) -> None:
    """OHLC candles of the 1-minute bars (the close line when overlaid)."""
    if overlay:
        ax.plot(s.candle_ts, s.candles["close"], linewidth=0.8, label=f"{s.label} close")  # type: ignore[attr-defined]
        return
    import datetime as dt

    width = dt.timedelta(seconds=CANDLE_S * 0.7)
    for t, o, h, low, c in zip(
        s.candle_ts, s.candles["open"], s.candles["high"], s.candles["low"], s.candles["close"], strict=True
    ):
        if o is None or h is None or low is None or c is None:
            continue
        color = "tab:green" if c >= o else "tab:red"
        ax.vlines(t + width / 2, low, h, color=color, linewidth=0.6)  # type: ignore[attr-defined]
        ax.bar(t, abs(c - o) or 1e-12, width=width, bottom=min(o, c), align="edge", color=color)  # type: ignore[attr-defined]
