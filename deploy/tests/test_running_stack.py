"""The operations files against the real services, started in-process (on a broker and database
of their own): every metric an alert rule or a dashboard uses is served on /metrics, so a renamed
or removed metric breaks the build instead of silently emptying an alert or a panel; and the
consumer groups docs/asyncapi.yaml names are the ones the services run."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).resolve().parents[1]
# Series Prometheus makes itself for every target; no target serves them
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",)}


def served_names(exposition: str) -> set[str]:
    """Every series name an exposition can hold: declared families (also before their first
    sample, e.g. a labelled counter nobody incremented yet) with their type's suffixes."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def rule_expressions() -> dict[str, str]:
    return {rule.get("alert") or rule["record"]: rule["expr"]
            for path in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]}


def dashboard_expressions() -> dict[str, str]:
    return {f"{path.name}: {panel['title']} {target['refId']}": target["expr"]
            for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
            for panel in json.loads(path.read_text())["panels"] for target in panel.get("targets", ())}


@pytest.fixture(scope="module")
async def stack(fresh_infra):
    """The four services, started."""
    from gateway.bootstrap import bootstrap as gateway_bootstrap
    from gateway.config import GatewaySettings
    from integrations.adapters.vault import new_key_entry
    from integrations.bootstrap import bootstrap as integrations_bootstrap
    from integrations.config import IntegrationsSettings
    from orders.bootstrap import bootstrap as orders_bootstrap
    from posint_common.contracts import topics
    from posint_common.kafka import ensure_topics
    from posint_common.testing import started
    from webhook_dispatcher.bootstrap import bootstrap as webhook_bootstrap
    from webhook_dispatcher.config import WebhooksSettings

    await ensure_topics(fresh_infra.bootstrap_servers, topics.ALL)
    runtimes = []
    try:
        for build in (
            integrations_bootstrap(fresh_infra.settings(IntegrationsSettings, integrations_encryption_keys=new_key_entry("m1"))),
            orders_bootstrap(fresh_infra.settings()),
            webhook_bootstrap(fresh_infra.settings(WebhooksSettings, webhooks_encryption_keys=new_key_entry("w1"))),
            gateway_bootstrap(fresh_infra.settings(GatewaySettings, gateway_port=0)),
        ):
            runtimes.append(await build)
        await asyncio.gather(*(runtime.start() for runtime in runtimes))
        yield runtimes
    finally:
        for runtime in reversed(runtimes):
            await runtime.stop()


@pytest.fixture(scope="module")
async def served(stack) -> set[str]:
    """The union of what each service serves on its own health port's /metrics."""
    names = set()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for runtime in stack:
            async with session.get(f"http://127.0.0.1:{runtime.ports['health']}/metrics") as response:
                assert response.status == 200, runtime.name
                names |= served_names(await response.text())
    return names


def test_served_names_include_families_without_samples():
    exposition = "# HELP posint_x_total x\n# TYPE posint_x_total counter\n# HELP posint_h h\n# TYPE posint_h histogram\n"
    assert {"posint_x_total", "posint_h_bucket", "posint_h_sum", "posint_h_count"} <= served_names(exposition)


@pytest.mark.parametrize("source", ["alert rules", "dashboards"])
async def test_every_metric_used_is_served(served, ops, source):
    expressions = rule_expressions() if source == "alert rules" else dashboard_expressions()
    assert expressions, f"no {source} found"
    missing = {}
    for where, expr in expressions.items():
        unknown = ops.metric_names(expr) - SYNTHETIC - served
        if unknown:
            missing[where] = sorted(unknown)
    assert not missing, f"{source} use metrics no service serves: {missing}"


async def test_asyncapi_names_the_consumer_groups_the_services_run(stack):
    from posint_common import asyncapi

    running = {(topic, consumer.name) for runtime in stack for consumer in runtime.consumers for topic in consumer.topics}
    documented = {(channel.topic, group) for channel in asyncapi.channels() for group in channel.consumers}
    assert documented == running, "update posint_common.asyncapi.CHANNELS (then make asyncapi)"
