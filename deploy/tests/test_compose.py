"""docker-compose.yml checked offline: the compose-spec schema, each service's environment against
its own settings model, secrets only from .env, start order on health, and a `setup` step that
creates every topic the code uses and migrates every schema (run for real here, on a fresh broker
and database)."""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from posint_common import kafka
from posint_common.contracts import topics

BIN = Path(sys.executable).parent
POSINT_IMAGE = "posint:local"


def posint_services(compose: dict) -> dict[str, dict]:
    return {name: spec for name, spec in compose["services"].items() if spec.get("image") == POSINT_IMAGE}


def test_compose_file_matches_the_compose_spec(ops):
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(ops.compose_file)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_variable_taken_from_the_environment_is_in_the_env_example(ops):
    assert ops.variables_used(ops.compose_file.read_text()) == ops.example_variables()


@pytest.mark.parametrize("secret", ["POSTGRES_PASSWORD", "INTEGRATIONS_ENCRYPTION_KEYS", "WEBHOOKS_ENCRYPTION_KEYS",
                                    "TRANSPORT_KEYS"])
def test_secrets_come_only_from_the_env_file(ops, compose_env, secret):
    """No default in the file: without the value in .env, compose refuses to start anything."""
    with pytest.raises(ops.MissingVariable, match=secret):
        ops.load_compose({k: v for k, v in compose_env.items() if k != secret})
    assert compose_env[secret] not in ops.compose_file.read_text()


