"""Adaptive fetch wait: short while messages flow, long while idle.

The embedded Tansu broker answers a fetch only when data is there at the moment it looks, or when
``fetch_max_wait_ms`` runs out, so the wait is the latency floor of every hop, and a short wait on
an idle consumer burns CPU on empty round trips. Real Kafka answers as soon as data arrives; set
both waits equal (e.g. 500) there. aiokafka reads the wait from its fetcher for every new fetch
request, so changing it takes effect on the next fetch; the pinned aiokafka version is checked by a
unit test.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

from aiokafka import AIOKafkaConsumer


class FetchPacer:
    """Keeps one consumer's fetch wait at ``busy_ms`` until ``window_ms`` pass without activity.

    ``pause_unless_waiting``: for a consumer that can have nothing to read unless its owner asked for
    it (a requester's replies; the callable says whether anything is still awaited): when the window
    passes with nothing awaited it stops fetching altogether, and resumes on the next activity; while
    something is awaited it stays busy. No idle fetches at all, and the first reply after a quiet spell
    does not wait out an idle fetch (a topic roll keeps a paused reader paused: topic_roll.RollingReader).
    """

    def __init__(self, consumer: AIOKafkaConsumer, *, busy_ms: int, idle_ms: int, window_ms: int,
                 pause_unless_waiting: Callable[[], bool] | None = None) -> None:
        self._consumer = consumer
        self._fetcher = consumer._fetcher  # private: see module docstring
        self._waiting = pause_unless_waiting
        self.busy_ms = busy_ms
        self.idle_ms = idle_ms
        self.window_s = window_ms / 1000
        self._last_activity = 0.0
        self._cooler: asyncio.TimerHandle | None = None
        self._set(idle_ms)
        if pause_unless_waiting is not None:
            consumer.pause(*consumer.assignment())  # nothing asked for yet

    @property
    def current_ms(self) -> int:
        return self._fetcher._fetch_max_wait_ms

    def activity(self) -> None:
        """Call when a message arrived or one is expected soon (e.g. a reply to a sent command)."""
        self._last_activity = time.monotonic()
        if self.current_ms != self.busy_ms:
            self._set(self.busy_ms)
            if self._waiting is not None and self._consumer.paused():
                self._consumer.resume(*self._consumer.paused())  # wakes the fetcher at once
        if self._cooler is None:
            self._cooler = asyncio.get_running_loop().call_later(self.window_s, self._maybe_cool)

    def _maybe_cool(self) -> None:
        remaining = self._last_activity + self.window_s - time.monotonic()
        if remaining <= 0 and self._waiting is not None and self._waiting():
            remaining = self.window_s  # something is awaited: keep reading at the busy wait
        if remaining > 0:
            self._cooler = asyncio.get_running_loop().call_later(remaining, self._maybe_cool)
            return
        self._cooler = None
        self._set(self.idle_ms)
        if self._waiting is not None:
            self._consumer.pause(*self._consumer.assignment())

    def close(self) -> None:
        if self._cooler is not None:
            self._cooler.cancel()
            self._cooler = None

    def _set(self, wait_ms: int) -> None:
        self._fetcher._fetch_max_wait_ms = wait_ms
