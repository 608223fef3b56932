"""A worker loop built on wait_and_clear stops when cancelled, even as it is being woken."""
import asyncio

import pytest

from posint_common.waits import wait_and_clear


async def _worker(event: asyncio.Event, rounds: list[bool]) -> None:
    while True:
        rounds.append(await wait_and_clear(event, 30))


async def test_cancel_arriving_with_the_wake_up_stops_the_loop():
    event, rounds = asyncio.Event(), []
    task = asyncio.create_task(_worker(event, rounds))
    await asyncio.sleep(0)  # let it start waiting
    event.set()
    task.cancel()  # same iteration as the wake-up: wait_for on 3.11 swallows this one
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task
    assert task.cancelled()


async def test_reports_wake_up_and_timeout_and_clears():
    event = asyncio.Event()
    assert await wait_and_clear(event, 0.01) is False
    event.set()
    assert await wait_and_clear(event, 5) is True
    assert not event.is_set()
