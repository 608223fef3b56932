"""Broker clients with posint's defaults: no transactional producer and idempotence only when
KAFKA_ENABLE_IDEMPOTENCE asks for it (correctness comes from the outbox and inbox), manual commits,
bounded timeouts."""
from __future__ import annotations

import asyncio

import aiokafka.admin.client
import aiokafka.client
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.protocol.metadata import MetadataRequest

from posint_common.contracts.limits import MAX_RECORD_BYTES
from posint_common.envelope import Envelope
from posint_common.settings import KafkaSettings

DEFAULT_PARTITIONS = 3
FETCH_MAX_BYTES = 52_428_800  # aiokafka's default bound on one fetch response, all partitions together


class _NoAutoCreateMetadataRequest(MetadataRequest):
    """Topics are created on purpose (``ensure_topics``), never by looking one up.

    aiokafka asks the broker to auto-create every topic it requests metadata for, and Tansu obeys
    (with 4 partitions): a typo would become a topic, and a deleted topic generation
    (posint_common.topic_roll) that some client still tracks would come back on its next refresh.
    """

    def __init__(self, topics=None, allow_auto_topic_creation=False):
        super().__init__(topics, allow_auto_topic_creation)


# the names aiokafka's client and admin client build their requests from (aiokafka is pinned)
aiokafka.client.MetadataRequest = aiokafka.admin.client.MetadataRequest = _NoAutoCreateMetadataRequest


def make_producer(settings: KafkaSettings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,  # optional: the outbox and inbox make delivery safe
        linger_ms=0,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        max_request_size=settings.kafka_max_record_bytes,  # the topics' max.message.bytes take as much
    )


def make_consumer(settings: KafkaSettings, *topics: str, group_id: str | None, client_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if group_id else "latest",
        fetch_max_wait_ms=settings.kafka_fetch_wait_idle_ms,
        request_timeout_ms=40_000,  # JoinGroup waits for the rebalance; it must outlast it
        # Tansu completes a JoinGroup after half the session timeout, so it bounds start-up time.
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_session_timeout_ms // 3,
        max_poll_records=200,
        # a record as large as a producer may send always comes through (contracts.limits)
        max_partition_fetch_bytes=settings.kafka_max_record_bytes,
        fetch_max_bytes=max(FETCH_MAX_BYTES, settings.kafka_max_record_bytes),
    )


async def send(producer: AIOKafkaProducer, topic: str, envelope: Envelope, timeout_s: float):
    """Send one envelope and wait for the broker's ack, never longer than ``timeout_s``."""
    async with asyncio.timeout(timeout_s):  # unlike wait_for, no task per message
        return await producer.send_and_wait(topic, envelope.value(), key=envelope.key, headers=envelope.headers())


async def ensure_topics(bootstrap_servers: str, topics: tuple[str, ...], partitions: int = DEFAULT_PARTITIONS,
                        max_record_bytes: int = MAX_RECORD_BYTES) -> None:
    """Create any missing topic, taking records up to ``max_record_bytes`` (``max.message.bytes``;
    a broker's default is 1 MiB); existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        config = {"max.message.bytes": str(max_record_bytes)}
        missing = [NewTopic(t, partitions, 1, topic_configs=config) for t in topics if t not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
