"""Outbox relay and inbox under failure: unpublishable rows are parked without blocking other
aggregates, a lost LISTEN connection is re-opened, and old inbox rows are pruned."""
import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import pytest
from aiokafka.errors import KafkaError
from prometheus_client import REGISTRY
from pydantic import BaseModel

from posint_common import kafka, outbox
from posint_common.contracts.limits import MAX_RECORD_BYTES
from posint_common.devstack.broker import EmbeddedBroker
from posint_common.envelope import Envelope
from posint_common.outbox import OutboxRelay
from posint_common.retention import InboxPruner
from posint_common.runtime import ServiceRuntime
from posint_common.testing import eventually, read_topic, unique

TOO_LARGE = "x" * (MAX_RECORD_BYTES + 1)  # over the producer's max_request_size (KAFKA_MAX_RECORD_BYTES)
UNRESOLVABLE_TOPIC = "no such topic!"  # an invalid name: no broker ever has metadata for it


class Note(BaseModel):
    n: int
    pad: str = ""


def note(n: int, subject: str, pad: str = "") -> Envelope:
    return Envelope.wrap(Note(n=n, pad=pad), source="posint/test", type="posint.test.note.v1", subject=subject)


async def queue(pool, schema, *items: tuple[str, Envelope]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for topic, envelope in items:
            await outbox.add(conn, schema, topic, envelope)


def sample(name: str, schema: str) -> float:
    return REGISTRY.get_sample_value(name, {"schema": schema}) or 0.0


async def count(pool, query: str) -> int:
    return await pool.fetchval(query)


def counts(pool, query: str, expected: int):
    """A check for ``eventually``: ``query`` counts ``expected``."""
    async def check() -> bool:
        return await pool.fetchval(query) == expected
    return check


async def outbox_cli(infra, *args: str) -> str:
    """The operator's CLI, as a separate process with DATABASE_URL set."""
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "posint_common.outbox", *args,
        env={**os.environ, "DATABASE_URL": infra.database_url}, stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await cli.communicate()
    assert cli.returncode == 0, out
    return out.decode()


@pytest.fixture
async def quick_producer(infra):
    """Gives up on a topic's metadata after 1 s instead of 5 s, so the unresolvable topic is quick."""
    producer = kafka.make_producer(infra.settings(kafka_request_timeout_ms=1000), client_id="test-quick")
    await producer.start()
    yield producer
    await producer.stop()


async def test_unpublishable_rows_are_parked_and_hold_back_only_their_own_aggregate(
    infra, pool, quick_producer, schema, topic, capfd
):
    await queue(
        pool, schema,
        (topic, note(1, "agg-a", pad=TOO_LARGE)),  # refused by the producer: message too large
        (UNRESOLVABLE_TOPIC, note(2, "agg-c")),  # topic never resolves
        (topic, note(3, "agg-a")), (topic, note(4, "agg-b")), (topic, note(5, "agg-c")),
        (topic, note(6, "agg-a")), (topic, note(7, "agg-b")), (topic, note(8, None)),
    )
    relay = OutboxRelay(dsn=infra.database_url, pool=pool, producer=quick_producer, schema=schema,
                        sweep_interval_s=0.1, max_attempts=3, retry_backoff_s=0.05)
    await relay.start()
    try:
        others = await read_topic(infra.bootstrap_servers, topic, 3, timeout_s=20)
        assert sorted(e.data["n"] for e in others) == [4, 7, 8], "other aggregates move on"
        await eventually(counts(pool, "SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL", 2), 30,
                         "both unpublishable rows to be parked")
        left = await pool.fetch("SELECT envelope->'data'->>'n' AS n, attempts, last_error, parked_at FROM outbox ORDER BY seq")
        assert [int(r["n"]) for r in left] == [1, 2, 3, 5, 6], "their aggregates wait behind them, in order"
        assert [r["attempts"] for r in left] == [3, 3, 0, 0, 0]
        assert "MessageSizeTooLarge" in left[0]["last_error"]
        assert "UnknownTopicOrPartition" in left[1]["last_error"]
        await eventually(lambda: sample("posint_outbox_parked", schema) == 2, 5, "parked gauge")
        assert capfd.readouterr().out.count("outbox_row_parked") == 2

        # The operator fixes the cause (here: shrinks the message, points the row at a real topic) and retries.
        await pool.execute("UPDATE outbox SET envelope = jsonb_set(envelope::jsonb, '{data,pad}', '\"\"')::json WHERE attempts = 3")
        await pool.execute("UPDATE outbox SET topic = $1 WHERE topic = $2", topic, UNRESOLVABLE_TOPIC)
        listed = await outbox_cli(infra, "list", "--schema", schema)
        assert listed.count("parked_at=20") == 2 and "MessageSizeTooLarge" in listed, listed
        assert (await outbox_cli(infra, "retry", "--schema", schema)).startswith("2 row(s)")
        await eventually(counts(pool, "SELECT count(*) FROM outbox", 0), 10, "the outbox to drain after the retry")
        await eventually(lambda: sample("posint_outbox_parked", schema) == 0, 5, "parked gauge back to 0")
    finally:
        await relay.stop()
    received = await read_topic(infra.bootstrap_servers, topic, 8)
    by_key: dict = {}
    for envelope in received:
        by_key.setdefault(envelope.subject, []).append(envelope.data["n"])
    assert by_key == {"agg-a": [1, 3, 6], "agg-b": [4, 7], "agg-c": [2, 5], None: [8]}


async def test_row_refused_after_hand_over_keeps_the_rest_of_its_aggregate_behind_it(
    infra, pool, quick_producer, schema, topic
):
    """A refusal that arrives with the acknowledgements (the broker's answer): rows of the same aggregate
    already sent in that batch stay in the outbox and are sent again after it, so it is never left behind."""
    real_send, refusing = quick_producer.send, True

    async def send(topic, value, **options):  # stands in for a broker that refuses this one record
        if refusing and b"refuse-me" in value:
            future = asyncio.get_running_loop().create_future()
            future.set_exception(KafkaError("refused by the broker"))
            return future
        return await real_send(topic, value, **options)

    quick_producer.send = send
    await queue(pool, schema, (topic, note(1, "agg-a", pad="refuse-me")), (topic, note(2, "agg-a")), (topic, note(3, "agg-b")))
    relay = OutboxRelay(dsn=infra.database_url, pool=pool, producer=quick_producer, schema=schema,
                        sweep_interval_s=0.1, max_attempts=2, retry_backoff_s=0.05)
    await relay.start()
    try:
        await eventually(counts(pool, "SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL", 1), 15, "refused row parked")
        left = await pool.fetch("SELECT envelope->'data'->>'n' AS n, attempts FROM outbox ORDER BY seq")
        assert [(int(r["n"]), r["attempts"]) for r in left] == [(1, 2), (2, 0)]
        refusing = False
        async with pool.acquire() as conn:
            assert await outbox.retry(conn, schema) == 1
        await eventually(counts(pool, "SELECT count(*) FROM outbox", 0), 10, "the outbox to drain after the retry")
    finally:
        await relay.stop()
    received = await read_topic(infra.bootstrap_servers, topic, 4)
    a = [e.data["n"] for e in received if e.subject == "agg-a"]
    assert a == [2, 1, 2], "sent before the refusal was known, then again after the refused row"


async def test_broker_outage_is_not_charged_to_the_rows(infra, pool, schema, tmp_path):
    broker = EmbeddedBroker(tmp_path / "tansu.log")
    bootstrap = broker.start()
    await kafka.ensure_topics(bootstrap, ("outage.topic",))
    producer = kafka.make_producer(infra.settings(kafka_bootstrap_servers=bootstrap, kafka_request_timeout_ms=500),
                                   client_id="test-outage")
    relay = OutboxRelay(dsn=infra.database_url, pool=pool, producer=producer, schema=schema,
                        sweep_interval_s=0.1, send_timeout_s=1, max_attempts=2, retry_backoff_s=0.05)
    try:
        await producer.start()
        await relay.start()
        await queue(pool, schema, ("outage.topic", note(0, "agg-a")))
        await eventually(counts(pool, "SELECT count(*) FROM outbox", 0), 10, "first row published")
        broker.stop()
        failures = sample("posint_outbox_failures_total", schema)
        await queue(pool, schema, ("outage.topic", note(1, "agg-a")), ("outage.topic", note(2, "agg-b")))
        await eventually(lambda: sample("posint_outbox_failures_total", schema) >= failures + 4, 30, "failed rounds")
        rows = await pool.fetch("SELECT attempts, parked_at, last_error FROM outbox")
        assert len(rows) == 2 and all(r["attempts"] == 0 and r["parked_at"] is None for r in rows)
        assert all(r["last_error"] for r in rows), "the error is on the row for operators"

        broker.start()  # same port, empty (memory): the relay catches up once the topic is back
        await kafka.ensure_topics(bootstrap, ("outage.topic",))
        await eventually(counts(pool, "SELECT count(*) FROM outbox", 0), 30, "rows published after the outage")
    finally:
        await relay.stop()
        await producer.stop()
        broker.stop()


async def listeners(pool, schema) -> set[int]:
    rows = await pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE query = $1", f'LISTEN "{outbox.channel(schema)}"'
    )
    return {r["pid"] for r in rows}


