"""Per-key limits, in this gateway process: a token bucket (aiolimiter's leaky bucket, which is the
same thing: ``burst`` tokens, refilled at ``per_second``) and a bound on requests in flight.

Every authenticated response carries ``RateLimit-Limit`` (the bucket size), ``RateLimit-Remaining``
(whole tokens left) and ``RateLimit-Reset`` (seconds until the bucket is full again), as in the IETF
RateLimit header draft, plus ``RateLimit-Policy``. The counts live in this process only: with N
gateway replicas behind a balancer a key gets up to N times the rate and N times the in-flight bound.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web
from aiolimiter import AsyncLimiter

MAX_TRACKED_KEYS = 10_000  # least recently used bucket goes first; an idle bucket is full, i.e. like a new one


@dataclass(frozen=True)
class Decision:
    allowed: bool
    headers: dict[str, str]
    retry_after_s: int = 0


class KeyLimiter:
    def __init__(self, per_second: float, burst: int, max_in_flight: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self.max_in_flight = max_in_flight
        self._buckets: OrderedDict[str, AsyncLimiter] = OrderedDict()
        self._in_flight: dict[str, int] = {}
        self._policy = f"{burst};w={math.ceil(burst / per_second)}"

    def _bucket(self, key_id: str) -> AsyncLimiter:
        bucket = self._buckets.get(key_id)
        if bucket is None:
            # aiolimiter's bucket holds max_rate and drains max_rate per time_period: burst, at per_second.
            bucket = self._buckets[key_id] = AsyncLimiter(self.burst, self.burst / self.per_second)
            if len(self._buckets) > MAX_TRACKED_KEYS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key_id)
        return bucket

    async def take(self, key_id: str) -> Decision:
        """One token for ``key_id``, or a refusal with the seconds until one is there."""
        bucket = self._bucket(key_id)
        allowed = bucket.has_capacity()  # leaks what has drained since the last look
        if allowed:
            await bucket.acquire()  # returns at once: there is capacity, and nothing awaits in between
        level = bucket._level  # aiolimiter keeps the level private; pinned version (constraints.txt)
        headers = {
            "RateLimit-Limit": str(self.burst),
            "RateLimit-Remaining": str(max(0, math.floor(self.burst - level + 1e-9))),
            "RateLimit-Reset": str(math.ceil(level / self.per_second)),
            "RateLimit-Policy": self._policy,
        }
        retry_after = 0 if allowed else max(1, math.ceil((level + 1 - self.burst) / self.per_second))
        return Decision(allowed, headers, retry_after)

    def enter(self, key_id: str) -> bool:
        """Count a request in flight, unless the key already has ``max_in_flight``."""
        count = self._in_flight.get(key_id, 0)
        if count >= self.max_in_flight:
            return False
        self._in_flight[key_id] = count + 1
        return True

    def leave(self, key_id: str) -> None:
        count = self._in_flight.pop(key_id, 1) - 1
        if count > 0:
            self._in_flight[key_id] = count


LIMITER_KEY = web.AppKey("limiter", KeyLimiter)
