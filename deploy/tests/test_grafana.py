"""deploy/grafana checked offline: dashboards load, point at the provisioned datasource (fixed
uid) and every PromQL expression parses (promtool); the provisioning paths match what compose
mounts. (That every metric a panel uses is served: test_metrics_served.py.)"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

GRAFANA = Path(__file__).resolve().parents[1] / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
# Grafana's range variables, as Prometheus would see them after substitution
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def datasource_uid() -> str:
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    return source["uid"]


def panels():
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            yield path.name, panel


def test_dashboards_exist_with_unique_uids():
    uids = [json.loads(path.read_text())["uid"] for path in DASHBOARDS]
    assert uids and len(uids) == len(set(uids))


def test_every_panel_queries_the_provisioned_datasource():
    uid = datasource_uid()
    for name, panel in panels():
        assert panel["datasource"]["uid"] == uid, f"{name}: {panel['title']}"
        assert panel["targets"], f"{name}: {panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, f"{name}: {panel['title']}"


def test_every_expression_parses(promtool, tmp_path):
    rules = []
    for name, panel in panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr.replace("$labels", ""), f"{name}: {panel['title']}: unknown variable in {expr}"
            record = "dashboard:" + re.sub(r"[^a-zA-Z0-9_]", "_", f"{name}_{panel['id']}_{target['refId']}")
            rules.append({"record": record, "expr": expr})
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_loads_the_mounted_dashboards(compose):
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "posint.yml").read_text())["providers"]
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
