"""Transactional outbox: messages are rows written in the state change's own transaction; the
relay publishes them to Kafka, woken by NOTIFY on commit, with a periodic sweep for stragglers.

Delivery is at least once (a relay killed after sending but before deleting re-sends the batch);
consumers deduplicate through the inbox. One relay per schema publishes at a time (advisory lock),
in ``seq`` order, so one aggregate's messages keep their order.

A row that cannot be published (topic unknown, message too large, refused by the broker) must not
stop the others: it is retried with backoff, and after ``max_attempts`` tries while the broker was
answering it is parked (``parked_at``) until an operator retries it
(``python -m posint_common.outbox retry --schema S``). Until then the rows of its aggregate wait
behind it, in order; other aggregates move on. A broker outage is not charged to any row.

A row without an aggregate (a reply) may be published by its writer right after commit
(``add_many(direct=...)``): it is written not due before ``DIRECT_GRACE_S`` and deleted by the writer
once acknowledged; only if that did not happen does the relay send it, after the grace.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

import asyncpg
from aiokafka import AIOKafkaProducer

from posint_common import metrics, topic_roll
from posint_common.db import checked_schema
from posint_common.envelope import Envelope
from posint_common.log import get_logger
from posint_common.waits import wait_and_clear

log = get_logger(__name__)

LISTEN_RETRY_S = 1.0  # re-open a lost LISTEN connection at least this often
RETRY_BACKOFF_CAP_S = 60.0
PROBE_TIMEOUT_S = 5.0
# NOTIFY payloads: empty = new rows; anything else = the set of parked rows changed.
PARKED_CHANGED = "parked"
AGE_REFRESH_S = 1.0  # how often the relay measures its oldest waiting row (one index lookup)
OLDEST_AGE = """
SELECT coalesce(extract(epoch FROM now() - created_at), 0)::float8 FROM outbox
WHERE parked_at IS NULL ORDER BY seq LIMIT 1
"""

# Due rows not behind a held row of their aggregate (one that failed: waiting for its retry, or
# parked). A retried row thus goes alone; the rest of its aggregate follows once it is through.
# At most $1 rows and, past the first, no row starting beyond $2 bytes of envelopes: a burst of large
# orders (a record may take 4 MiB) must not hold hundreds of MB in the relay. ``due`` is how many rows
# the count alone allowed, so the caller knows whether the batch was cut.
SELECT_DUE = """
SELECT seq, topic, aggregateid, envelope, retried, due FROM (
  SELECT *, sum(size) OVER (ORDER BY seq) - size AS before, count(*) OVER () AS due FROM (
    SELECT seq, topic, aggregateid, envelope, retry_at IS NOT NULL AS retried, octet_length(envelope::text) AS size
    FROM outbox o
    WHERE o.parked_at IS NULL AND (o.retry_at IS NULL OR o.retry_at <= now())
      AND NOT EXISTS (
        SELECT 1 FROM outbox h
        WHERE h.aggregateid = o.aggregateid AND h.seq < o.seq AND (h.retry_at IS NOT NULL OR h.parked_at IS NOT NULL))
    ORDER BY seq LIMIT $1) AS limited) AS sized
WHERE before < $2
ORDER BY seq
"""

CHARGE_FAILURES = """
UPDATE outbox SET attempts = attempts + 1, last_error = e.error,
    parked_at = CASE WHEN attempts + 1 >= $3 THEN now() END,
    retry_at = CASE WHEN attempts + 1 >= $3 THEN NULL
                    ELSE now() + least($4 * 2 ^ attempts, $5) * interval '1 second' END
FROM unnest($1::bigint[], $2::text[]) AS e(seq, error)
WHERE outbox.seq = e.seq
RETURNING outbox.seq, outbox.id, outbox.topic, outbox.aggregateid, outbox.attempts, outbox.last_error,
          outbox.parked_at IS NOT NULL AS parked
