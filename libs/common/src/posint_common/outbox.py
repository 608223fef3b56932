"""Transactional outbox: messages are rows written in the state change's own transaction; the
relay publishes them to Kafka, woken by NOTIFY on commit, with a periodic sweep for stragglers.

Delivery is at least once (a relay killed after sending but before deleting re-sends the batch);
consumers deduplicate through the inbox. One relay per schema publishes at a time (advisory lock),
in ``seq`` order, so one aggregate's messages keep their order.
"""
from __future__ import annotations

import asyncio
import json

import asyncpg
from aiokafka import AIOKafkaProducer

from posint_common import metrics
from posint_common.db import checked_schema
from posint_common.envelope import Envelope
from posint_common.log import get_logger

log = get_logger(__name__)


def channel(schema: str) -> str:
    return f"{checked_schema(schema)}_outbox"


async def add(conn: asyncpg.Connection, schema: str, topic: str, envelope: Envelope) -> None:
    """Queue ``envelope`` for ``topic``; must run inside the caller's transaction."""
    await conn.execute(
        "INSERT INTO outbox (id, topic, aggregateid, type, envelope) VALUES ($1, $2, $3, $4, $5)",
        envelope.id,
        topic,
        envelope.subject,
        envelope.type,
        envelope.model_dump_json(),
    )
    await conn.execute("SELECT pg_notify($1, '')", channel(schema))


class OutboxRelay:
    def __init__(
        self,
        *,
        dsn: str,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        batch_size: int = 200,
        sweep_interval_s: float = 1.0,
        send_timeout_s: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._producer = producer
        self._schema = checked_schema(schema)
        self._batch_size = batch_size
        self._sweep_interval_s = sweep_interval_s
        self._send_timeout_s = send_timeout_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        self._listener = await asyncpg.connect(self._dsn, timeout=10)
        await self._listener.add_listener(channel(self._schema), self._on_notify)
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._listener is not None:
            await self._listener.close(timeout=5)

    def wake(self) -> None:
        self._wake.set()

    def _on_notify(self, *_args) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._sweep_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                while await self.publish_batch() == self._batch_size:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as error:  # broker or database away: the sweep retries
                metrics.OUTBOX_FAILURES.labels(self._schema).inc()
                log.warning("outbox_relay_failed", schema=self._schema, error=repr(error))

    async def publish_batch(self) -> int:
        """Publish and delete up to ``batch_size`` rows; returns how many were published."""
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", f"posint.outbox.{self._schema}")
            if not locked:
                return 0
            rows = await conn.fetch(
                "SELECT seq, topic, envelope FROM outbox ORDER BY seq LIMIT $1", self._batch_size
            )
            if not rows:
                return 0
            pending = []
            for row in rows:
                envelope = Envelope.model_validate(json.loads(row["envelope"]))
                pending.append(
                    await self._producer.send(row["topic"], envelope.value(), key=envelope.key, headers=envelope.headers())
                )
            await asyncio.wait_for(asyncio.gather(*pending), self._send_timeout_s)
            await conn.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])", [row["seq"] for row in rows])
        metrics.OUTBOX_PUBLISHED.labels(self._schema).inc(len(rows))
        return len(rows)
