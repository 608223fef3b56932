"""TRANSPORT_KEYS (sealed messages on the broker, posint_common.envelope) reaches exactly the services
that seal or open them, from .env in docker-compose and from one Secret on Kubernetes."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from posint_common.testing import required_tool

SEALING = {"gateway", "integrations", "webhook-dispatcher"}
K8S = Path(__file__).resolve().parents[1] / "k8s"


def deployments(overlay: str) -> list[dict]:
    kubectl = required_tool("kubectl", "it renders the kustomize overlays; install the machine's kubectl package")
    result = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc and doc["kind"] == "Deployment"]


def test_compose_gives_the_same_ring_to_every_service_that_seals(compose, compose_env):
    given = {name for name, spec in compose["services"].items()
             if (spec.get("environment") or {}).get("TRANSPORT_KEYS") == compose_env["TRANSPORT_KEYS"]}
    assert given == SEALING


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_kubernetes_takes_the_ring_from_one_secret(overlay):
    refs = {}
    for deployment in deployments(overlay):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        for item in container.get("env", ()):
            if item["name"] == "TRANSPORT_KEYS":
                ref = item["valueFrom"]["secretKeyRef"]
                refs[deployment["metadata"]["name"]] = (ref["name"], ref["key"], ref.get("optional", False))
    assert set(refs) == SEALING and set(refs.values()) == {("posint-transport-keys", "keys", False)}
