"""The consumer loop every service uses.

- Offsets are committed (offset + 1) only after the handler's database transaction committed, and
  on partition revocation and shutdown, so a crash redelivers instead of losing.
- Commands and events: the handler runs in one transaction with its inbox row (a redelivered
  message has no second effect) and its outbox rows (emitted messages and the reply); one
  partition's messages are handled in order, partitions in parallel.
- Queries (``read_only=True``): no transaction, no inbox, a batch handled concurrently, the reply
  sent straight to the broker; answering twice is harmless and reads never wait on writes.
- A message that keeps failing is retried ``max_attempts`` times, then written to ``<topic>.dlq``
  through the outbox, together with its inbox row, and the partition moves on.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel

from posint_common import inbox, kafka, metrics, outbox
from posint_common.contracts.problem import Problem, problem
from posint_common.contracts.replies import DEAD_LETTER, REPLY, DeadLetter, Reply
from posint_common.contracts.topics import dead_letter
from posint_common.envelope import Envelope, InvalidEnvelope
from posint_common.fetch_pacing import FetchPacer
from posint_common.log import get_logger

log = get_logger(__name__)

RETRY_BACKOFF_S = (0.05, 0.2, 0.5, 1.0, 2.0)
MAX_BATCHES_IN_FLIGHT = 4
BATCH_RETRY_DELAY_S = 1.0


@dataclass
class MessageContext:
    """What a handler gets: the message, its transaction's connection, and a way to emit."""

    envelope: Envelope
    conn: asyncpg.Connection
    schema: str
    source: str

    async def emit(self, topic: str, type: str, message: BaseModel, *, subject: str | None = None) -> Envelope:
        """Queue an event or command in the outbox, inside the handler's transaction."""
        envelope = Envelope.wrap(message, source=self.source, type=type, cause=self.envelope, subject=subject)
        await outbox.add(self.conn, self.schema, topic, envelope)
        return envelope


Handler = Callable[[MessageContext, BaseModel], Awaitable[Reply | None]]


@dataclass(frozen=True)
class Route:
    model: type[BaseModel]
    handler: Handler


def observe_lag(consumer: str, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
    now_ms = time.time() * 1000
    histogram = metrics.RECORD_LAG.labels(consumer)
    for records in batch.values():
        for record in records:
            histogram.observe(max(0.0, now_ms - record.timestamp) / 1000)


class PermanentError(Exception):
    """A message that can never succeed (unknown type, invalid payload): dead-letter at once."""


class _Revocation(ConsumerRebalanceListener):
    def __init__(self, loop: "ConsumerLoop") -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked) -> None:
        await self._loop.settle()  # let the work in hand finish and commit first

    async def on_partitions_assigned(self, assigned) -> None:
        self._loop.joined = True
        log.info("partitions_assigned", consumer=self._loop.name, partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))


