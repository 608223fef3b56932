"""Query batches commit together: one commit round trip per ``QUERY_COMMIT_INTERVAL_S`` under load,
not one per batch, and the last batch of a burst always commits, so the group's offsets end current
(a stop, a rebalance and the requester's 503 check rely on that)."""
import asyncio

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import BaseModel

from posint_common import kafka
from posint_common.consumer import ConsumerLoop, Route
from posint_common.contracts.replies import Reply
from posint_common.envelope import Envelope
from posint_common.testing import eventually, unique

NOTE = "posint.test.note.v1"
QUERIES = 120


class Note(BaseModel):
    text: str


async def slow_answer(ctx, note: Note) -> Reply:
    await asyncio.sleep(0.02)  # a query's own work, so the next batches are fetched while it runs
    return Reply(status=200, body={"text": note.text})


async def test_a_burst_of_query_batches_commits_far_less_often_and_ends_committed(infra, pool, producer, schema, topic):
    group = unique("test.query-commits")
    consumer = kafka.make_consumer(infra.settings(), topic, group_id=group, client_id=group)
    loop = ConsumerLoop(name=group, topics=(topic,), routes={NOTE: Route(Note, slow_answer)}, consumer=consumer,
                        producer=producer, pool=pool, schema=schema, source="posint/test", read_only=True,
                        pacer_settings={"busy_ms": 5, "idle_ms": 50, "window_ms": 1000})
    batches, commits = [], []
    handle_batch, commit = loop._handle_batch, consumer.commit

    async def counted_batch(batch, previous):
        batches.append(sum(len(records) for records in batch.values()))
        await handle_batch(batch, previous)

    async def counted_commit(offsets=None):
        commits.append(dict(offsets))
        await commit(offsets)

    loop._handle_batch, consumer.commit = counted_batch, counted_commit
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
    await admin.start()
    await loop.start()
    try:
        await eventually(lambda: loop.ready, 30, "the query consumer to join")
        ends: dict[TopicPartition, int] = {}
        for i in range(QUERIES):
            query = Envelope.wrap(Note(text=str(i)), source="posint/test", type=NOTE, subject=f"k{i % 7}")
            sent = await producer.send_and_wait(topic, query.value(), key=query.key, headers=query.headers())
            ends[TopicPartition(sent.topic, sent.partition)] = sent.offset + 1

        async def committed() -> bool:
            offsets = await admin.list_consumer_group_offsets(group, partitions=list(ends))
            return all(offsets.get(tp) is not None and offsets[tp].offset == end for tp, end in ends.items())

        await eventually(committed, 20, "every query's offset committed after the burst")
    finally:
        await loop.stop()
        await admin.close()
    assert sum(batches) == QUERIES
    assert len(batches) >= 6, f"the burst came in {len(batches)} batches: not a test of pipelined batches"
    assert len(commits) <= len(batches) // 2, f"{len(commits)} commits for {len(batches)} batches"
