from aiokafka import TopicPartition
from pydantic import BaseModel

from posint_common import kafka
from posint_common.consumer import ConsumerLoop, Route
from posint_common.contracts.replies import DEAD_LETTER
from posint_common.envelope import Envelope
from posint_common.outbox import OutboxRelay
from posint_common.testing import eventually, read_topic, unique

NOTE = "posint.test.note.v1"


class Note(BaseModel):
    text: str


async def record_note(ctx, note: Note):
    if note.text == "explode":
        raise RuntimeError("handler always fails on this one")
    await ctx.conn.execute("INSERT INTO effects (message_id, note) VALUES ($1, $2)", ctx.envelope.id, note.text)


def make_loop(infra, pool, producer, schema, topic, group=None, **options) -> ConsumerLoop:
    group = group or unique("test.notes")
    return ConsumerLoop(
        name=group, topics=(topic,), routes={NOTE: Route(Note, record_note)},
        consumer=kafka.make_consumer(infra.settings(), topic, group_id=group, client_id=unique(group)),
        producer=producer, pool=pool, schema=schema, source="posint/test",
        pacer_settings={"busy_ms": 5, "idle_ms": 50, "window_ms": 1000}, max_attempts=2, **options,
    )


async def send_raw(producer, topic, value: bytes, headers, key=b"k"):
    await producer.send_and_wait(topic, value, key=key, headers=headers)


async def send_note(producer, topic, text, envelope=None):
    envelope = envelope or Envelope.wrap(Note(text=text), source="posint/test", type=NOTE, subject="same-key")
    await send_raw(producer, topic, envelope.value(), envelope.headers(), key=envelope.key)
    return envelope


async def notes(pool) -> list[str]:
    return [r["note"] for r in await pool.fetch("SELECT note FROM effects ORDER BY id")]


async def test_poison_and_failing_messages_go_to_the_dlq_and_the_partition_moves_on(infra, pool, producer, schema, topic):
    relay = OutboxRelay(dsn=infra.database_url, pool=pool, producer=producer, schema=schema)
    await relay.start()
    loop = make_loop(infra, pool, producer, schema, topic)
    await loop.start()
    try:
        await send_raw(producer, topic, b"{not json", [("ce_specversion", b"1.0")], key=b"same-key")
        await send_note(producer, topic, "explode")
        unknown = Envelope(source="posint/test", type="posint.test.unknown.v1", subject="same-key")
        await send_raw(producer, topic, unknown.value(), unknown.headers(), key=b"same-key")
        await send_note(producer, topic, "after")
        await eventually(lambda: _notes_are(pool, ["after"]), 60, "the message behind the poison ones")
        letters = await read_topic(infra.bootstrap_servers, f"{topic}.dlq", 3)
    finally:
        await loop.stop()
        await relay.stop()
    assert {letter.type for letter in letters} == {DEAD_LETTER}
    errors = sorted(letter.data["error"] for letter in letters)
    assert any("invalid envelope" in e for e in errors)
    assert any("handler always fails" in e for e in errors)
    assert any("unknown message type" in e for e in errors)
    assert all(letter.data["topic"] == topic for letter in letters)


async def test_redelivered_message_has_no_second_effect(infra, pool, producer, schema, topic):
    loop = make_loop(infra, pool, producer, schema, topic)
    await loop.start()
    try:
        first = await send_note(producer, topic, "once")
        await send_note(producer, topic, "once", envelope=first)  # same ce_source + ce_id
        await send_note(producer, topic, "twice-a")
        await eventually(lambda: _notes_are(pool, ["once", "twice-a"]), 60, "both distinct messages applied")
    finally:
        await loop.stop()


async def test_offsets_are_committed_after_the_work(infra, pool, producer, schema, topic):
    loop = make_loop(infra, pool, producer, schema, topic)
    await loop.start()
    try:
        sent = [await send_note(producer, topic, f"n{i}") for i in range(3)]
        await eventually(lambda: _notes_are(pool, ["n0", "n1", "n2"]), 60, "three notes applied")

        async def committed_past_all() -> bool:
            tps = [TopicPartition(topic, p) for p in loop.consumer.partitions_for_topic(topic)]
            total = 0
            for tp in tps:
                total += (await loop.consumer.committed(tp)) or 0
            return total == len(sent)

        await eventually(committed_past_all, 10, "committed offsets to cover the three messages")
    finally:
        await loop.stop()


async def _notes_are(pool, expected) -> bool:
    return await notes(pool) == expected


async def test_rebalance_between_two_members_loses_and_doubles_nothing(infra, pool, producer, schema, topic):
    first = make_loop(infra, pool, producer, schema, topic)
    second = make_loop(infra, pool, producer, schema, topic, group=first.name)  # same group and inbox key
    await first.start()
    expected = []
    try:
        for i in range(10):
            expected.append((await send_note(producer, topic, f"a{i}")).data["text"])
        await second.start()  # the group rebalances while messages keep coming
        for i in range(10):
            expected.append((await send_note(producer, topic, f"b{i}")).data["text"])
        await eventually(lambda: second.joined, 30, "the second member to join")
        await first.stop()  # and again when the first leaves
        for i in range(10):
            expected.append((await send_note(producer, topic, f"c{i}")).data["text"])
        await eventually(lambda: _count_at_least(pool, len(expected)), 60, "every message applied")
    finally:
        for loop in (first, second):
            if loop._task and not loop._task.done():
                await loop.stop()
    assert sorted(await notes(pool)) == sorted(expected)


async def _count_at_least(pool, n) -> bool:
    return await pool.fetchval("SELECT count(*) FROM effects") >= n


async def test_a_batch_that_cannot_even_be_dead_lettered_is_replayed_not_skipped(infra, pool, producer, schema, topic):
    await pool.execute("ALTER TABLE inbox RENAME TO inbox_away")  # Postgres refuses every handler and dead-letter write
    loop = make_loop(infra, pool, producer, schema, topic)
    await loop.start()
    try:
        await send_note(producer, topic, "survives")
        await eventually(lambda: _failures_logged(loop), 30, "the handler to fail and the batch to be retried")
        await pool.execute("ALTER TABLE inbox_away RENAME TO inbox")
        await eventually(lambda: _notes_are(pool, ["survives"]), 30, "the replayed message to be applied")
    finally:
        await loop.stop()
    assert await notes(pool) == ["survives"]


def _failures_logged(loop) -> bool:
    from posint_common import metrics

    return metrics.BATCH_RETRIES.labels(loop.name)._value.get() >= 1