class ConsumerLoop:
    def __init__(
        self,
        *,
        name: str,
        topics: tuple[str, ...],
        routes: dict[str, Route],
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        pool: asyncpg.Pool,
        schema: str,
        source: str,
        pacer_settings: dict,
        read_only: bool = False,
        ignore_unknown_types: bool = False,
        max_attempts: int = 5,
        reply_timeout_s: float = 5.0,
    ) -> None:
        self.name = name
        self.topics = topics
        self.routes = routes
        self.consumer = consumer
        self.producer = producer
        self.pool = pool
        self.schema = schema
        self.source = source
        self.read_only = read_only
        self.ignore_unknown_types = ignore_unknown_types
        self.max_attempts = max_attempts
        self.reply_timeout_s = reply_timeout_s
        self.batch_lock = asyncio.Lock()
        self.joined = False
        self._pacer_settings = pacer_settings
        self._pacer: FetchPacer | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._last_batch: asyncio.Task | None = None
        self._room = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)

    async def start(self) -> None:
        self.consumer.subscribe(list(self.topics), listener=_Revocation(self))
        await self.consumer.start()
        self._pacer = FetchPacer(self.consumer, **self._pacer_settings)
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            async with self.batch_lock:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            await self.settle()
        if self._pacer:
            self._pacer.close()
        await self.consumer.stop()

    @property
    def ready(self) -> bool:
        return self.joined and self._task is not None and not self._task.done()

    async def settle(self) -> None:
        """Wait until every fetched message is handled and its offset committed."""
        async with self.batch_lock:
            if self._last_batch is not None:
                await asyncio.gather(self._last_batch, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping:
            batch = await self.consumer.getmany(timeout_ms=1_000)
            if not batch:
                continue
            self._pacer.activity()
            observe_lag(self.name, batch)
            async with self.batch_lock:
                if self.read_only:
                    await self._pipeline(batch)
                    continue
                try:
                    await self._handle_batch(batch, None)
                except Exception as error:  # e.g. Postgres or the broker away: nothing may be skipped
                    log.error("batch_failed_will_retry", consumer=self.name, error=repr(error))
                    metrics.BATCH_RETRIES.labels(self.name).inc()
                    for tp, records in batch.items():
                        self.consumer.seek(tp, records[0].offset)  # the inbox makes the replay harmless
                    await asyncio.sleep(BATCH_RETRY_DELAY_S)

    async def _pipeline(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Queries: fetch the next batch while this one is handled; commits still go in fetch order."""
        await self._room.acquire()
        task = asyncio.create_task(self._handle_batch(batch, self._last_batch))
        task.add_done_callback(lambda _task: self._room.release())
        self._last_batch = task

    async def _handle_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]], previous: asyncio.Task | None) -> None:
        if self.read_only:
            await asyncio.gather(*(self._handle(record) for records in batch.values() for record in records))
        else:
            await asyncio.gather(*(self._handle_in_order(records) for records in batch.values()))
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await self.consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})

    async def _handle_in_order(self, records: list[ConsumerRecord]) -> None:
        for record in records:
            await self._handle(record)

    async def _handle(self, record: ConsumerRecord) -> None:
        started = time.perf_counter()
        envelope = None
        try:
            envelope = Envelope.from_record(record.headers, record.value)
        except InvalidEnvelope as error:
            await self._dead_letter(record, None, f"invalid envelope: {error}", attempts=1)
            return
        with structlog.contextvars.bound_contextvars(
            request_id=envelope.correlationid, tenant=envelope.tenantid, message_type=envelope.type, message_id=envelope.id
        ):
            route = self.routes.get(envelope.type)
            if route is None:
                outcome = "ignored" if self.ignore_unknown_types else "dead-lettered"
                if not self.ignore_unknown_types:
                    await self._dead_letter(record, envelope, f"unknown message type {envelope.type}", attempts=1)
                metrics.MESSAGES.labels(self.name, envelope.type, outcome).inc()
                return
            await self._handle_with_retries(record, envelope, route)
            metrics.HANDLER_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def _handle_with_retries(self, record: ConsumerRecord, envelope: Envelope, route: Route) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                outcome = await self._apply(envelope, route)
                metrics.MESSAGES.labels(self.name, envelope.type, outcome).inc()
                return
            except PermanentError as error:
                await self._dead_letter(record, envelope, str(error), attempts=attempt)
                return
            except Exception as error:
                log.warning("handler_failed", consumer=self.name, attempt=attempt, error=repr(error))
                if attempt == self.max_attempts or self._stopping:
                    if self._stopping:
                        raise
                    await self._dead_letter(record, envelope, repr(error), attempts=attempt)
                    return
                await asyncio.sleep(RETRY_BACKOFF_S[min(attempt - 1, len(RETRY_BACKOFF_S) - 1)])

    async def _apply(self, envelope: Envelope, route: Route) -> str:
        try:
            message = envelope.parse(route.model)
        except ValueError as error:
            raise PermanentError(f"invalid payload for {envelope.type}: {error}") from error
        if self.read_only:
            async with self.pool.acquire() as conn:
                reply = await route.handler(self._context(envelope, conn), message)
            if reply is not None and envelope.replyto:
                await self._send_reply(reply, envelope)
            return "handled"
        async with self.pool.acquire() as conn, conn.transaction():
            if not await inbox.claim(conn, self.name, envelope):
                return "duplicate"
            reply = await route.handler(self._context(envelope, conn), message)
            if reply is not None and envelope.replyto:
                await outbox.add(conn, self.schema, envelope.replyto, self._reply_envelope(reply, envelope))
        return "handled"

    def _context(self, envelope: Envelope, conn: asyncpg.Connection) -> MessageContext:
        return MessageContext(envelope=envelope, conn=conn, schema=self.schema, source=self.source)

    async def _send_reply(self, reply: Reply, cause: Envelope) -> None:
        await kafka.send(self.producer, cause.replyto, self._reply_envelope(reply, cause), self.reply_timeout_s)

    def _reply_envelope(self, reply: Reply, cause: Envelope) -> Envelope:
        return Envelope.wrap(reply, source=self.source, type=REPLY, cause=cause)

    async def _dead_letter(self, record: ConsumerRecord, envelope: Envelope | None, error: str, attempts: int) -> None:
        """Park the record on ``<topic>.dlq`` via the outbox, marking it processed in the same transaction."""
        letter = DeadLetter(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            consumer=self.name,
            error=error[:2_000],
            attempts=attempts,
            original_headers={k: v.decode(errors="replace") for k, v in (record.headers or ())},
            original_value=(record.value or b"").decode(errors="replace")[:100_000],
        )
        dead = Envelope.wrap(letter, source=self.source, type=DEAD_LETTER, cause=envelope, subject=envelope.subject if envelope else None)
        async with self.pool.acquire() as conn, conn.transaction():
            if envelope is not None and not self.read_only and not await inbox.claim(conn, self.name, envelope):
                return
            await outbox.add(conn, self.schema, dead_letter(record.topic), dead)
            if envelope is not None and envelope.replyto:
                failure = Reply(status=500, problem=_internal_problem())
                await outbox.add(conn, self.schema, envelope.replyto, self._reply_envelope(failure, envelope))
        metrics.DEAD_LETTERS.labels(self.name).inc()
        log.error("dead_lettered", consumer=self.name, topic=record.topic, offset=record.offset, error=error[:500])


def _internal_problem() -> Problem:
    return problem(500, "internal", "Internal error", "The request could not be processed; it was recorded for investigation.")
