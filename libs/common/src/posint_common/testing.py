"""pytest plugin shared by every package's tests: a real embedded Postgres and Tansu broker per
test session (on free loopback ports, so it runs beside ``make run``), and helpers to run services
in-process and to wait on conditions with a deadline instead of sleeping."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from posint_common import topic_roll
from posint_common.contracts import topics
from posint_common.envelope import Envelope
from posint_common.devstack.broker import EmbeddedBroker
from posint_common.devstack.postgres import EmbeddedPostgres
from posint_common.kafka import ensure_topics
from posint_common.runtime import ServiceRuntime
from posint_common.settings import ServiceSettings
from posint_common.vault import new_key_entry

READY_TIMEOUT_S = 90


@contextlib.asynccontextmanager
async def own_database(database_url: str, prefix: str) -> AsyncIterator[str]:
    """A database of the test's own on the same server (its URL), dropped afterwards: for processes
    that use the services' fixed schemas, which no other test's services may share."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(database_url)._replace(path="/" + name))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class Tenant(NamedTuple):
    """A tenant a test made, with its API key."""

    id: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}
# TRANSPORT_KEYS of every service a test starts: a new key first, an old one still opening (rotation).
TRANSPORT_KEYS = f"{new_key_entry('transport2')},{new_key_entry('transport1')}"


@dataclass(frozen=True)
class Infra:
    database_url: str
    bootstrap_servers: str

    def settings(self, cls: type[ServiceSettings] = ServiceSettings, **overrides) -> ServiceSettings:
        values = {"database_url": self.database_url, "kafka_bootstrap_servers": self.bootstrap_servers, "health_port": 0,
                  "kafka_roll_topics": True,  # the embedded Tansu, as make run starts it
                  "egress_allow": "127.0.0.0/8", "egress_allow_only": True,  # tests never dial beyond loopback
                  "transport_keys": TRANSPORT_KEYS}  # secrets sealed on the broker (posint_common.envelope)
        return cls(**{**values, **overrides})


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 30, what: str = "condition") -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_ready(runtime: ServiceRuntime, timeout_s: float = READY_TIMEOUT_S) -> None:
    async def ready() -> bool:
        results = [await check() for check in runtime.readiness_checks().values()]
        return all(results)

    await eventually(ready, timeout_s, f"{runtime.name} to be ready")


async def started(build: Awaitable[ServiceRuntime]) -> ServiceRuntime:
    runtime = await build
    await runtime.start()
    await wait_ready(runtime)
    return runtime


async def read_topic(
    bootstrap_servers: str, topic: str, expected: int, timeout_s: float = 30,
    match: Callable[[Envelope], bool] = lambda envelope: True,
) -> list[Envelope]:
    """Read ``topic`` and its generations (topic_roll) from the start until ``expected`` matching
    records arrived; fail at the deadline."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    found: list[Envelope] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expected and time.monotonic() < deadline:
            await _assign_family(consumer, topic)
            for records in (await consumer.getmany(timeout_ms=200)).values():
                envelopes = (Envelope.from_record(r.headers, r.value) for r in records)
                found.extend(e for e in envelopes if match(e))
    finally:
        await consumer.stop()
    assert len(found) >= expected, f"only {len(found)} of {expected} records on {topic}"
    return found


def in_family(candidate: str, topic: str) -> bool:
    """``topic`` itself, a generation of it, or of one of its per-instance bases (``gateway.replies.<id>``)."""
    base = topic_roll.base_of(candidate)
    return candidate == topic or (topic_roll.created_ms(candidate) is not None and (base == topic or base.startswith(topic + ".")))


async def _assign_family(consumer: AIOKafkaConsumer, topic: str) -> None:
    wanted = {TopicPartition(t, p) for t in await consumer.topics() if in_family(t, topic)
              for p in consumer.partitions_for_topic(t) or ()}
    current = consumer.assignment()
    if wanted <= current:
        return
    kept = {tp: await consumer.position(tp) for tp in current & wanted}
    consumer.assign(sorted(wanted))
    for tp in wanted:
        consumer.seek(tp, kept.get(tp, 0))


def required_tool(name: str, hint: str) -> str:
    """The path of a program a test needs: CI installs it (``.ci/run``), so there a missing one fails;
    elsewhere the test is skipped with ``hint`` saying how to get it."""
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} not found: {hint}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def _embedded(tmp_path_factory):
    postgres = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    broker = EmbeddedBroker(tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        database_url = postgres.start()
        bootstrap_servers = broker.start()
        yield Infra(database_url, bootstrap_servers)
    finally:
        broker.stop()
        postgres.stop()
        # Fault tests kill brokers under live clients; aiokafka leaves failed internal futures in
        # reference cycles. Collect them while pytest still captures logs, not at interpreter exit.
        gc.collect()


@dataclass(frozen=True)
class PrivateInfra(Infra):
    broker: EmbeddedBroker


@pytest.fixture
async def private_broker(infra: Infra, tmp_path) -> PrivateInfra:
    """The session's Postgres with a broker of the test's own, every topic created: for tests that
    stop the broker, need nobody answering, or count topics."""
    broker = EmbeddedBroker(tmp_path / "tansu.log")
    own = PrivateInfra(infra.database_url, broker.start(), broker)
    try:
        await ensure_topics(own.bootstrap_servers, topics.ALL)
        yield own
    finally:
        broker.stop()


@pytest.fixture(scope="session")
async def infra(_embedded: Infra) -> Infra:
    await ensure_topics(_embedded.bootstrap_servers, topics.ALL)
    return _embedded