"""


def channel(schema: str) -> str:
    return f"{checked_schema(schema)}_outbox"


# The rows and the relay's wake-up in one round trip (NOTIFY is delivered at commit, and once per
# transaction however often it is sent); rows keep their given order (seq). Rows the writer
# publishes itself right after commit (``direct``) are not due before ``retry_at`` (now + the grace),
# so the relay leaves them to the writer, which deletes them once the broker acknowledged; a writer
# that crashed or failed leaves them to the relay. The relay is woken only when some row is its to
# publish now.
ADD_ROWS = """
WITH added AS (
  INSERT INTO outbox (id, topic, aggregateid, type, envelope, retry_at)
  SELECT r.id, r.topic, r.aggregateid, r.type, r.envelope::json,
         CASE WHEN r.direct THEN now() + $7::float8 * interval '1 second' END
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[]) WITH ORDINALITY
       AS r(id, topic, aggregateid, type, envelope, direct, n)
  ORDER BY r.n
  RETURNING 1)
SELECT pg_notify($8, '') FROM (SELECT count(*) FROM added) AS done WHERE $9::bool
"""
# How long a row its writer publishes itself is left to it before the relay sends it anyway (the
# writer died or the broker did not acknowledge in time). Only rows without an aggregate (replies)
# are written so: they hold no other row back, and a second copy of a reply is harmless.
DIRECT_GRACE_S = 1.0
DELETE_PUBLISHED = "DELETE FROM outbox WHERE id = ANY($1::text[])"


async def add(conn: asyncpg.Connection, schema: str, topic: str, envelope: Envelope) -> None:
    """Queue ``envelope`` for ``topic``; must run inside the caller's transaction."""
    await add_many(conn, schema, [(topic, envelope)])


async def add_many(conn: asyncpg.Connection, schema: str, rows: list[tuple[str, Envelope]],
                   direct: frozenset[str] | set[str] = frozenset()) -> None:
    """Queue several ``(topic, envelope)`` in this order, in one statement; inside the caller's transaction.

    ``direct``: ids of rows (without a subject) the caller publishes itself after commit and then
    deletes (``delete_published``); the relay sends them only after ``DIRECT_GRACE_S``."""
    if not rows:
        return
    columns = (
        [envelope.id for _, envelope in rows],
        [topic for topic, _ in rows],
        [envelope.subject for _, envelope in rows],
        [envelope.type for _, envelope in rows],
        [envelope.model_dump_json() for _, envelope in rows],
    )
    flags = [envelope.id in direct and envelope.subject is None for _, envelope in rows]
    await conn.execute(ADD_ROWS, *columns, flags, DIRECT_GRACE_S, channel(schema), not all(flags))


async def delete_published(pool: asyncpg.Pool, ids: list[str]) -> None:
    """Rows their writer published itself (``add_many(direct=...)``), acknowledged: the relay has nothing left to do."""
    await pool.execute(DELETE_PUBLISHED, ids)


