"""Retention: expired rows are deleted in the background so tables do not grow without bound. The
inbox's processed-message rows here (published outbox rows need no pruning: the relay deletes them
at once); a service prunes its own tables with the same ``Pruner`` and ``PruneStep``s of its own
(the webhook dispatcher: delivered and failed messages with their attempts).

The trade-off: a message redelivered after its inbox row was pruned is applied again, so the
retention must exceed the longest possible redelivery (consumer lag, offset resets, replays).
Rows go in small batches, oldest first (index on ``processed_at``), each batch its own short
transaction under an advisory lock, so replicas of a service don't do the same work twice.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
from prometheus_client import Counter

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


@dataclass(frozen=True)
class PruneStep:
    """One kind of expired row: ``sql`` deletes at most ``$2`` rows older than ``$1`` hours (oldest
    first, on an index) and its status says how many; ``counter`` (a metric) counts them."""

    name: str
    sql: str
    retention_hours: float
    counter: Counter | None = None


class Pruner:
    """Runs its steps every ``interval_s`` (a task the service supervises), each batch a short
    transaction under the advisory lock ``lock``, so replicas do not prune the same rows at once."""

    def __init__(self, *, pool: asyncpg.Pool, schema: str, name: str, lock: str, steps: list[PruneStep],
                 interval_s: float, batch_size: int = 1000) -> None:
        self._pool = pool
        self._schema = checked_schema(schema)
        self._name = name
        self._lock = lock
        self._steps = steps
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._task: asyncio.Task | None = None

    @property
    def task(self) -> asyncio.Task | None:
        return self._task

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self._name}-pruner-{self._schema}")

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
                log.warning(f"{self._name}_prune_failed", schema=self._schema, error=repr(error))
            await asyncio.sleep(self._interval_s)

    async def prune(self) -> int | None:
        """Delete expired rows of every step; ``None`` when another replica is pruning them now."""
        total = 0
        for step in self._steps:
            deleted = await self._prune_step(step)
            if deleted is None:
                return total or None
            total += deleted
        return total

    async def _prune_step(self, step: PruneStep) -> int | None:
        total = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", self._lock):
                    return total or None
                status = await conn.execute(step.sql, float(step.retention_hours), self._batch_size)
            deleted = int(status.split()[-1])
            total += deleted
            if step.counter is not None:
                step.counter.inc(deleted)
            if deleted < self._batch_size:
                break
        if total:
            log.info(f"{step.name}_pruned", schema=self._schema, rows=total, retention_hours=step.retention_hours)
        return total


class InboxPruner(Pruner):
    def __init__(
        self, *, pool: asyncpg.Pool, schema: str, retention_hours: float, interval_s: float, batch_size: int = 1000
    ) -> None:
        super().__init__(
            pool=pool, schema=schema, name="inbox", lock=f"posint.prune.{schema}", interval_s=interval_s,
            batch_size=batch_size,
            steps=[PruneStep("inbox", PRUNE_BATCH, retention_hours, metrics.INBOX_PRUNED.labels(schema))],
        )
