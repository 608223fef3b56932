"""deploy/prometheus checked offline: promtool accepts the config and the rules, the unit tests pass
and make every alert fire, every alert carries its runbook. (That every metric a rule uses is
served by the real services: test_metrics_served.py.)"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS = Path(__file__).resolve().parents[1] / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.test.yml"))


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule}


def test_promtool_accepts_the_scrape_config(promtool):
    result = run(promtool, "check", "config", "--syntax-only", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules(promtool):
    result = run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass(promtool):
    result = run(promtool, "test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_where_it_fires():
    fired = {case["alertname"] for path in TEST_FILES for test in yaml.safe_load(path.read_text())["tests"]
             for case in test.get("alert_rule_test", ()) if case.get("exp_alerts")}
    assert set(alerts()) - fired == set(), "alerts without a unit test that makes them fire"


def test_every_alert_has_a_severity_summary_and_runbook():
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert len(rule["annotations"]["runbook"]) > 80, f"{name}: say what it means and what to do"


def test_metric_names_are_read_from_expressions(ops):
    assert ops.metric_names('sum by (job, route) (rate(posint_http_requests_total{status=~"5.."}[5m])) / '
                        'sum by (job) (rate(posint_http_requests_total[5m])) > 0.05') == {"posint_http_requests_total"}
    assert ops.metric_names('changes(process_start_time_seconds{job=~"a|b"}[30m]) > 2 and on (job) up == 0') == {
        "process_start_time_seconds", "up"}
