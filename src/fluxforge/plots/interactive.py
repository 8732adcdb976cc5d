"""The panels as one self-contained interactive HTML page (plotly, its script inlined: works offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fluxforge.plots.series import PANELS, Series, in_bps


def figure(series: list[Series], *, overlay: bool) -> Any:
    """A plotly figure: the panels in rows, one column per symbol (or one column overlaid)."""
    from plotly import graph_objects as go
    from plotly.subplots import make_subplots

    columns = [[in_bps(s) for s in series]] if overlay else [[s] for s in series]
    titles = [
        f"{title}{'' if overlay else ' - ' + group[0].label}" for title, _keys in PANELS for group in columns
    ]
    fig = make_subplots(
        rows=len(PANELS),
        cols=len(columns),
        shared_xaxes=True,
        subplot_titles=titles,
        vertical_spacing=0.03,
        specs=[[{"secondary_y": "ofi_cum" in keys}] * len(columns) for _title, keys in PANELS],
    )
    for col, group in enumerate(columns, 1):
        for row, (_title, keys) in enumerate(PANELS, 1):
            for s in group:
                for key in keys:
                    name = f"{s.label} {s.names.get(key, key)}"
                    if key == "candles" and not overlay:
                        trace = go.Candlestick(
                            x=s.candle_ts, name=f"{s.label} 1m", showlegend=False, **s.candles
                        )
                    elif key == "candles":
                        trace = go.Scatter(x=s.candle_ts, y=s.candles["close"], name=f"{s.label} 1m close")
                    else:
                        trace = go.Scatter(x=s.ts, y=s.values[key], name=name, mode="lines")
                    fig.add_trace(trace, row=row, col=col, secondary_y=True if key == "ofi_cum" else None)
    fig.update_layout(height=260 * len(PANELS), showlegend=True)
    fig.update_xaxes(rangeslider_visible=False)
    return fig


def write_html(series: list[Series], path: Path, *, overlay: bool) -> None:
    figure(series, overlay=overlay).write_html(path, include_plotlyjs=True, full_html=True)
