"""Request/reply over Kafka: send a command or query carrying a reply address, wait for the reply.

One mechanism for every requester (the gateway; the webhook dispatcher asking the integrations
service about an integration it has not learnt yet): each kind has its own reply topic
(``gateway.replies``, ``webhooks.replies``). Every instance reads all partitions of it from the end
(no consumer group) and completes the pending request whose id is the reply's ``causationid``;
replies for other instances are ignored. With ``KAFKA_ROLL_TOPICS`` each instance reads its own
reply generations ``<reply topic>.<instance>.g<ms>`` instead (see posint_common.topic_roll).

A request that carries secrets (``sealed=True``) is sealed with ``TRANSPORT_KEYS`` before it is
sent, and so is the service's reply to it; replies are opened here (see posint_common.envelope).

A late reply is told apart: the answering group never consumed the request (the service is down:
``ServiceUnavailable``) or took it and stayed silent (``ReplyTimeout``).
"""
from __future__ import annotations

import asyncio
import uuid
from collections import deque

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import BaseModel, ValidationError

from posint_common import kafka, metrics, topic_roll
from posint_common.contracts.replies import REPLY, Reply
from posint_common.contracts.topics import ANSWERED_BY
from posint_common.consumer import observe_lag
from posint_common.envelope import Envelope, InvalidEnvelope, TransportKeyRing
from posint_common.fetch_pacing import FetchPacer
from posint_common.log import get_logger
from posint_common.runtime import pacer_settings
from posint_common.settings import ServiceSettings
from posint_common.vault import Undecryptable

log = get_logger(__name__)

# Reply deadlines are checked this often by one timer, rather than one timer per request (a timer
# per request was ~5% of the gateway's CPU under load): a request times out up to this much late.
EXPIRY_TICK_S = 0.05


class BrokerUnavailable(Exception):
    """The command could not be handed to the broker in time."""


class ReplyTimeout(Exception):
    """The owning service took the request but did not answer within the deadline."""


class ServiceUnavailable(Exception):
    """The owning service did not even consume the request within the deadline."""


class Overloaded(Exception):
    """As many requests wait for a reply as this requester may hold; refused rather than queued."""


