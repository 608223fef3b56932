"""deploy/k8s checked offline: each overlay renders (`kubectl kustomize`), every core resource
passes `kubernetes-validate --strict`, each Deployment's environment is valid for its service's own
settings model, the probes, security and resources are set, every topic the code uses is a
KafkaTopic (replication 3 and min.insync.replicas 2 in prod), KEDA scales on the consumer groups
the services really use (never past the partitions), and the PrometheusRule is the alert rules."""
from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from posint_common import asyncapi
from posint_common.contracts import topics
from posint_common.testing import required_tool

K8S = Path(__file__).resolve().parents[1] / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.32.0"
CUSTOM_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "Cluster", "ScaledObject", "ServiceMonitor", "PrometheusRule"}
# Secrets made outside the repository (CloudNativePG, the operator): stand-ins for the settings check
SECRETS = {("posint-db-app", "uri"): "postgresql://posint:stand-in@posint-db-rw:5432/posint"}


@pytest.fixture(scope="module")
def kubectl() -> str:
    return required_tool("kubectl", "it renders the kustomize overlays; install the machine's kubectl package")


@pytest.fixture(scope="module")
def rendered(kubectl) -> dict[str, list[dict]]:
    out = {}
    for overlay in OVERLAYS:
        result = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, f"{overlay}: {result.stderr}"
        out[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_core_resource_is_valid_kubernetes(rendered, overlay):
    errors = []
    for doc in rendered[overlay]:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as error:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {error}")
    assert not errors, "\n".join(errors)
    assert not of_kind(rendered[overlay], "Secret"), "secret values are never committed"


@pytest.mark.parametrize("overlay", OVERLAYS)
async def test_each_deployment_environment_is_valid_for_its_settings_model(rendered, ops, overlay, monkeypatch):
    from integrations.adapters.vault import new_key_entry

    secrets = {**SECRETS, ("posint-integrations-keys", "keys"): new_key_entry("kid1"),
               ("posint-webhooks-keys", "keys"): new_key_entry("wkid1"),
               ("posint-transport-keys", "keys"): new_key_entry("tkid1")}
    config_maps = {doc["metadata"]["name"]: doc["data"] for doc in of_kind(rendered[overlay], "ConfigMap")}
    models = ops.settings_models()
    deployments = of_kind(rendered[overlay], "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {"gateway", "integrations", "orders", "webhook-dispatcher"}
    for deployment in deployments:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        model = models[ops.module_of(container["command"])]
        env = {}
        for source in container.get("envFrom", ()):
            env.update(config_maps[source["configMapRef"]["name"]])
        for item in container.get("env", ()):
            if "value" in item:
                env[item["name"]] = item["value"]
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = secrets[(ref["name"], ref["key"])]  # only secrets made outside the repo
        name = deployment["metadata"]["name"]
        unknown = {key for key in env if key.lower() not in model.model_fields}
        assert not unknown, f"{name}: variables its settings ({model.__name__}) do not read: {unknown}"
        for field in model.model_fields:
            monkeypatch.delenv(field.upper(), raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        settings = model()
        assert settings.health_host == "0.0.0.0" and not settings.kafka_roll_topics, name
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports["health"] == settings.health_port, name
        if name == "gateway":
            assert ports["http"] == settings.gateway_port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_probe_limit_and_drop_privileges(rendered, overlay):
    budgets = {doc["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
               for doc in of_kind(rendered[overlay], "PodDisruptionBudget")}
    for deployment in of_kind(rendered[overlay], "Deployment"):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}, name
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}, name
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0, name
        assert container["securityContext"]["readOnlyRootFilesystem"], name
        assert not container["securityContext"]["allowPrivilegeEscalation"], name
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, f"{name} {kind}"
        assert name in budgets, f"{name} has no PodDisruptionBudget"
    (hpa,) = of_kind(rendered[overlay], "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "gateway"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_topic_is_a_kafka_topic(rendered, overlay):
    kafka_topics = {doc["spec"]["topicName"]: doc["spec"] for doc in of_kind(rendered[overlay], "KafkaTopic")}
    assert set(kafka_topics) == set(topics.ALL)
    for topic, spec in kafka_topics.items():
        if topic in topics.CONSUMED:  # read through an inbox, which forgets after INBOX_RETENTION_HOURS (168)
            assert int(spec["config"]["retention.ms"]) < 168 * 3_600_000, f"{topic}: the inbox must outlive the records"
        if overlay == "prod":
            assert spec["replicas"] == 3 and spec["config"]["min.insync.replicas"] == 2, topic
    (pool,) = of_kind(rendered[overlay], "KafkaNodePool")
    assert pool["spec"]["replicas"] >= max(spec["replicas"] for spec in kafka_topics.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_each_consumer_on_its_groups_lag_up_to_the_partitions(rendered, overlay):
    partitions = {doc["spec"]["topicName"]: doc["spec"]["partitions"] for doc in of_kind(rendered[overlay], "KafkaTopic")}
    scaled = {doc["spec"]["scaleTargetRef"]["name"]: doc for doc in of_kind(rendered[overlay], "ScaledObject")}
    assert set(scaled) == {"integrations", "orders", "webhook-dispatcher"}
    for service, doc in scaled.items():
        triggers = {(t["metadata"]["topic"], t["metadata"]["consumerGroup"]) for t in doc["spec"]["triggers"]}
        expected = {(c.topic, group) for c in asyncapi.channels() for group in c.consumers if group.startswith(service + ".")}
        assert triggers == expected, service
        assert doc["spec"]["maxReplicaCount"] <= min(partitions[topic] for topic, _ in triggers), service


def test_prometheus_rule_is_the_alert_rules(rendered):
    rules = yaml.safe_load((K8S.parent / "prometheus" / "rules" / "posint.yml").read_text())
    for overlay in OVERLAYS:
        (rule,) = of_kind(rendered[overlay], "PrometheusRule")
        assert rule["spec"] == rules, "copy deploy/prometheus/rules/posint.yml into deploy/k8s/base/monitoring.yaml"
