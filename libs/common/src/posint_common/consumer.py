"""The consumer loop every service uses.

- Offsets are committed (offset + 1) only after the handler's database transaction committed, and
  on partition revocation and shutdown, so a crash redelivers instead of losing.
- Commands and events: the handler runs in one transaction with its inbox row (a redelivered
  message has no second effect) and its outbox rows (emitted messages and the reply); one
  partition's messages are handled in order, partitions in parallel.
- Queries (``read_only=True``): no transaction, no inbox, a batch handled concurrently, the reply
  sent straight to the broker; answering twice is harmless and reads never wait on writes. Their
  batches commit together (``QUERY_COMMIT_INTERVAL_S``), the last one of a burst always.
- Whatever a record carries, it ends handled or dead-lettered (``<topic>.dlq``, through the
  outbox) and the partition moves on. What can never succeed (an unreadable record, an unknown
  type, an invalid payload, a value Postgres refuses, a handler's own validation error) is
  dead-lettered at once; other failures after ``max_attempts`` tries. A dead letter is written
  once: with an inbox row keyed by the message's identity or, for a record without a readable one,
  by its position (topic, partition, offset).
- A sealed message (see posint_common.envelope) is opened here, before anything else; one that
  does not open (no ``TRANSPORT_KEYS``, unknown key id, tampered or moved) is dead-lettered at once,
  its value kept sealed as it came. A reply to a sealed message is sealed too.
- Only an outage (Postgres or the broker away, so not even the dead letter can be written) holds a
  partition: the batch is replayed every second from its first offset, and meanwhile the consumer
  reports not ready, ``posint_consumer_stalled`` is 1 and every try logs an error.
- A command's reply is written to the outbox with the rest of its transaction (one statement with the
  rows the handler ``defer``-red) and, once committed, sent straight to the broker by the consumer;
  the row is deleted when the broker acknowledged it. The relay sends it only if that did not happen
  within ``outbox.DIRECT_GRACE_S`` (the consumer died, the broker was slow): the reply goes out at
  least once either way, and a second copy is harmless (the requester completes once).
- A failed query is answered at once with a 500 sent straight to the requester. One whose dead
  letter cannot be written is logged (``query_failed``), counted (outcome ``failed``) and
  committed past: a query changes nothing and its requester has its answer.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel, ValidationError

from posint_common import inbox, kafka, metrics, outbox, topic_roll
from posint_common.contracts.problem import Problem, problem
from posint_common.contracts.replies import DEAD_LETTER, REPLY, DeadLetter, Reply
from posint_common.contracts.topics import dead_letter
from posint_common.envelope import Envelope, InvalidEnvelope
from posint_common.fetch_pacing import FetchPacer
from posint_common.log import bound, get_logger
from posint_common.vault import KeyRing, Undecryptable

log = get_logger(__name__)

RETRY_BACKOFF_S = (0.05, 0.2, 0.5, 1.0, 2.0)
MAX_BATCHES_IN_FLIGHT = 4
BATCH_RETRY_DELAY_S = 1.0
# A query batch followed by another leaves its offsets to that one's commit, for at most this long:
# under load one commit round trip per interval instead of one per batch.
QUERY_COMMIT_INTERVAL_S = 0.2


@dataclass
class MessageContext:
    """What a handler gets: the message, its transaction's connection, and a way to emit."""

    envelope: Envelope
    conn: asyncpg.Connection
    schema: str
    source: str
    deferred: list[tuple[str, Envelope]] = field(default_factory=list)

    def defer(self, topic: str, envelope: Envelope) -> None:
        """Queue an outbox row the consumer writes after the handler, in one statement with the reply
        (one round trip fewer than ``emit``). Replies among them (no subject) go out straight after
        commit like the command's own. Only for handlers the consumer loop runs."""
        self.deferred.append((topic, envelope))

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