async def test_lost_listen_connection_is_reopened_so_notify_stays_fast(infra, pool, producer, schema, topic):
    relay = OutboxRelay(dsn=infra.database_url, pool=pool, producer=producer, schema=schema, sweep_interval_s=30)
    await relay.start()
    try:
        await queue(pool, schema, (topic, note(1, "agg-a")))
        await eventually(counts(pool, "SELECT count(*) FROM outbox", 0), 5, "NOTIFY to publish the first row")
        old = await listeners(pool, schema)
        assert len(old) == 1
        await pool.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(old))

        async def relistening() -> bool:
            now = await listeners(pool, schema)
            return bool(now) and not now & old

        await eventually(relistening, 5, "the relay to LISTEN again")
        await queue(pool, schema, (topic, note(2, "agg-a")))  # only NOTIFY can publish it before the 30 s sweep
        await eventually(counts(pool, "SELECT count(*) FROM outbox", 0), 5, "NOTIFY to publish after reconnecting")
    finally:
        await relay.stop()


async def age_inbox(pool, old: int, fresh: int) -> None:
    await pool.executemany(
        "INSERT INTO inbox (consumer, message_id, processed_at) VALUES ('test', $1, now() - interval '2 hours')",
        [(f"old-{i}",) for i in range(old)],
    )
    await pool.executemany("INSERT INTO inbox (consumer, message_id) VALUES ('test', $1)", [(f"new-{i}",) for i in range(fresh)])


