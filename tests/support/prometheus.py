"""A real Prometheus (Debian's package, scripts/prometheus.sh) as a child process, and the PromQL of
the deploy files: every dashboard panel's and every alert rule's expression, ready to query.

`promql_of_dashboards` turns Grafana's variables into what Prometheus takes: `$__rate_interval`
becomes a window that holds several scrapes, a template variable its "All" value.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.http import free_port
from tests.support.tools import REPO_ROOT, prometheus_dir

DEPLOY = REPO_ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "fluxforge.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
METRIC_NAME = re.compile(r"\b(fluxforge_[a-z0-9_]+|up)\b(?!\s*\()")


def promql_of_dashboards(rate_window: str) -> dict[str, str]:
    """ "<dashboard> / <panel> / <refId>" -> expression, variables substituted."""
    found: dict[str, str] = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        variables = {v["name"]: v.get("allValue", ".*") for v in board["templating"]["list"]}
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", rate_window)
                for name, value in variables.items():
                    expr = expr.replace(f"${name}", value)
                found[f"{board['title']} / {panel['title']} / {target['refId']}"] = expr
    return found


def alert_rules() -> dict[str, str]:
    """alert name -> expression."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def metric_names(expr: str) -> set[str]:
    """The series names an expression selects (not the functions it calls)."""
    return set(METRIC_NAME.findall(expr))


@dataclass
class Prometheus:
    """One Prometheus server on 127.0.0.1:`port` with the given config file."""

    config: Path
    data_dir: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = prometheus_dir() / "prometheus"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(binary), f"--config.file={self.config}", f"--storage.tsdb.path={self.data_dir}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"prometheus exited:\n{self.log.read_text()}"
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"prometheus did not become ready in 60 s:\n{self.log.read_text()}", pytrace=False)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns `data`, raises AssertionError with Prometheus's error."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        assert body["status"] == "success", f"{params}: {body.get('errorType')}: {body.get('error')}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else [data["result"]]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets", state="active")["activeTargets"]
        return active


def prometheus_config(path: Path, targets: dict[str, list[str]], interval: str = "1s") -> Path:
    """deploy/prometheus/local.yml with the jobs pointed at `targets` (job -> host:port) and a short interval."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "local.yml").read_text())
    config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
    config["rule_files"] = [str(RULES)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(targets) <= set(jobs), f"local.yml has no job for {set(targets) - set(jobs)}"
    config["scrape_configs"] = [
        {**jobs[name], "static_configs": [{"targets": addresses}]} for name, addresses in targets.items()
    ]
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[Prometheus]:
    """A Prometheus not yet started: write its config (`prometheus_config`), then `start()`."""
    server = Prometheus(
        tmp_path / "prometheus.yml", tmp_path / "tsdb", free_port(), tmp_path / "prometheus.log"
    )
    try:
        yield server
    finally:
        server.stop()
