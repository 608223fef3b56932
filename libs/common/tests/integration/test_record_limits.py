"""The embedded broker (Tansu) takes and hands back a record as large as KAFKA_MAX_RECORD_BYTES allows,
through the stack's own producer and consumer; one byte more is refused by the producer itself; topics
are created to take such records."""
from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from pydantic import BaseModel

from posint_common import kafka
from posint_common.envelope import Envelope
from posint_common.testing import eventually, unique


class Blob(BaseModel):
    pad: str


def sized(record_bytes: int) -> Envelope:
    """An envelope whose record (batch framing included, as the producer counts it) is exactly ``record_bytes``."""
    envelope = Envelope.wrap(Blob(pad=""), source="posint/test", type="posint.test.blob.v1", subject="blob")
    overhead = DefaultRecordBatchBuilder.estimate_size_in_bytes(envelope.key, envelope.value(), envelope.headers())
    envelope = envelope.model_copy(update={"data": {"pad": "x" * (record_bytes - overhead)}})
    # the value's length varint may have grown by a few bytes: take them off the padding again
    excess = DefaultRecordBatchBuilder.estimate_size_in_bytes(envelope.key, envelope.value(), envelope.headers()) - record_bytes
    envelope = envelope.model_copy(update={"data": {"pad": "x" * (record_bytes - overhead - excess)}})
    assert DefaultRecordBatchBuilder.estimate_size_in_bytes(envelope.key, envelope.value(), envelope.headers()) == record_bytes
    return envelope


async def test_the_largest_record_goes_through_the_embedded_broker(infra):
    settings = infra.settings()
    topic = unique("test.large")
    await kafka.ensure_topics(infra.bootstrap_servers, (topic,), 1)
    producer = kafka.make_producer(settings, client_id="large-test")
    consumer = kafka.make_consumer(settings, topic, group_id=None, client_id="large-test")
    await producer.start()
    await consumer.start()
    try:
        await eventually(lambda: bool(consumer.assignment()), 30, "the partition assigned")
        await consumer.seek_to_beginning()
        largest = sized(settings.kafka_max_record_bytes)
        await kafka.send(producer, topic, largest, 30)
        with pytest.raises(MessageSizeTooLargeError):
            await kafka.send(producer, topic, sized(settings.kafka_max_record_bytes + 1), 30)
        await kafka.send(producer, topic, sized(1_000), 30)  # and the partition goes on after it
        got: list[Envelope] = []

        async def both() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                got.extend(Envelope.from_record(r.headers, r.value) for r in records)
            return len(got) >= 2

        await eventually(both, 30, "both records back")
    finally:
        await consumer.stop()
        await producer.stop()
    assert [e.id for e in got] == [largest.id, got[1].id] and got[0].data == largest.data


async def test_topics_are_created_to_take_the_largest_record(infra):
    """A real Kafka refuses records over 1 MiB unless the topic says otherwise (``setup`` creates them)."""
    topic = unique("test.config")
    await kafka.ensure_topics(infra.bootstrap_servers, (topic,), 1)
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    [(error, _, _, name, entries)] = response.resources
    configs = {entry[0]: entry[1] for entry in entries}
    assert error == 0 and name == topic
    assert int(configs["max.message.bytes"]) >= infra.settings().kafka_max_record_bytes