# Failures a retry cannot cure: Postgres refusing a value (class 22, e.g. out of range, NUL in
# text), asyncpg refusing a query argument, a model that does not validate.
PERMANENT_ERRORS = (PermanentError, ValidationError, asyncpg.DataError, asyncpg.exceptions._base.DataError)


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
        roller: topic_roll.RollingReader | None = None,
        transport: KeyRing | None = None,
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
        self.roller = roller
        self.transport = transport  # TRANSPORT_KEYS: opens sealed messages, seals the replies to them
        self.batch_lock = asyncio.Lock()
        self.joined = False
        self.stalled = False
        self._pacer_settings = pacer_settings
        self._pacer: FetchPacer | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._last_batch: asyncio.Task | None = None
        self._room = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
        self._acked: list[str] = []  # replies sent directly and acknowledged, their rows not yet deleted
        self._uncommitted: dict[TopicPartition, int] = {}  # query offsets handled, left to a later batch's commit
        self._committed_at = time.monotonic()
        self._deleting: asyncio.Task | None = None

    async def start(self) -> None:
        if self.roller is None:
            self.consumer.subscribe(list(self.topics), listener=_Revocation(self))
        await self.consumer.start()
        if self.roller is not None:  # topic generations by assignment: no group membership, no rebalance
            await self.roller.start()
            self.joined = True
        self._pacer = FetchPacer(self.consumer, **self._pacer_settings)
        self._set_stalled(False)
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            async with self.batch_lock:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            await self.settle()
        if self._deleting is not None:
            await asyncio.gather(self._deleting, return_exceptions=True)
        if self._pacer:
            self._pacer.close()
        if self.roller is not None:
            await self.roller.stop()
        await self.consumer.stop()

    @property
    def ready(self) -> bool:
        """Joined, running, and not replaying a batch it cannot finish."""
        return self.joined and not self.stalled and self._task is not None and not self._task.done()

    def _set_stalled(self, stalled: bool) -> None:
        self.stalled = stalled
        metrics.CONSUMER_STALLED.labels(self.name).set(int(stalled))

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
                    self._set_stalled(True)
                    log.error("batch_failed_will_retry", consumer=self.name, error=repr(error))
                    metrics.BATCH_RETRIES.labels(self.name).inc()
                    for tp, records in batch.items():
                        self.consumer.seek(tp, records[0].offset)  # the inbox makes the replay harmless
                    await asyncio.sleep(BATCH_RETRY_DELAY_S)
                else:
                    self._set_stalled(False)

    async def _pipeline(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Queries: fetch the next batch while this one is handled; commits still go in fetch order."""
        await self._room.acquire()
        task = asyncio.create_task(self._handle_batch(batch, self._last_batch))
        task.add_done_callback(self._query_batch_done)
        self._last_batch = task

    def _query_batch_done(self, task: asyncio.Task) -> None:
        """Queries are answered one by one; what fails here is the batch's commit (e.g. a rebalance),
        after which its queries may be answered again: harmless, but not to be passed over in silence."""
        self._room.release()
        if not task.cancelled() and task.exception() is not None:
            metrics.QUERY_BATCH_FAILURES.labels(self.name).inc()
            log.error("query_batch_failed", consumer=self.name, error=repr(task.exception()))

    async def _handle_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]], previous: asyncio.Task | None) -> None:
        if self.read_only:
            await asyncio.gather(*(self._handle(record) for records in batch.values() for record in records))
        else:
            await asyncio.gather(*(self._handle_in_order(records) for records in batch.values()))
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        if self.read_only:
            await self._commit_queries(offsets)
        else:
            await self.consumer.commit(offsets)

    async def _commit_queries(self, offsets: dict[TopicPartition, int]) -> None:
        """Queries change nothing, so their commit may wait: a batch with a successor already fetched
        leaves its offsets to it, unless ``QUERY_COMMIT_INTERVAL_S`` passed since the last commit; the
        last batch of a burst always commits (so a stop, a revocation or the requester's 503 check
        finds the group's offsets current). Batches end in fetch order, so offsets only move on."""
        self._uncommitted.update(offsets)
        followed = self._last_batch is not asyncio.current_task()
        if followed and time.monotonic() - self._committed_at < QUERY_COMMIT_INTERVAL_S:
            return
        offsets, self._uncommitted = self._uncommitted, {}
        self._committed_at = time.monotonic()
        try:
            await self.consumer.commit(offsets)
        except Exception:
            self._uncommitted = {**offsets, **self._uncommitted}  # the next commit carries them
            raise

    async def _handle_in_order(self, records: list[ConsumerRecord]) -> None:
        for record in records:
            await self._handle(record)

    async def _handle(self, record: ConsumerRecord) -> None:
        started = time.perf_counter()
        try:
            envelope, unreadable = Envelope.from_record(record.headers, record.value), None
        except InvalidEnvelope as error:
            envelope, unreadable = None, f"invalid envelope: {error}"
        if envelope is not None and envelope.posintsealed is not None:
            try:
                envelope = envelope.opened(self.transport)
            except Undecryptable as error:
                unreadable = f"sealed message does not open: {error}"  # the envelope stays sealed
        known = envelope is not None and envelope.type in self.routes
        type_label = envelope.type if known else "unknown" if envelope else "invalid"  # labels stay bounded
        context = {} if envelope is None else {
            "request_id": envelope.correlationid, "tenant_id": envelope.tenantid,
            "message_type": envelope.type, "message_id": envelope.id,
        }
        with bound(**context):
            try:
                outcome = await self._process(record, envelope, unreadable)
            except Exception as error:
                if not self.read_only or self._stopping:
                    raise  # a command's batch is replayed
                outcome = "failed"  # its requester got a 500 already
                log.error("query_failed", consumer=self.name, topic=record.topic, partition=record.partition,
                          offset=record.offset, error=repr(error)[:500])
        metrics.MESSAGES.labels(self.name, type_label, outcome).inc()
        if known:
            metrics.HANDLER_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def _process(self, record: ConsumerRecord, envelope: Envelope | None, unreadable: str | None) -> str:
        """Handle or dead-letter one record; returns the outcome."""
        if unreadable is not None:
            return await self._dead_letter(record, envelope, unreadable, attempts=1)
        route = self.routes.get(envelope.type)
        if route is None:
            if self.ignore_unknown_types:
                return "ignored"
            return await self._dead_letter(record, envelope, f"unknown message type {envelope.type}", attempts=1)
        return await self._handle_with_retries(record, envelope, route)

    async def _handle_with_retries(self, record: ConsumerRecord, envelope: Envelope, route: Route) -> str:
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await self._apply(envelope, route)
            except PERMANENT_ERRORS as error:
                return await self._dead_letter(record, envelope, _describe(error), attempts=attempt)
            except Exception as error:
                log.warning("handler_failed", consumer=self.name, attempt=attempt, error=repr(error))
                if self._stopping:
                    raise
                if attempt == self.max_attempts:
                    return await self._dead_letter(record, envelope, _describe(error), attempts=attempt)
                await asyncio.sleep(RETRY_BACKOFF_S[min(attempt - 1, len(RETRY_BACKOFF_S) - 1)])
        raise AssertionError("max_attempts must be at least 1")

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
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                if not await inbox.claim(conn, self.name, inbox.message_key(envelope)):
                    return "duplicate"
                context = self._context(envelope, conn)
                reply = await route.handler(context, message)
                rows = context.deferred
                if reply is not None and envelope.replyto:
                    rows.append((envelope.replyto, self._reply_envelope(reply, envelope)))
                direct = [(topic, row) for topic, row in rows if self._sends_directly(topic, row)]
                await outbox.add_many(conn, self.schema, rows, {row.id for _, row in direct})
        for topic, row in direct:  # committed: the reply is durable, send it now rather than at the relay's turn
            await self._send_direct(topic, row)
        return "handled"

    def _sends_directly(self, topic: str, envelope: Envelope) -> bool:
        """A reply (no aggregate: nothing waits behind it) to a topic the producer knows (no wait for
        metadata) and that is not gone; anything else goes through the relay alone."""
        return (envelope.type == REPLY and envelope.subject is None and not topic_roll.gone(topic)
                and self.producer.client.cluster.partitions_for_topic(topic) is not None)

    async def _send_direct(self, topic: str, envelope: Envelope) -> None:
        """Hand the committed reply to the producer; its row is deleted once acknowledged. On any
        failure the row stays and the relay sends it after ``outbox.DIRECT_GRACE_S``."""
        try:
            future = await self.producer.send(topic, envelope.value(), key=envelope.key, headers=envelope.headers())
        except Exception as error:
            log.warning("direct_reply_failed", consumer=self.name, topic=topic, error=repr(error))
            return
        future.add_done_callback(lambda done: self._acknowledged(done, envelope.id))

    def _acknowledged(self, future: asyncio.Future, message_id: str) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # the relay sends it after the grace
        self._acked.append(message_id)
        if self._deleting is None or self._deleting.done():
            self._deleting = asyncio.create_task(self._delete_acked(), name=f"direct-replies-{self.name}")

    async def _delete_acked(self) -> None:
        """Delete the rows of acknowledged replies, as many per statement as have gathered."""
        while self._acked:
            ids, self._acked = self._acked, []
            try:
                await outbox.delete_published(self.pool, ids)
            except Exception as error:  # the relay sends them again after the grace: harmless
                log.warning("direct_reply_rows_not_deleted", consumer=self.name, rows=len(ids), error=repr(error))

    def _context(self, envelope: Envelope, conn: asyncpg.Connection) -> MessageContext:
        return MessageContext(envelope=envelope, conn=conn, schema=self.schema, source=self.source)

    async def _send_reply(self, reply: Reply, cause: Envelope) -> None:
        if topic_roll.gone(cause.replyto):
            log.warning("reply_undeliverable", consumer=self.name, topic=cause.replyto)
            return
        await kafka.send(self.producer, cause.replyto, self._reply_envelope(reply, cause), self.reply_timeout_s)

    def _reply_envelope(self, reply: Reply, cause: Envelope) -> Envelope:
        envelope = Envelope.wrap(reply, source=self.source, type=REPLY, cause=cause)
        return envelope.sealed(self.transport) if cause.was_sealed else envelope

    async def _dead_letter(self, record: ConsumerRecord, envelope: Envelope | None, error: str, attempts: int) -> str:
        """Park the record on ``<topic>.dlq`` via the outbox, once: the inbox row claimed in the same
        transaction is the message's identity, or the record's position when it has none. A waiting
        requester gets a 500: a query's straight away, a command's with the dead letter."""
        if self.read_only and envelope is not None and envelope.replyto:
            await self._reply_failure(envelope)
        letter = DeadLetter(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            consumer=self.name,
            error=_printable(error)[:2_000],
            attempts=attempts,
            original_headers=_original_headers(record.headers),
            original_value=_printable((record.value or b"").decode(errors="replace"))[:100_000],
        )
        dead = Envelope.wrap(letter, source=self.source, type=DEAD_LETTER, cause=envelope, subject=envelope.subject if envelope else None)
        if envelope is not None:
            key = inbox.message_key(envelope)
        else:
            key = inbox.position_key(record.topic, record.partition, record.offset)
        async with self.pool.acquire() as conn, conn.transaction():
            if not await inbox.claim(conn, self.name, key):
                return "duplicate"
            await outbox.add(conn, self.schema, dead_letter(topic_roll.base_of(record.topic)), dead)
            if envelope is not None and envelope.replyto and not self.read_only:
                failure = Reply(status=500, problem=_internal_problem())
                await outbox.add(conn, self.schema, envelope.replyto, self._reply_envelope(failure, envelope))
        metrics.DEAD_LETTERS.labels(self.name).inc()
        log.error("dead_lettered", consumer=self.name, topic=record.topic, partition=record.partition,
                  offset=record.offset, error=letter.error[:500])
        return "dead-lettered"

    async def _reply_failure(self, cause: Envelope) -> None:
        """Best effort: with the broker away nobody can be answered, and the dead letter still matters."""
        try:
            await self._send_reply(Reply(status=500, problem=_internal_problem()), cause)
        except Exception as error:
            log.error("reply_failed", consumer=self.name, error=repr(error))


def _describe(error: Exception) -> str:
    return str(error) if isinstance(error, PermanentError) else f"{type(error).__name__}: {error}"


def _printable(text: str) -> str:
    """Postgres text and jsonb refuse NUL, and a dead letter must always be writable."""
    return text.replace("\x00", "\ufffd")


def _original_headers(headers) -> dict[str, str]:
    """Every header as text: a null value as "", a repeated name as ``name#2``, ``name#3``..."""
    result: dict[str, str] = {}
    for name, raw in headers or ():
        name = _printable(str(name))
        unique, n = name, 1
        while unique in result:
            n += 1
            unique = f"{name}#{n}"
        result[unique] = _printable(bytes(raw or b"").decode(errors="replace"))
    return result


def _internal_problem() -> Problem:
    return problem(500, "internal", "Internal error", "The request could not be processed; it was recorded for investigation.")
