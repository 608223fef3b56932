"""Closed-loop HTTP load: ``concurrency`` workers each send the next request when the last answered.

One keep-alive aiohttp session, bodies read fully, no per-request allocations beyond aiohttp's own:
on a 2-core box this client competes for CPU with the server under test, so it is kept lean (at
concurrency 32 it uses a large share of one core; the numbers are lower bounds for both targets).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable

import aiohttp

REQUEST_TIMEOUT_S = 10


@dataclass
class LoadResult:
    concurrency: int
    seconds: float
    ok: int
    errors: int
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def run(url: str, api_key: str, concurrency: int, duration_s: float, warmup_s: float,
              on_window: Callable[[str], None] | None = None) -> LoadResult:
    """Warm up (unrecorded), then record ``duration_s`` of successful latencies and error count;
    ``on_window("start")`` and ``on_window("end")`` are called around the recorded window."""
    headers = {"Authorization": f"Bearer {api_key}"}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:

        async def worker(until: float, record: bool) -> None:
            nonlocal errors
            while (start := time.perf_counter()) < until:
                try:
                    async with session.get(url) as response:
                        await response.read()
                        good = response.status == 200
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    good = False
                if not record:
                    continue
                if good:
                    latencies.append((time.perf_counter() - start) * 1000)
                else:
                    errors += 1

        if warmup_s > 0:
            until = time.perf_counter() + warmup_s
            await asyncio.gather(*(worker(until, False) for _ in range(concurrency)))
        if on_window:
            on_window("start")
        began = time.perf_counter()
        await asyncio.gather(*(worker(began + duration_s, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
        if on_window:
            on_window("end")
    return LoadResult(concurrency, elapsed, len(latencies), errors, latencies)


async def soak(url: str, api_key: str, concurrency: int, duration_s: float, window_s: float) -> list[LoadResult]:
    """Closed-loop load for ``duration_s``, cut into ``window_s`` windows by each request's end time:
    how throughput and latency move as the broker's topics grow."""
    headers = {"Authorization": f"Bearer {api_key}"}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    windows = max(1, round(duration_s / window_s))
    latencies: list[list[float]] = [[] for _ in range(windows)]
    errors = [0] * windows
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        began = time.perf_counter()
        until = began + windows * window_s

        async def worker() -> None:
            while (start := time.perf_counter()) < until:
                try:
                    async with session.get(url) as response:
                        await response.read()
                        good = response.status == 200
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    good = False
                end = time.perf_counter()
                index = min(windows - 1, int((end - began) / window_s))
                if good:
                    latencies[index].append((end - start) * 1000)
                else:
                    errors[index] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [LoadResult(concurrency, window_s, len(ms), errors[i], ms) for i, ms in enumerate(latencies)]


async def one(url: str, api_key: str) -> float:
    """Latency (ms) of a single request on a fresh connection: what a lone caller sees after idle."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as session:
        start = time.perf_counter()
        async with session.get(url, headers={"Authorization": f"Bearer {api_key}"}) as response:
            await response.read()
        return (time.perf_counter() - start) * 1000
