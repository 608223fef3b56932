"""Waiting for a wake-up with a deadline, in loops that must stop when cancelled.

Python 3.11's ``asyncio.wait_for`` returns the result instead of raising when a cancellation
arrives in the same loop iteration as the awaited event (fixed in 3.12), so a worker cancelled at
stop just as it was woken would keep running and its stop would hang. ``asyncio.timeout`` has no
such window.
"""
from __future__ import annotations

import asyncio


async def wait_and_clear(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passes, then clear it; True when it was set."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        pass
    woken = event.is_set()
    event.clear()
    return woken
