"""The broker takes every record the services produce: wherever topics are declared for a real Kafka
(docker-compose's broker, the Strimzi Kafka and KafkaTopics), records up to KAFKA_MAX_RECORD_BYTES
(what a 1 MiB inbound order needs, posint_common.contracts.limits) are allowed."""
from __future__ import annotations

from pathlib import Path

import yaml

from posint_common.settings import KafkaSettings

K8S = Path(__file__).resolve().parents[1] / "k8s" / "base"


def largest_record(env: dict) -> int:
    """The KAFKA_MAX_RECORD_BYTES an environment gives the services (its default when unset)."""
    return KafkaSettings(kafka_bootstrap_servers="kafka:9092",
                         **({"kafka_max_record_bytes": env["KAFKA_MAX_RECORD_BYTES"]} if "KAFKA_MAX_RECORD_BYTES" in env else {})
                         ).kafka_max_record_bytes


def test_compose_broker_takes_the_largest_record_of_every_service(compose):
    broker = int(compose["services"]["kafka"]["environment"]["KAFKA_MESSAGE_MAX_BYTES"])
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        if "KAFKA_BOOTSTRAP_SERVERS" in env and name != "setup":
            assert largest_record(env) <= broker, name


def test_every_kafka_topic_and_the_kafka_cluster_take_the_largest_record():
    docs = [doc for path in ("config.yaml", "kafka.yaml", "topics.yaml")
            for doc in yaml.safe_load_all((K8S / path).read_text()) if doc]
    [config] = [doc for doc in docs if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "posint-config"]
    largest = largest_record(config["data"])
    [cluster] = [doc for doc in docs if doc["kind"] == "Kafka"]
    assert int(cluster["spec"]["kafka"]["config"]["message.max.bytes"]) >= largest
    kafka_topics = [doc for doc in docs if doc["kind"] == "KafkaTopic"]
    assert kafka_topics
    for topic in kafka_topics:
        assert int(topic["spec"]["config"].get("max.message.bytes", 0)) >= largest, topic["spec"]["topicName"]
