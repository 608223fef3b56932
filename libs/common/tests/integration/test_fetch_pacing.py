import asyncio
import inspect

from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import Fetcher

from posint_common import kafka
from posint_common.fetch_pacing import FetchPacer
from posint_common.testing import eventually


def test_pinned_aiokafka_builds_each_fetch_request_from_the_attribute_we_set():
    assert "self._fetch_max_wait_ms" in inspect.getsource(Fetcher._get_actions_per_node)


async def test_wait_is_short_while_busy_and_long_again_after_the_window(infra):
    consumer = kafka.make_consumer(infra.settings(), "gateway.replies", group_id=None, client_id="pacing-test")
    await consumer.start()
    try:
        pacer = FetchPacer(consumer, busy_ms=3, idle_ms=77, window_ms=300)
        assert consumer._fetcher._fetch_max_wait_ms == 77
        pacer.activity()
        assert consumer._fetcher._fetch_max_wait_ms == 3
        await eventually(lambda: consumer._fetcher._fetch_max_wait_ms == 77, 5, "the idle wait to return")
        pacer.close()
    finally:
        await consumer.stop()


async def test_a_requesters_consumer_pauses_when_nothing_is_awaited_and_stays_busy_while_something_is(infra):
    consumer = kafka.make_consumer(infra.settings(), group_id=None, client_id="pacing-pause-test")
    await consumer.start()
    await consumer.topics()
    tps = [TopicPartition("gateway.replies", p) for p in sorted(consumer.partitions_for_topic("gateway.replies"))]
    consumer.assign(tps)
    awaited = []
    try:
        pacer = FetchPacer(consumer, busy_ms=3, idle_ms=77, window_ms=300, pause_unless_waiting=lambda: bool(awaited))
        assert consumer.paused() == set(tps)  # nothing asked for yet: no idle fetches at all
        pacer.activity()
        assert not consumer.paused() and consumer._fetcher._fetch_max_wait_ms == 3
        awaited.append("a request")
        await asyncio.sleep(0.9)  # three windows pass while a reply is awaited: not a synchronisation
        assert not consumer.paused() and consumer._fetcher._fetch_max_wait_ms == 3
        awaited.clear()
        await eventually(lambda: consumer.paused() == set(tps), 5, "the consumer to pause once nothing is awaited")
        assert consumer._fetcher._fetch_max_wait_ms == 77
        pacer.activity()
        assert not consumer.paused() and consumer._fetcher._fetch_max_wait_ms == 3
        pacer.close()
    finally:
        await consumer.stop()
