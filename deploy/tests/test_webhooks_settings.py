"""Operators find every webhook-dispatcher setting (WEBHOOKS_*, the key ring aside: a secret) where
they expect it, at its default: the webhook-dispatcher service of docker-compose.yml and, through
its ConfigMap, the webhook-dispatcher Deployment of every overlay."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from posint_common.testing import required_tool
from webhook_dispatcher.config import WebhooksSettings

K8S = Path(__file__).resolve().parents[1] / "k8s"
SECRET = "webhooks_encryption_keys"


def expected() -> dict[str, str]:
    defaults = {}
    for name, field in WebhooksSettings.model_fields.items():
        if name.startswith("webhooks_") and name != SECRET:
            value = field.default
            defaults[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return defaults


def same(found: dict[str, str]) -> dict[str, tuple]:
    """Each WEBHOOKS_* setting whose value is missing or not its default (numbers compared as numbers)."""
    wrong = {}
    for name, default in expected().items():
        value = found.get(name)
        try:
            equal = value is not None and (value == default or float(value) == float(default))
        except ValueError:
            equal = False
        if not equal:
            wrong[name] = (value, default)
    return wrong


def test_compose_sets_every_webhooks_setting_at_its_default(compose):
    environment = {key: str(value) for key, value in compose["services"]["webhook-dispatcher"]["environment"].items()}
    assert same(environment) == {}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_k8s_deployment_reads_every_webhooks_setting_at_its_default(overlay):
    kubectl = required_tool("kubectl", "it renders the kustomize overlays; install the machine's kubectl package")
    result = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    config_maps = {doc["metadata"]["name"]: doc["data"] for doc in docs if doc["kind"] == "ConfigMap"}
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "webhook-dispatcher"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    environment = {}
    for source in container.get("envFrom", ()):
        environment.update(config_maps[source["configMapRef"]["name"]])
    environment.update({item["name"]: item["value"] for item in container.get("env", ()) if "value" in item})
    assert same(environment) == {}
