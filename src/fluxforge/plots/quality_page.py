"""The data-quality report as one self-contained HTML page: the table and its plots (plotly, inlined)."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

from fluxforge_common.dataset.quality import QualityReport


def write_quality_page(report: QualityReport, path: Path) -> None:
    """Coverage, silent stretches, latency percentiles and dead letters per symbol, above the table."""
    from plotly import graph_objects as go
    from plotly.subplots import make_subplots

    labels = [f"{s.exchange}:{s.symbol}" for s in report.symbols]
    fig = make_subplots(
        rows=4,
        cols=1,
        subplot_titles=(
            "HF grid coverage (share of rows with a fresh book)",
            "silent stretches (carried-forward rows)",
            "exchange-to-receive latency, ms",
            "dead letters by reason",
        ),
        vertical_spacing=0.08,
    )
    fig.add_trace(go.Bar(x=labels, y=[s.coverage for s in report.symbols], name="coverage"), row=1, col=1)
    for label, s in zip(labels, report.symbols, strict=True):
        for start, end in s.silent_stretches:
            fig.add_trace(
                go.Scatter(
                    x=[_time(start), _time(end)],
                    y=[label, label],
                    mode="lines",
                    line={"width": 10},
                    name=f"{label} silent",
                    showlegend=False,
                ),
                row=2,
                col=1,
            )
    for key in ("p50", "p90", "p99", "max"):
        fig.add_trace(
            go.Bar(x=labels, y=[s.latency_ms.get(key) for s in report.symbols], name=f"latency {key}"),
            row=3,
            col=1,
        )
    reasons = sorted({r for s in report.symbols for r in s.dead_letters})
    for reason in reasons:
        fig.add_trace(
            go.Bar(x=labels, y=[s.dead_letters[reason] for s in report.symbols], name=reason), row=4, col=1
        )
    fig.update_layout(height=1400, barmode="group", title=f"Data quality of {report.root}")
    page = [
        "<!doctype html><html><head><meta charset='utf-8'><title>FluxForge data quality</title></head><body>",
        f"<h1>Data quality of {html.escape(report.root)}</h1>",
        f"<p>{'clean' if report.clean else 'findings: rows marked CHECK'}</p>",
        _table(report),
        fig.to_html(include_plotlyjs=True, full_html=False),
        "</body></html>",
    ]
    path.write_text("\n".join(page), encoding="utf-8")


def _table(report: QualityReport) -> str:
    head = (
        "exchange",
        "symbol",
        "coverage",
        "silent stretches",
        "rows missing",
        "sequence gaps",
        "resyncs",
        "dead letters",
        "late",
        "crossed",
        "empty",
        "latency p50/p90/p99/max ms",
        "trade id gaps",
        "",
    )
    rows = []
    for s in report.symbols:
        cells = (
            s.exchange,
            s.symbol,
            f"{s.coverage:.2%}",
            str(len(s.silent_stretches)),
            str(s.missing_rows),
            str(s.sequence_gaps),
            str(s.resyncs),
            ", ".join(f"{r}: {n}" for r, n in sorted(s.dead_letters.items())) or "0",
            str(s.late_ticks),
            str(s.crossed_books),
            str(s.empty_books),
            "/".join(str(s.latency_ms.get(k, "-")) for k in ("p50", "p90", "p99", "max")),
            str(s.trade_id_gaps),
            "ok" if s.clean else "CHECK",
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    header = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
    return f"<table border='1' cellspacing='0' cellpadding='4'>{header}{''.join(rows)}</table>"


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