class Requester:
    """``source`` signs the requests (``posint/<service>``), ``reply_topic`` is this kind of
    requester's reply topic, ``client_id`` names its reply consumer (and its lag metric)."""

    def __init__(
        self, settings: ServiceSettings, producer: AIOKafkaProducer, *, source: str, reply_topic: str, client_id: str,
        reply_timeout_s: float, max_pending: int = 10_000,
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._source = source
        self._reply_topic = reply_topic
        self._client_id = client_id
        self._reply_timeout_s = reply_timeout_s
        self._transport = TransportKeyRing.from_setting(settings.transport_keys)
        self._pending: dict[str, asyncio.Future] = {}
        self._deadlines: deque[tuple[float, str]] = deque()  # in deadline order: every request waits as long
        self._expiry: asyncio.TimerHandle | None = None
        self._max_pending = max_pending
        self._consumer: AIOKafkaConsumer | None = None
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=settings.kafka_request_timeout_ms
        )
        self._pacer: FetchPacer | None = None
        self._task: asyncio.Task | None = None
        # With KAFKA_ROLL_TOPICS: requests go to the newest generation of their topic, replies come
        # back on this instance's own reply generations (see posint_common.topic_roll).
        self._targets: topic_roll.Targets | None = None
        self._replies: topic_roll.RollingReader | None = None

    async def start(self) -> None:
        await self._admin.start()
        self._consumer = kafka.make_consumer(self._settings, group_id=None, client_id=self._client_id)
        await self._consumer.start()
        if self._settings.kafka_roll_topics:
            await self._start_rolling()
        else:
            await self._assign_shared_replies()
        self._pacer = FetchPacer(self._consumer, **pacer_settings(self._settings),
                                 pause_unless_waiting=lambda: bool(self._pending))  # replies come only to requests
        self._task = asyncio.create_task(self._route_replies(), name=f"{self._source.removeprefix('posint/')}-reply-router")

    async def _start_rolling(self) -> None:
        self._targets = topic_roll.Targets(self._admin)
        await self._targets.start()
        grace_s = max(topic_roll.GRACE_S, self._reply_timeout_s + 2 * topic_roll.REFRESH_S + 5)
        self._replies = topic_roll.RollingReader(
            self._consumer, self._admin, (topic_roll.reply_base(self._reply_topic, uuid.uuid4().hex[:12]),),
            roll_records=self._settings.kafka_roll_records, orphans_of=self._reply_topic, grace_s=grace_s,
        )
        await self._replies.start()

    async def _assign_shared_replies(self) -> None:
        """Read every partition of the shared reply topic from its end."""
        await self._consumer.topics()  # fresh metadata: the topic may have been created just now
        partitions = self._consumer.partitions_for_topic(self._reply_topic) or set()
        if not partitions:
            raise RuntimeError(f"topic {self._reply_topic} does not exist")
        assigned = [TopicPartition(self._reply_topic, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_end(*assigned)
        for tp in assigned:  # resolve positions now, so no reply sent after start is skipped
            await self._consumer.position(tp)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pacer:
            self._pacer.close()
        for part in (self._replies, self._targets):
            if part is not None:
                await part.stop()
        if self._consumer:
            await self._consumer.stop()
        if self._expiry is not None:
            self._expiry.cancel()
        for future in self._pending.values():
            future.cancel()
        await self._admin.close()

    @property
    def tasks(self) -> list[asyncio.Task]:
        """The reply router (and topic rolling); a service whose router died must exit, not hang every request."""
        parts = [self._task] + [part.task for part in (self._replies, self._targets) if part is not None]
        return [task for task in parts if task is not None]

    @property
    def ready(self) -> bool:
        return bool(self.tasks) and all(not task.done() for task in self.tasks)

    async def request(
        self, topic: str, type: str, message: BaseModel, *, tenant_id: str, request_id: str, subject: str | None = None,
        sealed: bool = False,
    ) -> Reply:
        """``sealed``: the message carries secrets; sealed when ``TRANSPORT_KEYS`` is set (else the
        service warned at start that secrets cross the broker in clear)."""
        envelope = Envelope.wrap(
            message, source=self._source, type=type, subject=subject, tenantid=tenant_id,
            correlationid=request_id,
            replyto=self._replies.current(self._replies.bases[0]) if self._replies else self._reply_topic,
        )
        if sealed and self._transport is not None:
            envelope = envelope.sealed(self._transport)
        if self._targets is not None:
            topic = self._targets.topic_for(topic)
        if len(self._pending) >= self._max_pending:
            raise Overloaded(f"{len(self._pending)} requests already wait for a reply")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending[envelope.id] = future
        metrics.PENDING_REPLIES.inc()
        try:
            self._pacer.activity()
            try:  # aiokafka bounds this by KAFKA_REQUEST_TIMEOUT_MS (waiting for metadata or buffer room)
                acked = await self._producer.send(topic, envelope.value(), key=envelope.key, headers=envelope.headers())
            except KafkaError as error:
                raise BrokerUnavailable(repr(error)) from error
            # One wait for the ack and the reply together: the ack's failure (the producer gives up
            # after KAFKA_REQUEST_TIMEOUT_MS) ends it as BrokerUnavailable, the deadline as TimeoutError.
            acked.add_done_callback(lambda ack: _fail_unsent(ack, future))
            self._expire_at(loop, loop.time() + self._reply_timeout_s, envelope.id)
            try:
                return await future
            except TimeoutError:
                if not acked.done():
                    raise BrokerUnavailable("the broker did not acknowledge the request") from None
                if await self._never_consumed(acked.result()):
                    raise ServiceUnavailable(f"nobody consumed {type} within {self._reply_timeout_s}s") from None
                raise ReplyTimeout(f"no reply to {type} within {self._reply_timeout_s}s") from None
        finally:
            self._pending.pop(envelope.id, None)
            metrics.PENDING_REPLIES.dec()

    def _expire_at(self, loop: asyncio.AbstractEventLoop, deadline: float, request_id: str) -> None:
        self._deadlines.append((deadline, request_id))
        if self._expiry is None:
            self._expiry = loop.call_at(max(deadline, loop.time() + EXPIRY_TICK_S), self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail the requests whose deadline passed (ids only are kept: an answered request is gone)."""
        now = loop.time()
        while self._deadlines and self._deadlines[0][0] <= now:
            future = self._pending.get(self._deadlines.popleft()[1])
            if future is not None and not future.done():
                future.set_exception(TimeoutError())
        self._expiry = None
        if self._deadlines:
            self._expiry = loop.call_at(max(self._deadlines[0][0], now + EXPIRY_TICK_S), self._expire, loop)

    async def _never_consumed(self, sent) -> bool:
        """True when the answering group's committed offset is not past our request: it is down."""
        group = ANSWERED_BY.get(topic_roll.base_of(sent.topic))
        if group is None:
            return False
        tp = TopicPartition(sent.topic, sent.partition)
        try:
            offsets = await asyncio.wait_for(self._admin.list_consumer_group_offsets(group, partitions=[tp]), 2)
        except Exception as error:  # cannot tell: keep the plain timeout
            log.warning("consumer_offsets_unknown", group=group, error=repr(error))
            return False
        committed = offsets.get(tp)
        return committed is None or committed.offset <= sent.offset

    async def _route_replies(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=1_000)
            if not batch:
                continue
            self._pacer.activity()
            observe_lag(self._client_id, batch)
            for records in batch.values():
                for record in records:
                    self._deliver(record)

    def _deliver(self, record) -> None:
        try:
            envelope = Envelope.from_record(record.headers, record.value)
            if envelope.type != REPLY:
                return
            future = self._pending.get(envelope.causationid or "")
            if future is None or future.done():
                return
            if envelope.posintsealed is not None:
                envelope = envelope.opened(self._transport)
            future.set_result(envelope.parse(Reply))
        except (InvalidEnvelope, ValidationError, Undecryptable) as error:
            log.warning("unreadable_reply", offset=record.offset, error=str(error)[:300])


def _fail_unsent(ack: asyncio.Future, reply: asyncio.Future) -> None:
    if not reply.done() and (ack.cancelled() or ack.exception() is not None):
        error = "cancelled" if ack.cancelled() else repr(ack.exception())
        reply.set_exception(BrokerUnavailable(error))
