"""Without traffic the topic list is not asked for every second: a reader whose high watermarks do
not move and a sender that sends nothing refresh every ``IDLE_REFRESH_S``; with traffic, every
``REFRESH_S`` as before (the idle stack's broker and clients pay for every metadata request)."""
from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from posint_common import topic_roll
from posint_common.testing import unique

QUIET_S = 3.5  # shorter than IDLE_REFRESH_S, long enough for three rounds of REFRESH_S


class CountingAdmin(AIOKafkaAdminClient):
    """The real admin client; counts the topic-list requests."""

    listed = 0

    async def list_topics(self):
        self.listed += 1
        return await super().list_topics()


@pytest.fixture
async def admin(infra):
    admin = CountingAdmin(bootstrap_servers=infra.bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    yield admin
    await admin.close()


async def listed_during(admin: CountingAdmin, seconds: float, action=None) -> int:
    before, until = admin.listed, time.monotonic() + seconds
    while time.monotonic() < until:
        if action is not None:
            await action()
        await asyncio.sleep(0.1)
    return admin.listed - before


async def test_a_sender_with_nothing_to_send_refreshes_rarely_and_every_second_while_sending(admin):
    assert topic_roll.IDLE_REFRESH_S > QUIET_S
    targets = topic_roll.Targets(admin)
    await targets.start()
    try:
        assert await listed_during(admin, QUIET_S) == 0

        async def send() -> None:
            targets.topic_for("integrations.queries")

        assert await listed_during(admin, QUIET_S, send) >= 2
    finally:
        await targets.stop()


async def test_a_reader_with_nothing_arriving_refreshes_rarely_and_every_second_while_records_flow(infra, admin, producer):
    base = unique("idle-roll")
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    reader = topic_roll.RollingReader(consumer, admin, (base,))
    reading = asyncio.create_task(_read(consumer))
    try:
        await reader.start()
        await asyncio.sleep(topic_roll.REFRESH_S + 0.5)  # the first round after start sees the marks for the first time
        assert await listed_during(admin, QUIET_S) == 0

        async def produce() -> None:
            await producer.send_and_wait(reader.current(base), b"x")

        assert await listed_during(admin, QUIET_S, produce) >= 2
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        await reader.stop()
        await consumer.stop()


async def _read(consumer: AIOKafkaConsumer) -> None:
    while True:
        await consumer.getmany(timeout_ms=100)


async def test_a_paused_reader_stays_paused_across_a_roll(infra, admin):
    """A requester pauses its reply consumer while nothing is awaited (FetchPacer); a roll reassigns
    the partitions, and the new generation must not bring the idle fetches back."""
    base = unique("paused-roll")
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    reader = topic_roll.RollingReader(consumer, admin, (base,), roll_age_s=0.5)
    try:
        await reader.start()
        first = reader.current(base)
        consumer.pause(*consumer.assignment())
        await asyncio.sleep(0.6)  # older than roll_age_s: the next round rolls
        await reader.maintain()
        assert reader.current(base) != first, "the reader rolled"
        assert consumer.assignment() and consumer.paused() == consumer.assignment()
        consumer.resume(*consumer.paused())
        await reader.maintain()  # a reader that is not paused is left alone
        assert not consumer.paused()
    finally:
        await reader.stop()
        await consumer.stop()
