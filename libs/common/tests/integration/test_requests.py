"""The shared requester (posint_common.requests) is generic: its source, reply topic and client id
are parameters. A requester with another reply topic than the gateway's (``webhooks.replies``) gets
its answers there, on the shared topic without rolling and on its own per-instance generations with
KAFKA_ROLL_TOPICS; a request nobody answers is a bounded ReplyTimeout. Real Tansu, a responder that
answers to whatever ``replyto`` says."""
from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel

from posint_common import kafka, topic_roll
from posint_common.contracts import topics
from posint_common.contracts.replies import REPLY, Reply
from posint_common.envelope import Envelope
from posint_common.requests import EXPIRY_TICK_S, ReplyTimeout, Requester
from posint_common.testing import unique


class Ping(BaseModel):
    n: int


async def responder(bootstrap_servers: str, topic: str, seen: list[Envelope], ready: asyncio.Event) -> None:
    """Answers every request on ``topic`` with its own payload, to the request's ``replyto``."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, group_id=unique("responder"),
                                auto_offset_reset="earliest", fetch_max_wait_ms=20, session_timeout_ms=6_000,
                                heartbeat_interval_ms=2_000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await consumer.start()
    await producer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        ready.set()
        while True:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    request = Envelope.from_record(record.headers, record.value)
                    seen.append(request)
                    reply = Envelope.wrap(Reply(status=200, body=request.data), source="posint/responder", type=REPLY,
                                          cause=request)
                    await kafka.send(producer, request.replyto, reply, 5)
    finally:
        await consumer.stop()
        await producer.stop()


@pytest.fixture
async def request_topic(infra):
    name = unique("test.requests")
    await kafka.ensure_topics(infra.bootstrap_servers, (name,))
    return name


@pytest.mark.parametrize("rolling", [False, True], ids=["shared-reply-topic", "own-generations"])
async def test_a_requester_of_another_kind_gets_its_replies_on_its_own_reply_topic(infra, producer, request_topic, rolling):
    settings = infra.settings(kafka_roll_topics=rolling)
    seen: list[Envelope] = []
    ready = asyncio.Event()
    answering = asyncio.create_task(responder(infra.bootstrap_servers, request_topic, seen, ready))
    requester = Requester(settings, producer, source="posint/webhook-dispatcher", reply_topic=topics.WEBHOOKS_REPLIES,
                          client_id="test.replies", reply_timeout_s=10)
    await requester.start()
    try:
        await asyncio.wait_for(ready.wait(), 30)
        assert requester.ready
        for n in range(3):
            reply = await requester.request(request_topic, "posint.test.ping.v1", Ping(n=n), tenant_id="t1", request_id=f"r{n}")
            assert reply.status == 200 and reply.body == {"n": n}
        assert {e.source for e in seen} == {"posint/webhook-dispatcher"}
        assert {e.tenantid for e in seen} == {"t1"} and [e.correlationid for e in seen] == ["r0", "r1", "r2"]
        reply_topics = {e.replyto for e in seen}
        if rolling:  # this instance's own generation of webhooks.replies, never the gateway's
            (generation,) = reply_topics
            assert topic_roll.created_ms(generation) is not None
            assert topic_roll.base_of(generation).startswith(topics.WEBHOOKS_REPLIES + ".")
        else:
            assert reply_topics == {topics.WEBHOOKS_REPLIES}
    finally:
        answering.cancel()
        await asyncio.gather(answering, return_exceptions=True)
        await requester.stop()


async def test_a_request_nobody_answers_is_a_reply_timeout_within_its_deadline(infra, producer, request_topic):
    requester = Requester(infra.settings(), producer, source="posint/webhook-dispatcher",
                          reply_topic=topics.WEBHOOKS_REPLIES, client_id="test.replies", reply_timeout_s=0.5)
    await requester.start()
    try:
        began = time.monotonic()
        with pytest.raises(ReplyTimeout):
            await requester.request(request_topic, "posint.test.ping.v1", Ping(n=1), tenant_id="t1", request_id="r")
        assert time.monotonic() - began < 3
    finally:
        await requester.stop()


async def test_concurrent_requests_nobody_answers_each_time_out_on_their_own_deadline(infra, producer, request_topic):
    """One timer serves every deadline (``EXPIRY_TICK_S``): requests sent at different moments each
    end near their own deadline, none early, and nothing is left waiting or remembered."""
    requester = Requester(infra.settings(), producer, source="posint/webhook-dispatcher",
                          reply_topic=topics.WEBHOOKS_REPLIES, client_id="test.replies", reply_timeout_s=0.6)
    await requester.start()

    async def one(n: int, delay_s: float) -> float:
        await asyncio.sleep(delay_s)  # staggered starts, so the deadlines differ
        began = time.monotonic()
        with pytest.raises(ReplyTimeout):
            await requester.request(request_topic, "posint.test.ping.v1", Ping(n=n), tenant_id="t1", request_id=f"r{n}")
        return time.monotonic() - began

    try:
        waited = await asyncio.gather(*(one(n, 0.03 * n) for n in range(20)))
        assert min(waited) >= 0.58, waited  # never before its own deadline (a loop clock may lag by a few ms)
        assert max(waited) < 0.6 + EXPIRY_TICK_S + 1.5, waited  # the offsets check after the deadline is bounded too
        assert not requester._pending and not requester._deadlines
    finally:
        await requester.stop()