async def test_each_service_environment_is_valid_for_its_own_settings_model(ops, compose, monkeypatch):
    models = ops.settings_models()
    services = {name: spec for name, spec in posint_services(compose).items() if not spec.get("profiles")}
    assert set(services) == {"setup", "integrations", "orders", "webhook-dispatcher", "gateway"}
    for name, spec in services.items():
        module = ops.module_of(spec["command"])
        model = models[module]  # a new runnable module needs its settings model listed in conftest
        env = {key: str(value) for key, value in spec["environment"].items()}
        unknown = {key for key in env if key.lower() not in model.model_fields}
        assert not unknown, f"{name}: variables its settings ({model.__name__}) do not read: {unknown}"
        for field in model.model_fields:  # only the compose environment counts, not this machine's
            monkeypatch.delenv(field.upper(), raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = model()  # raises naming every missing or bad variable
        assert settings.database_url.startswith("postgresql://posint:")
        assert settings.kafka_bootstrap_servers == "kafka:9092"
        if hasattr(settings, "health_port"):
            assert settings.health_host == "0.0.0.0" and settings.health_port == 9000, name
            assert not settings.kafka_roll_topics, f"{name}: Kafka applies retention; rolling is for Tansu"
            assert settings.kafka_enable_idempotence, f"{name}: a real Kafka supports idempotent producers"
            producer = kafka.make_producer(settings, client_id=name)
            try:
                assert producer._txn_manager is not None, f"{name}: the producer ignores KAFKA_ENABLE_IDEMPOTENCE"
            finally:
                await producer.stop()


def test_the_sandbox_profile_runs_the_simulators_from_the_same_image(ops, compose, monkeypatch):
    """`--profile sandbox`: the fake platforms (127.0.0.1 only) inside the integrations container's network
    namespace, so integrations reaches them on its loopback; the reference POS on Kafka. Each one's
    environment is valid for its own settings, and each healthcheck asks the port those settings give."""
    from sandbox.platforms.settings import SandboxSettings
    from sandbox.pos.settings import PosSettings

    services = {name: spec for name, spec in posint_services(compose).items() if "sandbox" in spec.get("profiles", ())}
    by_module = {ops.module_of(spec["command"]): spec for spec in services.values()}
    assert set(by_module) == {"sandbox.platforms", "sandbox.pos"}

    platforms = by_module["sandbox.platforms"]
    assert platforms["network_mode"] == "service:integrations" and "ports" not in platforms
    settings = SandboxSettings.from_env({key: str(value) for key, value in platforms["environment"].items()})
    assert f"127.0.0.1:{settings.port}/readyz" in " ".join(platforms["healthcheck"]["test"])

    pos = by_module["sandbox.pos"]
    env = {key: str(value) for key, value in pos["environment"].items()}
    assert not {key for key in env if key.lower() not in PosSettings.model_fields}
    for field in PosSettings.model_fields:
        monkeypatch.delenv(field.upper(), raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    pos_settings = PosSettings()
    assert pos_settings.kafka_bootstrap_servers == "kafka:9092" and not pos_settings.kafka_roll_topics
    assert f"127.0.0.1:{pos_settings.pos_control_port}/readyz" in " ".join(pos["healthcheck"]["test"])
    assert pos["depends_on"]["setup"]["condition"] == "service_completed_successfully"  # pos.orders exists first


def test_services_start_in_order_on_health(compose):
    services = compose["services"]
    for name in ("postgres", "kafka"):
        assert services[name]["healthcheck"]["test"], name
    assert services["setup"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"}, "kafka": {"condition": "service_healthy"},
    }
    assert services["setup"]["command"] == ["python", "-m", "posint_devstack.setup"]
    assert services["setup"]["restart"] == "no"
    for name, spec in posint_services(compose).items():
        if name == "setup" or spec.get("profiles"):  # the sandbox's: test_the_sandbox_profile_...
            continue
        assert spec["depends_on"]["setup"] == {"condition": "service_completed_successfully"}, name
        probe = " ".join(spec["healthcheck"]["test"])
        assert "http://127.0.0.1:9000/readyz" in probe, name
    backends = {"integrations", "orders", "webhook-dispatcher"}
    assert {n for n, c in services["gateway"]["depends_on"].items() if c == {"condition": "service_healthy"}} == backends


def test_kafka_is_a_complete_single_kraft_node(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = {key: str(value) for key, value in kafka["environment"].items()}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"].split(",")
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols) == {"CONTROLLER", "PLAINTEXT"}
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    for single_node in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert env[single_node] == "1", single_node  # the defaults (3, 2) never come up on one broker
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16  # a Kafka Uuid
    assert any(volume.endswith(":" + env["KAFKA_LOG_DIRS"]) for volume in kafka["volumes"])


def test_observability_is_provisioned_from_deploy(ops, compose):
    for name in ("prometheus", "grafana"):
        spec = compose["services"][name]
        assert spec["profiles"] == ["observability"]
        for volume in spec["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ops.root / source).exists(), f"{name} mounts {source}, which does not exist"


async def test_setup_creates_every_topic_and_migrates_every_schema(fresh_infra, compose):
    """`python -m posint_devstack.setup`, as the compose `setup` service runs it, on a broker and a
    database that have nothing yet."""
    env = {key: str(value) for key, value in compose["services"]["setup"]["environment"].items()}
    env.update(DATABASE_URL=fresh_infra.database_url, KAFKA_BOOTSTRAP_SERVERS=fresh_infra.bootstrap_servers)
    command = compose["services"]["setup"]["command"]
    result = subprocess.run([sys.executable, *command[1:]], env={"PATH": os.environ["PATH"], **env},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

    admin = AIOKafkaAdminClient(bootstrap_servers=fresh_infra.bootstrap_servers)
    await admin.start()
    try:
        created = set(await admin.list_topics())
    finally:
        await admin.close()
    assert set(topics.ALL) <= created, f"not created: {set(topics.ALL) - created}"

    conn = await asyncpg.connect(fresh_infra.database_url)
    try:
        migrated = {row["table_schema"] for row in await conn.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'schema_migrations'")}
    finally:
        await conn.close()
    assert migrated == {"gateway", "integrations", "orders", "webhook_dispatcher"}


def test_setup_that_cannot_reach_postgres_fails_in_one_line_without_the_password(fresh_infra, tmp_path):
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    password = "n0t-in-any-log-3f9a"
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": f"postgresql://posint:{password}@127.0.0.1:{port}/posint",
           "KAFKA_BOOTSTRAP_SERVERS": fresh_infra.bootstrap_servers}
    result = subprocess.run([sys.executable, "-m", "posint_devstack.setup"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert password not in output
    failed = [json.loads(line) for line in output.splitlines() if '"setup_failed"' in line]
    assert len(failed) == 1 and failed[0]["postgres"] == f"127.0.0.1:{port}/posint", output