class OutboxRelay:
    def __init__(
        self,
        *,
        dsn: str,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        batch_size: int = 200,
        batch_bytes: int = 16 * 1024 * 1024,
        sweep_interval_s: float = 1.0,
        send_timeout_s: float = 10.0,
        max_attempts: int = 10,
        retry_backoff_s: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._producer = producer
        self._schema = checked_schema(schema)
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._cut = False  # the last batch left due rows behind (by count or by bytes)
        self._sweep_interval_s = sweep_interval_s
        self._send_timeout_s = send_timeout_s
        self._max_attempts = max_attempts
        self._retry_backoff_s = retry_backoff_s
        self._wake = asyncio.Event()
        self._recount = True
        self._age_measured_at = float("-inf")
        self._task: asyncio.Task | None = None
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        metrics.OUTBOX_OLDEST_AGE.labels(self._schema).set(0)
        await self._listen()
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._listener is not None:
            await self._listener.close(timeout=5)

    def wake(self) -> None:
        self._wake.set()

    def _on_notify(self, _conn, _pid, _channel, payload: str) -> None:
        if payload:
            self._recount = True
        self._wake.set()

    def _on_listener_lost(self, _conn) -> None:
        self._wake.set()  # reconnect now, not at the next sweep

    def _listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def _listen(self) -> None:
        listener = await asyncpg.connect(self._dsn, timeout=10)
        try:
            await listener.add_listener(channel(self._schema), self._on_notify)
        except BaseException:
            listener.terminate()
            raise
        listener.add_termination_listener(self._on_listener_lost)
        self._listener = listener
        self._recount = True  # parked rows may have changed while nobody listened

    async def _run(self) -> None:
        while True:
            timeout = self._sweep_interval_s if self._listening() else min(self._sweep_interval_s, LISTEN_RETRY_S)
            await wait_and_clear(self._wake, timeout)
            try:
                if not self._listening():
                    await self._relisten()
                await self._measure_age()
                while await self.publish_batch() and self._cut:
                    pass
                if self._recount:
                    await self.refresh_parked()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # broker or database away: the sweep retries
                metrics.OUTBOX_FAILURES.labels(self._schema).inc()
                log.warning("outbox_relay_failed", schema=self._schema, error=repr(error))

    async def _relisten(self) -> None:
        """Re-open LISTEN after the connection was lost; until then the sweep alone finds rows."""
        if self._listener is not None:
            self._listener.terminate()
            self._listener = None
            log.warning("outbox_listener_lost", schema=self._schema)
        try:
            await self._listen()
        except Exception as error:
            log.warning("outbox_listen_failed", schema=self._schema, error=repr(error))
            return
        log.info("outbox_listener_restored", schema=self._schema)

    async def _measure_age(self) -> None:
        """How long the oldest row has waited, at most once a second: a relay that cannot publish
        (broker refusing, rows retried) shows as a growing age before anything is parked."""
        now = asyncio.get_running_loop().time()
        if now - self._age_measured_at < AGE_REFRESH_S:
            return
        self._age_measured_at = now
        age = await self._pool.fetchval(OLDEST_AGE)
        metrics.OUTBOX_OLDEST_AGE.labels(self._schema).set(age or 0.0)

    async def refresh_parked(self) -> int:
        self._recount = False
        parked = await self._pool.fetchval("SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL")
        metrics.OUTBOX_PARKED.labels(self._schema).set(parked)
        return parked

    async def publish_batch(self) -> int:
        """Publish and delete up to ``batch_size`` due rows (and about ``batch_bytes`` of them);
        returns how many were published."""
        self._cut = False
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", f"posint.outbox.{self._schema}")
            if not locked:
                return 0
            rows = await conn.fetch(SELECT_DUE, self._batch_size, self._batch_bytes)
            if not rows:
                return 0
            self._cut = len(rows) < rows[0]["due"] or rows[0]["due"] == self._batch_size
            published, errors = await self._send(rows)
            if published:
                await conn.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])", published)
                if any(row["retried"] and row["seq"] in published for row in rows):
                    self._wake.set()  # the rows that waited behind it are free now
            if errors:
                await self._record_failures(conn, errors, charged=bool(published) or await self._broker_answers())
        metrics.OUTBOX_PUBLISHED.labels(self._schema).inc(len(published))
        return len(published)

    async def _send(self, rows: list) -> tuple[list[int], dict[int, str]]:
        """Hand ``rows`` to the producer in order and wait for the acks once.

        Returns the rows to delete (acknowledged, and no earlier row of their aggregate failed)
        and the errors of the rows that failed. Rows behind a failed row of their aggregate are not
        handed over if the failure is known in time, and are kept either way. A row whose topic has
        no metadata yet is handed over after the others (with the rest of its aggregate), so the
        producer's wait for that metadata does not hold the others back.
        """
        futures: dict[int, asyncio.Future] = {}
        errors: dict[int, str] = {}
        failed: set[str] = set()
        later: list = []
        stalled: set[str] = set()
        known = self._producer.client.cluster.partitions_for_topic
        for row in rows:
            key = row["aggregateid"]
            if key in failed:
                continue
            if topic_roll.gone(row["topic"]):  # a reply to a gateway generation deleted long ago
                log.warning("outbox_row_undeliverable", schema=self._schema, seq=row["seq"], topic=row["topic"])
                futures[row["seq"]] = _delivered()
                continue
            if key in stalled or known(row["topic"]) is None:
                later.append(row)
                if key is not None:
                    stalled.add(key)
                continue
            await self._hand_over(row, futures, errors, failed)
        for row in later:
            if row["aggregateid"] not in failed:
                await self._hand_over(row, futures, errors, failed)
        if futures:
            await asyncio.wait(futures.values(), timeout=self._send_timeout_s)
        published: list[int] = []
        held: set[str] = set()
        for row in rows:
            seq, key = row["seq"], row["aggregateid"]
            if key is not None and key in held:
                continue
            future = futures.get(seq)
            if seq not in errors and future is not None:
                if not future.done():
                    errors[seq] = f"no acknowledgement within {self._send_timeout_s}s"
                    future.add_done_callback(_retrieve)  # it may still fail later; nobody waits then
                elif future.exception() is not None:
                    errors[seq] = repr(future.exception())
                else:
                    published.append(seq)
            if seq in errors and key is not None:
                held.add(key)
        return published, errors

    async def _hand_over(self, row, futures: dict, errors: dict, failed: set) -> None:
        try:
            envelope = Envelope.model_validate_json(row["envelope"])
            futures[row["seq"]] = await self._producer.send(
                row["topic"], envelope.value(), key=envelope.key, headers=envelope.headers()
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # unreadable row, message too large, topic unknown...
            errors[row["seq"]] = repr(error)
            if row["aggregateid"] is not None:
                failed.add(row["aggregateid"])

    async def _broker_answers(self) -> bool:
        """Whether the broker is up: failures during an outage are not the rows' fault."""
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), PROBE_TIMEOUT_S)
            return True
        except asyncio.CancelledError:
            raise
        except Exception:
            return False

    async def _record_failures(self, conn: asyncpg.Connection, errors: dict[int, str], *, charged: bool) -> None:
        metrics.OUTBOX_FAILURES.labels(self._schema).inc()
        seqs, messages = list(errors), [message[:2000] for message in errors.values()]
        if not charged:
            await conn.execute(
                "UPDATE outbox SET last_error = e.error FROM unnest($1::bigint[], $2::text[]) AS e(seq, error)"
                " WHERE outbox.seq = e.seq",
                seqs, messages,
            )
            log.warning("outbox_relay_failed", schema=self._schema, rows=len(seqs), error=messages[0],
                        reason="broker not answering; not counted as an attempt")
            return
        rows = await conn.fetch(
            CHARGE_FAILURES, seqs, messages, self._max_attempts, self._retry_backoff_s, RETRY_BACKOFF_CAP_S
        )
        for row in rows:
            fields = dict(schema=self._schema, seq=row["seq"], id=row["id"], topic=row["topic"],
                          aggregateid=row["aggregateid"], attempts=row["attempts"], error=row["last_error"])
            if row["parked"]:
                log.error("outbox_row_parked", **fields,
                          retry=f"python -m posint_common.outbox retry --schema {self._schema} --id {row['id']}")
            else:
                log.warning("outbox_row_failed", **fields)
        if any(row["parked"] for row in rows):
            await conn.execute("SELECT pg_notify($1, $2)", channel(self._schema), PARKED_CHANGED)


