"""Render the Grafana overview dashboard's panels from a running Prometheus into a PNG (matplotlib).

Grafana itself is not needed: each panel of deploy/grafana/dashboards/overview.json is drawn from
the real result of its own queries (`query_range` over the last `--minutes`), in the dashboard's
layout. Used for the README's picture and by the monitoring test:

    python scripts/dashboard_picture.py --prometheus http://127.0.0.1:9090 --out docs/overview.png
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

OVERVIEW = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "overview.json"
GRID_COLUMNS = 24


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as answer:
        body = json.loads(answer.read())
    if body["status"] != "success":
        raise RuntimeError(f"{expr}: {body.get('error')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def legend(template: str, labels: dict[str, str]) -> str:
    for key, value in labels.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def render(prometheus: str, out: Path, minutes: float, rate_window: str) -> int:
    """Draw every panel; returns how many series were drawn."""
    board = json.loads(OVERVIEW.read_text())
    end = time.time()
    start = end - minutes * 60
    step = max(1.0, minutes * 60 / 300)
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
    figure = plt.figure(figsize=(16, rows * 0.42))
    grid = figure.add_gridspec(rows, GRID_COLUMNS, hspace=3.0, wspace=1.5)
    drawn = 0
    for panel in board["panels"]:
        pos = panel["gridPos"]
        axes = figure.add_subplot(grid[pos["y"] : pos["y"] + pos["h"], pos["x"] : pos["x"] + pos["w"]])
        axes.set_title(panel["title"], fontsize=10, loc="left")
        shown = 0
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", rate_window)
            for series in query_range(prometheus, expr, start, end, step):
                points = [(float(t) - end, float(v)) for t, v in series["values"]]
                label = legend(target["legendFormat"], series["metric"])
                if panel["type"] == "stat":
                    axes.text(0.02 + 0.32 * shown, 0.3, f"{label}\n{points[-1][1]:.3g}", fontsize=11)
                    axes.set_axis_off()
                else:
                    axes.plot([p[0] / 60 for p in points], [p[1] for p in points], label=label, linewidth=1.2)
                drawn += 1
                shown += 1
        if panel["type"] != "stat":
            axes.set_xlabel("minutes", fontsize=8)
            axes.tick_params(labelsize=7)
            axes.legend(fontsize=7, loc="upper left")
            axes.grid(alpha=0.3)
    figure.suptitle(f"{board['title']} (rendered from Prometheus query results, not by Grafana)", fontsize=12)
    figure.savefig(out, dpi=80, bbox_inches="tight")
    plt.close(figure)
    return drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--out", type=Path, default=Path("docs/overview.png"))
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--rate-window", default="1m")
    args = parser.parse_args()
    drawn = render(args.prometheus, args.out, args.minutes, args.rate_window)
    print(f"{args.out}: {drawn} series")


if __name__ == "__main__":
    main()
