"""Delivery workers: take due messages from Postgres and attempt them through the egress guard.

Two lanes, each with its own bound on attempts in flight: first attempts and retries, so a backlog
of retries (slow or dead receivers) never delays a first attempt. Within a lane each endpoint has at
most ``per_endpoint`` attempts in flight, so one endpoint cannot take the lane. Memory is bounded by
the lanes: only claimed messages are held, whatever the backlog in Postgres. One order's messages to
an endpoint are claimed one after the other while they succeed on the first try (see
``messages.CANDIDATES``). Wake-ups: NOTIFY when messages are recorded (the first-attempt lane) or
put back (both), the completion of an attempt (room in the lane, an order's next message; the retry
lane only while due retries were left behind), and a short poll for due retries. Outcomes are
written in batches (``successes.GroupCommit``), each attempt finishing once its outcome is committed."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import asyncpg
from prometheus_client import Gauge

from posint_common.contracts import webhooks as contract
from posint_common.log import get_logger
from posint_common.vault import Undecryptable
from posint_common.waits import wait_and_clear

from webhook_dispatcher.adapters import messages
from webhook_dispatcher.adapters.sender import Attempt, Sender, message, signer
from webhook_dispatcher.adapters.vault import KeyRing, associated_data
from webhook_dispatcher.domain.retry import GONE, RetryPolicy
from webhook_dispatcher.service_layer.fanout import record_for_endpoints
from webhook_dispatcher.service_layer.successes import GroupCommit, successes

log = get_logger(__name__)

PENDING = Gauge("posint_webhook_pending_messages", "Webhook messages waiting for delivery (first attempts and retries)")
OLDEST_PENDING = Gauge("posint_webhook_oldest_pending_age_seconds", "Age of the oldest webhook message not yet delivered")
DISABLED = Gauge("posint_webhook_endpoints_disabled", "Webhook endpoints currently disabled by the dispatcher (410 or failing too long)")
METRICS_INTERVAL_S = 5.0
RECOVER_BATCH = 500
LEASE_MARGIN_S = 15.0  # a claimed message is taken again this long after its attempt's timeout
SECRET_UNAVAILABLE = "secret_unavailable"  # the outcome logged when the endpoint's secret does not open
SIGNERS_KEPT = 10_000  # opened secrets kept (per endpoint and stored ciphertexts); past it they are opened again


@dataclass
class Lane:
    name: str
    fresh: bool
    capacity: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: dict[int, int] = field(default_factory=dict)  # endpoint id -> attempts under way
    tasks: set[asyncio.Task] = field(default_factory=set)
    saturated: bool = True  # the last claim filled the room or its page: due messages may be left behind

    @property
    def room(self) -> int:
        return self.capacity - len(self.tasks)

    @property
    def batch(self) -> int:
        """Under load a lane claims only once this much is free: each claim reads the due queue."""
        return max(1, self.capacity // 8)

    def busy(self) -> dict[int, int]:
        return {endpoint: count for endpoint, count in self.in_flight.items() if count}


@dataclass
class Deliverer:
    pool: asyncpg.Pool
    dsn: str
    keys: KeyRing
    sender: Sender
    policy: RetryPolicy
    max_in_flight: int = 256
    max_retries_in_flight: int = 64
    per_endpoint: int = 4
    poll_interval_s: float = 0.5
    lease_s: float = 15.0 + LEASE_MARGIN_S
    tasks: list[asyncio.Task] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lanes = (Lane("first", True, self.max_in_flight), Lane("retry", False, self.max_retries_in_flight))
        self._recover = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self.successes = successes(self.pool)
        self.failures = GroupCommit(self.pool, self._failed)
        self._signers: dict[tuple, list] = {}

    async def start(self) -> list[asyncio.Task]:
        await self._listen()
        self.tasks = [asyncio.create_task(self._run_lane(lane), name=f"webhooks-{lane.name}") for lane in self.lanes]
        self.tasks.append(asyncio.create_task(self._recover_forever(), name="webhooks-recover"))
        self.tasks.append(asyncio.create_task(self._measure_forever(), name="webhooks-metrics"))
        self.tasks.append(asyncio.create_task(self.successes.run_forever(), name="webhooks-successes"))
        self.tasks.append(asyncio.create_task(self.failures.run_forever(), name="webhooks-failures"))
        return self.tasks

    async def stop(self) -> None:
        """Attempts under way are abandoned: their leases run out and they are made again."""
        running = [*self.tasks, *(task for lane in self.lanes for task in lane.tasks)]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self._listener is not None:
            self._listener.terminate()

    # --- wake-ups ---------------------------------------------------------------------------------

    def wake(self) -> None:
        for lane in self.lanes:
            lane.wake.set()
        self._recover.set()

    def _on_notify(self, _conn, _pid, _channel, payload: str) -> None:
        if payload == messages.RECOVER:  # a recovery opened (the recoverer also polls)
            self._recover.set()
        elif payload == messages.NEW:  # new messages: first attempts only
            self.lanes[0].wake.set()
        else:  # messages put back (retry, recover): either lane
            for lane in self.lanes:
                lane.wake.set()

    async def _listen(self) -> None:
        try:
            listener = await asyncpg.connect(self.dsn, timeout=10)
            await listener.add_listener(messages.CHANNEL, self._on_notify)
        except Exception as error:  # the poll finds messages meanwhile; tried again at the next poll
            log.warning("webhooks_listen_failed", error=repr(error))
            return
        self._listener = listener

    async def _keep_listening(self) -> None:
        if self._listener is None or self._listener.is_closed():
            self._listener = None
            await self._listen()
            self.wake()  # something may have been recorded while nobody listened

    async def _pause(self, event: asyncio.Event) -> None:
        await wait_and_clear(event, self.poll_interval_s)

    # --- the lanes --------------------------------------------------------------------------------

    async def _run_lane(self, lane: Lane) -> None:
        while True:
            await self._pause(lane.wake)
            try:
                if lane.fresh:
                    await self._keep_listening()
                if lane.room >= lane.batch:  # else a finished attempt wakes it once there is
                    await self.fill(lane)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Postgres away: the next poll tries again
                log.warning("webhooks_claim_failed", lane=lane.name, error=repr(error))

    async def fill(self, lane: Lane) -> None:
        """Claim due messages until the lane is full or none is left."""
        while lane.room > 0:
            room = lane.room
            async with self.pool.acquire() as conn:
                rows, more = await messages.claim(conn, fresh=lane.fresh, limit=room, used=lane.busy(),
                                                  per_endpoint=self.per_endpoint, lease_s=self.lease_s)
            lane.saturated = more or len(rows) >= room
            for row in rows:
                lane.in_flight[row["endpoint_id"]] = lane.in_flight.get(row["endpoint_id"], 0) + 1
                task = asyncio.create_task(self._attempt(row))
                lane.tasks.add(task)
                task.add_done_callback(lambda done, lane=lane, endpoint=row["endpoint_id"]: self._done(lane, endpoint, done))
            if not rows or (not more and len(rows) < room):
                return

    def _done(self, lane: Lane, endpoint: int, task: asyncio.Task) -> None:
        lane.tasks.discard(task)
        left = lane.in_flight.get(endpoint, 1) - 1
        if left:
            lane.in_flight[endpoint] = left
        else:
            lane.in_flight.pop(endpoint, None)
        # A finished first attempt may free an order's next message; retries become due with time
        # (the poll) or by NOTIFY, so the retry lane claims again on a finished attempt only when its
        # last claim may have left some.
        if lane.room >= lane.batch and (lane.fresh or lane.saturated):
            lane.wake.set()
        if not task.cancelled() and task.exception() is not None:  # its lease runs out and it is made again
            log.error("webhook_attempt_failed", endpoint=endpoint, error=repr(task.exception()))

    # --- one attempt ------------------------------------------------------------------------------

    async def _attempt(self, row: asyncpg.Record) -> None:
        if not row["live"]:  # switched off, disabled or deleted since: kept as failed, recoverable
            async with self.pool.acquire() as conn:
                await messages.settle(conn, row["id"], status="failed", attempts=row["attempts"])
            return
        try:
            signers = self._signers_of(row)
        except Undecryptable as error:
            await self._unsignable(row, error)
            return
        attempt = await self.sender.post(row["url"], signers, row["message_id"], row["body"])
        await self._settle(row, attempt)

    def _signers_of(self, row: asyncpg.Record) -> list:
        """The signers to sign with, kept per endpoint and stored ciphertexts (a rotation, a re-seal
        or the previous secret's overlap ending changes the key, so a stale secret is never used):
        decrypting and decoding a secret once, not per message. A rotation's previous one that no
        longer opens is left out (the current signature still goes; warned when first met), the
        current one not opening raises Undecryptable (not kept: every message says so)."""
        sealed = messages.sealed_secrets(row, datetime.now(timezone.utc))
        key = (row["tenant_id"], row["endpoint_id"], *sealed)
        found = self._signers.get(key)
        if found is not None:
            return found
        current, *previous = sealed
        bound = associated_data(row["tenant_id"], row["endpoint_id"])
        found = [signer(self.keys.open(current, bound).decode())]
        for each in previous:
            try:
                found.append(signer(self.keys.open(each, bound).decode()))
            except Undecryptable as error:
                log.warning("webhook_previous_secret_undecryptable", endpoint=row["endpoint_id"],
                            tenant=row["tenant_id"], error=str(error))
        if len(self._signers) >= SIGNERS_KEPT:
            self._signers.clear()
        self._signers[key] = found
        return found

    async def _unsignable(self, row: asyncpg.Record, error: Undecryptable) -> None:
        """The endpoint's secret no longer opens (its key left WEBHOOKS_ENCRYPTION_KEYS, or the row was
        altered): the message cannot be signed, so it fails for good now rather than coming back every
        lease period; the deliveries log says why, ``recover`` sends it once the key is back. Not the
        receiver's fault: the endpoint's failure clock is left alone. The error names the key id only."""
        reason = f"the endpoint's signing secret cannot be decrypted: {error}; not sent"
        log.error("webhook_secret_undecryptable", endpoint=row["endpoint_id"], tenant=row["tenant_id"],
                  message=row["message_id"], error=str(error))
        attempt = Attempt(row["message_id"], SECRET_UNAVAILABLE, None, 0.0, reason, None, datetime.now(timezone.utc))
        async with self.pool.acquire() as conn, conn.transaction():
            await messages.log_attempt(conn, row["id"], row["endpoint_id"], row["attempts"] + 1, attempt)
            await messages.settle(conn, row["id"], status="failed", attempts=row["attempts"] + 1)

    async def _settle(self, row: asyncpg.Record, attempt: Attempt) -> None:
        number, endpoint = row["attempts"] + 1, row["endpoint_id"]
        if attempt.success:
            await self.successes.record(row["id"], endpoint, number, attempt)
            return
        if attempt.status_code == GONE:
            async with self.pool.acquire() as conn, conn.transaction():
                await messages.log_attempt(conn, row["id"], endpoint, number, attempt)
                await messages.settle(conn, row["id"], status="failed", attempts=number)
                await self._disable(conn, endpoint, "the endpoint answered 410 Gone")
            return
        delay = self.policy.delay(number, attempt.status_code, attempt.retry_after, datetime.now(timezone.utc))
        await self.failures.record(row["id"], endpoint, number, attempt, delay)

    async def _failed(self, conn: asyncpg.Connection, batch: list[tuple]) -> None:
        """A batch of failures (``failures``' writer): attempts logged, retries scheduled or
        messages given up, and an endpoint failing every attempt too long disabled, in one transaction."""
        async with conn.transaction():
            clocks = await messages.failed_many(conn, batch)
            now = datetime.now(timezone.utc)
            for endpoint, failing_since in sorted(clocks.items()):
                if failing_since is not None and self.policy.failing_too_long(failing_since, now):
                    since = failing_since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                    await self._disable(conn, endpoint, f"every attempt failed since {since}")

    async def _disable(self, conn: asyncpg.Connection, endpoint_id: int, reason: str) -> None:
        """Switch the endpoint off and tell the tenant's other endpoints of its integration that
        subscribed to ``webhook.disabled`` (this one is off: it is not sent there)."""
        disabled = await messages.disable(conn, endpoint_id, reason)
        if disabled is None:
            return
        log.warning("webhook_endpoint_disabled", endpoint=endpoint_id, tenant=disabled["tenant_id"], reason=reason)
        data = {"webhook_id": endpoint_id, "url": disabled["url"], "reason": reason}
        body = message(contract.DISABLED_EVENT, data, datetime.now(timezone.utc))
        await record_for_endpoints(conn, disabled["tenant_id"], disabled["integration_id"], contract.DISABLED_EVENT,
                                   f"disabled/{uuid.uuid4().hex}", f"webhook/{endpoint_id}", body)

    # --- recoveries and metrics -------------------------------------------------------------------

    async def _recover_forever(self) -> None:
        while True:
            await self._pause(self._recover)
            try:
                async with self.pool.acquire() as conn:
                    while await messages.recover_batch(conn, RECOVER_BATCH):
                        pass
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("webhooks_recover_failed", error=repr(error))

    async def _measure_forever(self) -> None:
        while True:
            try:
                await self.measure()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("webhooks_metrics_failed", error=repr(error))
            await asyncio.sleep(METRICS_INTERVAL_S)

    async def measure(self) -> None:
        async with self.pool.acquire() as conn:
            row = await messages.backlog(conn)
        PENDING.set(row["pending"])
        OLDEST_PENDING.set(row["oldest_s"] or 0)
        DISABLED.set(row["disabled"])
