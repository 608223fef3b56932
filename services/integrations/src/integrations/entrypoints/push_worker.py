"""The push worker: a supervised loop that works off ``platform_pushes`` (status updates to the
delivery platforms, bookings in the ledgers). Every ``PUSH_POLL_INTERVAL_MS`` it leases the due
pushes (``FOR UPDATE SKIP LOCKED``: several replicas share the work, each push goes to one) and
makes them concurrently, at most ``PUSH_BATCH`` at once. A worker that dies mid-call leaves its
lease to run out; the push is then tried again (platform status updates are idempotent, bookings
carry their idempotency key)."""
from __future__ import annotations

import asyncio

import asyncpg

from posint_common.log import get_logger

from integrations.adapters import push_repository as pushes
from integrations.service_layer.pushes import Pusher

log = get_logger(__name__)


class PushWorker:
    def __init__(self, pool: asyncpg.Pool, pusher: Pusher, *, poll_interval_s: float, batch: int, lease_s: float) -> None:
        self.pool = pool
        self.pusher = pusher
        self.poll_interval_s = poll_interval_s
        self.batch = batch
        self.lease_s = lease_s
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._loop(), name="push-worker")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                taken = await self.round()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("push_poll_failed", error=repr(error))  # Postgres away: try again next round
                taken = 0
            if taken < self.batch:  # a full batch: more may be due at once
                await asyncio.sleep(self.poll_interval_s)

    async def round(self) -> int:
        async with self.pool.acquire() as conn:
            due = await pushes.take_due(conn, self.batch, self.lease_s)
        results = await asyncio.gather(*(self.pusher.push(self.pool, push) for push in due), return_exceptions=True)
        for push, result in zip(due, results):
            if isinstance(result, Exception):  # its lease runs out and it is tried again
                log.error("platform_push_crashed", push_id=push.id, kind=push.kind, error=repr(result))
        return len(due)
