"""A command's reply goes to the broker straight after its transaction commits, not at the relay's
turn; its outbox row stays the fallback (the relay sends it after ``outbox.DIRECT_GRACE_S`` if the
consumer could not), and rows a handler defers are written with the reply in one statement."""
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from pydantic import BaseModel

from posint_common import kafka, outbox
from posint_common.consumer import ConsumerLoop, Route
from posint_common.contracts.replies import REPLY, Reply
from posint_common.envelope import Envelope
from posint_common.outbox import OutboxRelay
from posint_common.testing import eventually, read_topic, unique

ASK = "posint.test.ask.v1"
NOTED = "posint.test.noted.v1"


class Ask(BaseModel):
    text: str


async def answer(ctx, ask: Ask) -> Reply:
    await ctx.conn.execute("INSERT INTO effects (message_id, note) VALUES ($1, $2)", ctx.envelope.id, ask.text)
    return Reply(status=200, body={"text": ask.text})


async def answer_and_defer(ctx, ask: Ask) -> Reply:
    """An event deferred to the consumer's one outbox statement, beside the reply."""
    ctx.defer(ctx.envelope.replyto + ".events",
              Envelope.wrap(Ask(text=ask.text), source=ctx.source, type=NOTED, cause=ctx.envelope, subject="agg"))
    return await answer(ctx, ask)


class SendsNothing:
    """The consumer's producer as it is when the process dies right after commit: the broker never
    sees the reply from the consumer (metadata known, every send fails)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.client = producer.client

    async def send(self, *args, **kwargs):
        raise KafkaConnectionError("gone")


def make_loop(infra, pool, producer, schema, topic, handler=answer) -> ConsumerLoop:
    group = unique("test.asks")
    return ConsumerLoop(
        name=group, topics=(topic,), routes={ASK: Route(Ask, handler)},
        consumer=kafka.make_consumer(infra.settings(), topic, group_id=group, client_id=unique(group)),
        producer=producer, pool=pool, schema=schema, source="posint/test",
        pacer_settings={"busy_ms": 5, "idle_ms": 50, "window_ms": 1000}, max_attempts=2,
    )


async def ask(producer, topic: str, reply_topic: str, text: str) -> Envelope:
    command = Envelope.wrap(Ask(text=text), source="posint/gateway", type=ASK, subject="k", replyto=reply_topic)
    await producer.send_and_wait(topic, command.value(), key=command.key, headers=command.headers())
    return command


async def reply_topic(infra, producer) -> str:
    name = unique("test.replies")
    await kafka.ensure_topics(infra.bootstrap_servers, (name, f"{name}.events"))
    await producer.partitions_for(name)  # as a running service knows the gateway's reply topic
    return name


async def outbox_rows(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM outbox")


async def test_the_reply_goes_out_without_the_relay_and_its_row_is_deleted(infra, pool, producer, schema, topic):
    replies = await reply_topic(infra, producer)
    loop = make_loop(infra, pool, producer, schema, topic)  # no relay running at all
    await loop.start()
    try:
        command = await ask(producer, topic, replies, "direct")
        found = await read_topic(infra.bootstrap_servers, replies, 1, timeout_s=20)
        await eventually(lambda: _none_left(pool), 10, "the reply's outbox row to be deleted once acknowledged")
    finally:
        await loop.stop()
    assert [(e.type, e.causationid, e.data["body"]) for e in found] == [(REPLY, command.id, {"text": "direct"})]


async def test_a_reply_the_consumer_could_not_send_goes_out_through_the_relay(infra, pool, producer, schema, topic,
                                                                             monkeypatch):
    monkeypatch.setattr(outbox, "DIRECT_GRACE_S", 0.3)
    replies = await reply_topic(infra, producer)
    relay = OutboxRelay(dsn=infra.database_url, pool=pool, producer=producer, schema=schema, sweep_interval_s=0.2)
    await relay.start()
    loop = make_loop(infra, pool, SendsNothing(producer), schema, topic)
    await loop.start()
    try:
        command = await ask(producer, topic, replies, "fallback")
        found = await read_topic(infra.bootstrap_servers, replies, 1, timeout_s=20)
        await eventually(lambda: _none_left(pool), 10, "the relay to delete the row it published")
    finally:
        await loop.stop()
        await relay.stop()
    assert [(e.causationid, e.data["body"]) for e in found] == [(command.id, {"text": "fallback"})]
    assert await pool.fetchval("SELECT count(*) FROM effects") == 1


async def test_the_relay_leaves_a_directly_sent_reply_alone(infra, pool, producer, schema, topic):
    """Relay and consumer side by side: one copy of the reply, not two (the relay is woken by the
    deferred event's NOTIFY in the same transaction and publishes only that)."""
    replies = await reply_topic(infra, producer)
    relay = OutboxRelay(dsn=infra.database_url, pool=pool, producer=producer, schema=schema, sweep_interval_s=0.2)
    await relay.start()
    loop = make_loop(infra, pool, producer, schema, topic, handler=answer_and_defer)
    await loop.start()
    try:
        commands = [await ask(producer, topic, replies, f"n{i}") for i in range(3)]
        events = await read_topic(infra.bootstrap_servers, f"{replies}.events", 3, timeout_s=20)
        await eventually(lambda: _none_left(pool), 10, "every row published and deleted")
        found = await read_topic(infra.bootstrap_servers, replies, 3, timeout_s=20)
    finally:
        await loop.stop()
        await relay.stop()
    assert sorted(e.causationid for e in found) == sorted(c.id for c in commands)  # exactly one copy each
    assert [e.data["text"] for e in events] == ["n0", "n1", "n2"]  # deferred rows keep their order
    assert {e.type for e in events} == {NOTED}


async def _none_left(pool) -> bool:
    return await outbox_rows(pool) == 0