async def test_runtime_prunes_inbox_rows_older_than_the_retention(infra, tmp_path: Path):
    schema = unique("prune").replace("-", "_")
    settings = infra.settings(inbox_retention_hours=1, inbox_prune_interval_s=1)
    runtime = ServiceRuntime(name=schema, schema=schema, settings=settings, migrations=tmp_path)
    await runtime.start_core()
    try:
        await age_inbox(runtime.pool, old=30, fresh=5)
        await eventually(counts(runtime.pool, "SELECT count(*) FROM inbox", 5), 10, "expired inbox rows pruned")
        assert await count(runtime.pool, "SELECT count(*) FROM inbox WHERE message_id LIKE 'new-%'") == 5
    finally:
        await runtime.stop()


async def test_pruning_goes_in_batches_and_one_replica_at_a_time(infra, pool, schema):
    await age_inbox(pool, old=25, fresh=3)
    pruner = InboxPruner(pool=pool, schema=schema, retention_hours=1, interval_s=3600, batch_size=10)
    other = await asyncpg.connect(infra.database_url)
    try:
        async with other.transaction():  # another replica is pruning this schema
            await other.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"posint.prune.{schema}")
            assert await pruner.prune() is None
            assert await count(pool, "SELECT count(*) FROM inbox") == 28
    finally:
        await other.close()
    pruned = sample("posint_inbox_pruned_total", schema)
    assert await pruner.prune() == 25
    assert sample("posint_inbox_pruned_total", schema) == pruned + 25
    assert await count(pool, "SELECT count(*) FROM inbox") == 3
