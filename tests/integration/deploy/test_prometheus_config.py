"""The Prometheus files under deploy/prometheus, checked by Debian's promtool: every scrape config, the
alert rules, and their unit tests (each alert fires when it should and not before)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.tools import REPO_ROOT, prometheus_dir, run

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "fluxforge.yml"


@pytest.mark.parametrize("config", ["prometheus.yml", "local.yml", "kubernetes.yml"])
def test_promtool_accepts_each_scrape_config(config: str) -> None:
    output = run(prometheus_dir() / "promtool", "check", "config", PROMETHEUS / config)
    assert "is valid prometheus config file syntax" in output


def test_promtool_accepts_the_rules_and_each_alert_has_a_runbook_line() -> None:
    assert "SUCCESS" in run(prometheus_dir() / "promtool", "check", "rules", RULES)
    alerts = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert alerts and all(rule["annotations"]["runbook"].strip() for rule in alerts)
    wanted = {
        "FluxForgeFeedStale", "FluxForgeEngineLagGrowing", "FluxForgeSinkLagGrowing",
        "FluxForgeDeadLetterRateHigh", "FluxForgeSinkNotWriting", "FluxForgeSpoolGrowing",
        "FluxForgeS3SyncFailing", "FluxForgeDiskFilling",
    }  # fmt: skip
    assert wanted <= {rule["alert"] for rule in alerts}


def test_every_alert_is_unit_tested_and_the_tests_pass() -> None:
    tests = PROMETHEUS / "tests" / "fluxforge_test.yml"
    alerts = {
        rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    }
    cases = yaml.safe_load(tests.read_text())["tests"]
    firing = {case["alertname"] for test in cases for case in test["alert_rule_test"] if case["exp_alerts"]}
    silent = {
        case["alertname"] for test in cases for case in test["alert_rule_test"] if not case["exp_alerts"]
    }
    assert firing == alerts and silent == alerts
    assert "SUCCESS" in run(prometheus_dir() / "promtool", "test", "rules", tests, cwd=Path(tests.parent))
