"""Where a request's time goes, from the services' own Prometheus histograms (mean per stage).

The record-lag histograms measure producer timestamp -> consumer has the record, i.e. one broker
hop; the handler histogram covers the integrations service's work including its reply produce.
"""
from __future__ import annotations

import urllib.request
from pathlib import Path

STAGES = (
    ("gateway HTTP request, end to end", "GATEWAY_HEALTH_URL", "posint_http_request_seconds"),
    ("hop 1: command -> integrations consumer", "INTEGRATIONS_HEALTH_URL", "posint_record_lag_seconds"),
    ("integrations handler (incl. reply produce ack)", "INTEGRATIONS_HEALTH_URL", "posint_handler_seconds"),
    ("hop 2: reply -> gateway reply consumer", "GATEWAY_HEALTH_URL", "posint_record_lag_seconds"),
)


def health_urls(run_dir: Path | None) -> dict[str, str]:
    if run_dir is None or not (run_dir / "stack.env").exists():
        return {}
    return dict(line.split("=", 1) for line in (run_dir / "stack.env").read_text().splitlines() if "=" in line)


def _sum_count(url: str, metric: str) -> tuple[float, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:  # loopback health port
        lines = response.read().decode().splitlines()
    total = sum(float(line.split()[-1]) for line in lines if line.startswith(metric + "_sum"))
    count = sum(float(line.split()[-1]) for line in lines if line.startswith(metric + "_count"))
    return total, count


def snapshot(urls: dict[str, str]) -> dict[str, tuple[float, float]]:
    return {name: _sum_count(urls[env], metric) for name, env, metric in STAGES if env in urls}


def means_ms(before: dict, after: dict) -> dict[str, float]:
    """Mean milliseconds per stage between two snapshots."""
    means = {}
    for name in after:
        total = after[name][0] - before.get(name, (0, 0))[0]
        count = after[name][1] - before.get(name, (0, 0))[1]
        means[name] = total / count * 1000 if count else float("nan")
    return means
