"""Inbox retention: processed-message rows are deleted once older than the retention, so the table
does not grow without bound (published outbox rows need no pruning: the relay deletes them at once).

The trade-off: a message redelivered after its inbox row was pruned is applied again, so the
retention must exceed the longest possible redelivery (consumer lag, offset resets, replays).
Rows go in small batches, oldest first (index on ``processed_at``), each batch its own short
transaction under an advisory lock, so replicas of a service don't do the same work twice.
"""
from __future__ import annotations

import asyncio

import asyncpg

from posint_common import metrics
from posint_common.db import checked_schema
from posint_common.log import get_logger

log = get_logger(__name__)

PRUNE_BATCH = """
WITH old AS (
    SELECT consumer, message_id FROM inbox
    WHERE processed_at < now() - $1::float8 * interval '1 hour'
    ORDER BY processed_at LIMIT $2)
DELETE FROM inbox USING old WHERE inbox.consumer = old.consumer AND inbox.message_id = old.message_id
"""


class InboxPruner:
    def __init__(
        self, *, pool: asyncpg.Pool, schema: str, retention_hours: float, interval_s: float, batch_size: int = 1000
    ) -> None:
        self._pool = pool
        self._schema = checked_schema(schema)
        self._retention_hours = retention_hours
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"inbox-pruner-{self._schema}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Postgres away: the next run catches up
                log.warning("inbox_prune_failed", schema=self._schema, error=repr(error))
            await asyncio.sleep(self._interval_s)

    async def prune(self) -> int | None:
        """Delete expired inbox rows; ``None`` when another replica is pruning this schema now."""
        total = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", f"posint.prune.{self._schema}"):
                    return total or None
                status = await conn.execute(PRUNE_BATCH, float(self._retention_hours), self._batch_size)
            deleted = int(status.split()[-1])
            total += deleted
            metrics.INBOX_PRUNED.labels(self._schema).inc(deleted)
            if deleted < self._batch_size:
                break
        if total:
            log.info("inbox_pruned", schema=self._schema, rows=total, retention_hours=self._retention_hours)
        return total
