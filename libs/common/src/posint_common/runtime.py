"""Service runner: builds the shared parts (pool, producer, outbox relay, consumer loops, health
server), starts them in order, stops them in reverse, and exits cleanly on SIGINT/SIGTERM.

Its long-running tasks (consumer loops, outbox relay, inbox pruner, and what a service adds with
``supervise``) are supervised: if one ends while the service runs, for whatever reason, the service
logs ``task_died``, stops in order and exits with status 1, so a process supervisor restarts it;
no process keeps running with a dead loop inside."""
from __future__ import annotations

import asyncio
import errno
import os
import signal
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable
from urllib.parse import urlsplit

import asyncpg
import uvloop
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from posint_common import db, kafka, topic_roll
from posint_common.consumer import ConsumerLoop, Route
from posint_common.envelope import TransportKeyRing
from posint_common.health import add_health_routes
from posint_common.log import configure_logging, get_logger
from posint_common.outbox import OutboxRelay
from posint_common.retention import InboxPruner
from posint_common.settings import ServiceSettings, postgres_location

log = get_logger(__name__)


@dataclass
class ServiceRuntime:
    """Everything one running service owns; ``extra_*`` lets a service add its own parts."""

    name: str
    schema: str
    settings: ServiceSettings
    migrations: Path
    pool: asyncpg.Pool | None = None
    producer: AIOKafkaProducer | None = None
    relay: OutboxRelay | None = None
    pruner: InboxPruner | None = None
    admin: AIOKafkaAdminClient | None = None  # only with KAFKA_ROLL_TOPICS: creates and deletes generations
    tasks: list[asyncio.Task] = field(default_factory=list)
    consumers: list[ConsumerLoop] = field(default_factory=list)
    health_runner: web.AppRunner | None = None
    ports: dict[str, int] = field(default_factory=dict)
    extra_ready: list[Callable[[], bool]] = field(default_factory=list)
    extra_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    extra_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    death: tuple[str, str] | None = None  # (task, why) of the first supervised task that ended
    died: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    carries_secrets: bool = False  # seals or opens messages with secrets: warn at start without TRANSPORT_KEYS

    @property
    def source(self) -> str:
        return f"posint/{self.name}"

    async def start_core(self) -> None:
        """Migrate, then open the pool, producer, outbox relay and inbox pruner."""
        if self.carries_secrets and self.settings.transport_keys is None:
            log.warning("transport_keys_missing", detail="TRANSPORT_KEYS is not set: secrets cross the broker in clear,"
                        " and a sealed message that arrives is dead-lettered")
        applied = await db.migrate(self.settings.database_url, self.schema, self.migrations)
        if applied:
            log.info("migrated", schema=self.schema, versions=applied)
        self.pool = await db.create_pool(
            self.settings.database_url, self.schema, max_size=self.settings.db_pool_max_size, application=self.name
        )
        self.producer = kafka.make_producer(self.settings, client_id=self.name)
        await self.producer.start()
        self.relay = OutboxRelay(
            dsn=self.settings.database_url, pool=self.pool, producer=self.producer, schema=self.schema,
            max_attempts=self.settings.outbox_max_attempts, retry_backoff_s=self.settings.outbox_retry_backoff_ms / 1000,
        )
        await self.relay.start()
        self.supervise(self.relay._task)
        self.pruner = InboxPruner(
            pool=self.pool, schema=self.schema,
            retention_hours=self.settings.inbox_retention_hours, interval_s=self.settings.inbox_prune_interval_s,
        )
        await self.pruner.start()
        self.supervise(self.pruner._task)
        if self.settings.kafka_roll_topics:
            self.admin = AIOKafkaAdminClient(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                request_timeout_ms=self.settings.kafka_request_timeout_ms,
            )
            await self.admin.start()
            pruning = asyncio.create_task(topic_roll.prune_metadata_forever(self.producer.client), name="metadata-pruner")
            self.tasks.append(pruning)
            self.supervise(pruning)

    def add_consumer(self, purpose: str, topics: tuple[str, ...], routes: dict[str, Route], **options) -> ConsumerLoop:
        """Consumer group ``<service>.<purpose>``, also the inbox's consumer key."""
        name = f"{self.name}.{purpose}"
        # Queries are read from topic generations by assignment when rolling (see topic_roll);
        # commands and events always keep their group subscription.
        roll = self.settings.kafka_roll_topics and options.get("read_only", False)
        consumer = kafka.make_consumer(self.settings, *(() if roll else topics), group_id=name, client_id=name)
        roller = topic_roll.RollingReader(
            consumer, self.admin, topics, roll_records=self.settings.kafka_roll_records, include_base=True
        ) if roll else None
        loop = ConsumerLoop(
            name=name,
            topics=topics,
            routes=routes,
            consumer=consumer,
            roller=roller,
            producer=self.producer,
            pool=self.pool,
            schema=self.schema,
            source=self.source,
            pacer_settings=pacer_settings(self.settings),
            max_attempts=self.settings.handler_max_attempts,
            reply_timeout_s=self.settings.kafka_request_timeout_ms / 1000,
            transport=TransportKeyRing.from_setting(self.settings.transport_keys),
            **options,
        )
        self.consumers.append(loop)
        return loop

    async def start(self) -> None:
        for consumer in self.consumers:
            await consumer.start()
            self.supervise(consumer._task)
            if consumer.roller is not None:
                self.supervise(consumer.roller.task)
        for start in self.extra_start:
            await start()
        await self._start_health()
        log.info("service_started", ports=self.ports)

    def supervise(self, task: asyncio.Task) -> None:
        """``task`` must run until ``stop``; if it ends sooner, ``serve`` takes the service down."""
        task.add_done_callback(self._task_ended)

    def _task_ended(self, task: asyncio.Task) -> None:
        if self.stopping or self.death is not None:
            return
        if task.cancelled():
            why = "cancelled"
        else:
            why = repr(task.exception()) if task.exception() is not None else "returned"
        self.death = (task.get_name(), why)
        self.died.set()

    async def stop(self) -> None:
        self.stopping = True
        if self.health_runner:
            await _quietly(self.health_runner.cleanup())
        for stop in reversed(self.extra_stop):
            await _quietly(stop())
        for consumer in reversed(self.consumers):
            await _quietly(consumer.stop())
        if self.pruner:
            await _quietly(self.pruner.stop())
        if self.relay:
            await _quietly(self.relay.stop())
        for task in self.tasks:
            task.cancel()
        if self.producer:
            await _quietly(self.producer.stop())
        if self.admin:
            await _quietly(self.admin.close())
        if self.pool:
            await _quietly(self.pool.close())
        log.info("service_stopped")

    def readiness_checks(self) -> dict:
        async def postgres() -> bool:
            return await self.pool.fetchval("SELECT 1") == 1

        async def kafka_reachable() -> bool:
            return await self.producer.client.fetch_all_metadata() is not None

        async def consumers_assigned() -> bool:
            return all(consumer.ready for consumer in self.consumers) and all(probe() for probe in self.extra_ready)

        return {"postgres": postgres, "kafka": kafka_reachable, "consumers": consumers_assigned}

    async def _start_health(self) -> None:
        app = web.Application()
        add_health_routes(app, self.readiness_checks())
        self.health_runner = web.AppRunner(app, access_log=None)
        await self.health_runner.setup()
        site = web.TCPSite(self.health_runner, self.settings.health_host, self.settings.health_port)
        await site.start()
        self.ports["health"] = bound_port(site)


