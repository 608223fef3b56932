"""Topic generations on the real embedded Tansu: rolled, read across rolls without loss, deleted
once drained, never brought back by a client that still knows the name, and committed under the
group's name so the gateway can still tell 503 from 504."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from posint_common import kafka, topic_roll
from posint_common.testing import eventually, unique


@pytest.fixture
async def admin(infra):
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    yield admin
    await admin.close()


def reader_consumer(infra, group_id: str | None = None) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=infra.bootstrap_servers, group_id=group_id, enable_auto_commit=False,
                            fetch_max_wait_ms=5, auto_offset_reset="earliest")


def test_names():
    topic = topic_roll.generation("integrations.queries", 1_700_000_000_000)
    assert topic == "integrations.queries.g1700000000000"
    assert topic_roll.base_of(topic) == "integrations.queries"
    assert topic_roll.created_ms(topic) == 1_700_000_000_000
    assert topic_roll.base_of("gateway.replies") == "gateway.replies"
    assert topic_roll.created_ms("integrations.queries.dlq") is None
    older, newer = topic_roll.generation("a", 1_700_000_000_001), topic_roll.generation("a", 1_700_000_000_002)
    assert topic_roll.generations({newer, "a", "a.dlq", "ab.g1700000000003", older}, "a") == [older, newer]


async def test_reads_every_record_across_rolls_and_deletes_drained_generations(infra, admin, producer):
    base = unique("roll")
    consumer = reader_consumer(infra)
    await consumer.start()
    reader = topic_roll.RollingReader(consumer, admin, (base,), roll_records=20, grace_s=0.5)
    received: list[bytes] = []

    async def read() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                received.extend(r.value for r in records)

    reading = asyncio.create_task(read())
    try:
        await reader.start()
        first = reader.current(base)
        sent, used = [], set()
        for i in range(150):  # sent over ~4 s while the reader rolls, reassigns and deletes under the fetches
            topic = reader.current(base)
            used.add(topic)
            value = f"{i}".encode()
            await producer.send_and_wait(topic, value)
            sent.append(value)
            if i % 10 == 0:
                await asyncio.sleep(0.25)
        assert len(used) >= 3, "the reader rolled while records flowed"
        await eventually(lambda: sorted(received) == sorted(sent), 20, "every record read")

        async def first_deleted() -> bool:
            return first not in await admin.list_topics()

        await eventually(first_deleted, 20, "the drained first generation to be deleted")
        assert sorted(received) == sorted(sent), "nothing read twice across reassignments"
        live = topic_roll.generations(await admin.list_topics(), base)
        assert reader.current(base) in live and len(live) < len(used)
    finally:
        reading.cancel()
        await reader.stop()
        await consumer.stop()


async def test_a_deleted_topic_stays_deleted_for_a_client_that_still_tracks_it(infra, admin, producer):
    """aiokafka asks the broker to auto-create every topic it looks up and Tansu obeys: without
    posint_common.kafka's patch the producer's next metadata refresh brings the topic back."""
    topic = topic_roll.generation(unique("gone"))
    await topic_roll.create(admin, [topic], 1)
    await producer.send_and_wait(topic, b"x")
    await topic_roll.delete(admin, [topic])
    await producer.client.force_metadata_update()  # still tracks the topic: it asks about it by name
    assert topic not in await admin.list_topics()
    assert kafka.DEFAULT_PARTITIONS  # the patch lives in posint_common.kafka, imported for it


async def test_grouped_reader_commits_under_the_group_and_starts_from_its_commits(infra, admin, producer):
    """Read by assign(), committed as a simple consumer: the group's committed offset is what the
    gateway asks for to tell a stopped service (503) from a silent one (504)."""
    base, group = unique("queries"), unique("group")
    await kafka.ensure_topics(infra.bootstrap_servers, (base,))
    consumer = reader_consumer(infra, group)
    await consumer.start()
    reader = topic_roll.RollingReader(consumer, admin, (base,), include_base=True)
    await reader.start()
    try:
        target = topic_roll.Targets(admin)
        await target.refresh()
        topic = target.topic_for(base)
        assert topic == reader.current(base) and topic != base
        assert TopicPartition(base, 0) in consumer.assignment()  # the base is read too (generation 0)
        sent = await producer.send_and_wait(topic, b"q1")
        tp = TopicPartition(sent.topic, sent.partition)
        got = await consumer.getmany(tp, timeout_ms=5_000)
        assert [r.value for r in got[tp]] == [b"q1"]
        await consumer.commit({tp: got[tp][-1].offset + 1})
        offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
        assert offsets[tp].offset == sent.offset + 1
    finally:
        await reader.stop()
        await consumer.stop()
    # a restarted reader resumes from the group's commit, not from the start
    await producer.send_and_wait(topic, b"q2")
    again = reader_consumer(infra, group)
    await again.start()
    reader = topic_roll.RollingReader(again, admin, (base,), include_base=True)
    await reader.start()
    try:
        got = await again.getmany(tp, timeout_ms=5_000)
        assert [r.value for r in got[tp]] == [b"q2"]
    finally:
        await reader.stop()
        await again.stop()


async def test_orphaned_reply_generations_of_a_dead_gateway_are_deleted(infra, admin):
    root = unique("replies")
    dead = topic_roll.generation(topic_roll.reply_base(root, "dead"), topic_roll.now_ms() - int(topic_roll.ORPHAN_AGE_S * 1000) - 1)
    alive = topic_roll.generation(topic_roll.reply_base(root, "alive"))
    await topic_roll.create(admin, [dead, alive], 1)
    consumer = reader_consumer(infra)
    await consumer.start()
    reader = topic_roll.RollingReader(consumer, admin, (topic_roll.reply_base(root, "me"),), orphans_of=root)
    try:
        await reader.start()
        await reader.maintain()
        topics = set(await admin.list_topics())
        assert dead not in topics and alive in topics
    finally:
        await reader.stop()
        await consumer.stop()


async def test_prune_metadata_forgets_only_old_deleted_generations(infra, admin, producer):
    old = topic_roll.generation(unique("old"), topic_roll.now_ms() - 60_000)
    young = topic_roll.generation(unique("young"))
    await topic_roll.create(admin, [old, young], 1)
    for topic in (old, young):
        await producer.send_and_wait(topic, b"x")
    await topic_roll.delete(admin, [old, young])
    await producer.client.force_metadata_update()
    assert topic_roll.prune_metadata(producer.client, min_age_s=30) == [old]
    assert old not in producer.client._topics and young in producer.client._topics