def _delivered() -> asyncio.Future:
    """A future that is already done: the row counts as published and is deleted."""
    future = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


# Operator CLI: python -m posint_common.outbox {list,retry} --schema S [--id ID]; DSN from DATABASE_URL.

async def list_held(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT seq, id, topic, aggregateid, type, attempts, last_error, retry_at, parked_at FROM outbox"
        " WHERE retry_at IS NOT NULL OR parked_at IS NOT NULL ORDER BY seq"
    )


async def retry(conn: asyncpg.Connection, schema: str, message_id: str | None = None) -> int:
    """Make held rows (parked or waiting for their next try) due now, with fresh attempts; wakes the relay."""
    async with conn.transaction():
        status = await conn.execute(
            "UPDATE outbox SET attempts = 0, retry_at = NULL, parked_at = NULL"
            " WHERE (retry_at IS NOT NULL OR parked_at IS NOT NULL) AND ($1::text IS NULL OR id = $1)",
            message_id,
        )
        await conn.execute("SELECT pg_notify($1, $2)", channel(schema), PARKED_CHANGED)
    return int(status.split()[-1])


async def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m posint_common.outbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("list", "retry"), help="list held rows, or make them due now")
    parser.add_argument("--schema", required=True, help="the service's schema, e.g. integrations")
    parser.add_argument("--id", dest="message_id", help="only the row with this message id (ce_id)")
    args = parser.parse_args(argv)
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    schema = checked_schema(args.schema)
    conn = await asyncpg.connect(dsn, timeout=10, server_settings={"search_path": schema})
    try:
        if args.command == "list":
            for row in await list_held(conn):
                print(" ".join(f"{name}={row[name]}" for name in row.keys()))
            return 0
        count = await retry(conn, schema, args.message_id)
        print(f"{count} row(s) due again in {schema}.outbox")
        return 0 if count or args.message_id is None else 1
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(_cli(sys.argv[1:])))
