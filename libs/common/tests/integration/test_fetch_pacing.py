import inspect

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