def pacer_settings(settings: ServiceSettings) -> dict:
    return {
        "busy_ms": settings.kafka_fetch_wait_busy_ms,
        "idle_ms": settings.kafka_fetch_wait_idle_ms,
        "window_ms": settings.kafka_busy_window_ms,
    }


STOP_STEP_TIMEOUT_S = 5


async def _quietly(awaitable: Awaitable) -> None:
    """One shutdown step, bounded in time; a failing or stuck step must not keep the others from running."""
    try:
        await asyncio.wait_for(awaitable, STOP_STEP_TIMEOUT_S)
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():
            raise  # we are being cancelled ourselves
        log.warning("stop_step_failed", error="cancelled inside the step")  # aiokafka does this with the broker gone
    except Exception as error:
        log.warning("stop_step_failed", error=repr(error))


STOP_TIMEOUT_S = 20


async def serve(build: Callable[[], Awaitable[ServiceRuntime]]) -> int:
    """Run a service until SIGINT/SIGTERM (exit status 0) or until a supervised task ends (one
    ``task_died`` line, status 1), then stop it in order; a second signal or a stop that outlasts
    STOP_TIMEOUT_S ends the process anyway."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            os._exit(1)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    runtime = await build()
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(runtime.died.wait())]
    try:
        started = asyncio.create_task(runtime.start())
        await asyncio.wait([started, *waiters], return_when=asyncio.FIRST_COMPLETED)
        if started.done():
            started.result()  # a failed start is the cause, whatever ended with it
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        else:
            started.cancel()
        if runtime.death is not None:
            task, why = runtime.death
            log.error("task_died", task=task, error=why)
    finally:
        for waiter in waiters:
            waiter.cancel()
        try:
            await asyncio.wait_for(runtime.stop(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.error("stop_timed_out", seconds=STOP_TIMEOUT_S)
    return 1 if runtime.death is not None else 0


def main(name: str, build: Callable[[], Awaitable[ServiceRuntime]], settings: ServiceSettings) -> None:
    """Process entry point; uvloop because every hop is socket-bound Python. A failed start is one
    log line naming the cause and exit status 1, not a traceback."""
    configure_logging(name, settings.log_level)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            status = runner.run(serve(build))
    except Exception as error:
        log.error("service_failed", error=start_failure(error, settings))
        raise SystemExit(1) from None
    if status:
        raise SystemExit(status)


def start_failure(error: BaseException, settings: ServiceSettings) -> str:
    """Why a start failed, in words an operator can act on: the port variable that is taken, or
    whether Postgres or the broker (and where) failed; never the DSN's password."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    reason = str(error) or type(error).__name__
    try:
        password = urlsplit(settings.database_url).password
    except ValueError:  # an unreadable DSN: asyncpg said so in ``reason``
        password = None
    if password:
        reason = reason.replace(password, "[redacted]")
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        taken = [f"{name.upper()}={value}" for name, value in settings.model_dump().items()
                 if name.endswith("_port") and value and f", {value})" in reason]
        return f"{' / '.join(taken) or 'a port'} is already in use: {reason}"
    modules = {frame.f_globals.get("__name__", "") for frame, _line in traceback.walk_tb(error.__traceback__)}
    if any(module.startswith("asyncpg") for module in modules) or isinstance(error, asyncpg.PostgresError):
        unreachable = "cannot reach " if isinstance(error, (OSError, TimeoutError)) else ""
        return f"{unreachable}Postgres at {postgres_location(settings.database_url)} (DATABASE_URL): {reason}"
    if any(module.startswith("aiokafka") for module in modules):
        return f"cannot reach the Kafka broker at {settings.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS): {reason}"
    return repr(error)


def bound_port(site: web.TCPSite) -> int:
    """The port a site listens on (useful when configured as 0 for an ephemeral port)."""
    return site._server.sockets[0].getsockname()[1]
