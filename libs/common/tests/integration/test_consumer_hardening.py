"""Consumer hardening: whatever a record carries it ends handled or dead-lettered and its partition
moves on; only an outage holds a partition, and visibly; a record's identity survives redelivery;
a failed query is answered at once; a loop that dies takes its process down."""
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from posint_common import kafka, metrics
from posint_common.consumer import ConsumerLoop, Route
from posint_common.contracts.replies import DEAD_LETTER, REPLY, Reply
from posint_common.envelope import Envelope
from posint_common.testing import eventually, read_topic, unique

NOTE = "posint.test.note.v1"
SUBJECT = "same-key"  # one partition: whatever is behind a poison record waits on it
DYING_SERVICE = Path(__file__).with_name("dying_service.py")


class Note(BaseModel):
    text: str


class Outage:
    """While on, the "trigger" note takes the outbox away (so not even a dead letter can be written)."""

    pool = None


async def record_note(ctx, note: Note):
    if note.text == "bad-number":
        await ctx.conn.fetchval("SELECT $1::int8", 2**63)  # out of int8 range: can never succeed
    if note.text == "bad-model":
        Note.model_validate({})  # a handler's own validation error: can never succeed either
    if note.text == "trigger" and Outage.pool is not None:
        async with Outage.pool.acquire() as other:  # not in this transaction
            await other.execute("ALTER TABLE IF EXISTS outbox RENAME TO outbox_away")
        raise ConnectionError("postgres went away")
    await ctx.conn.execute("INSERT INTO effects (message_id, note) VALUES ($1, $2)", ctx.envelope.id, note.text)


async def answer_note(ctx, note: Note) -> Reply:
    if note.text == "explode":
        raise RuntimeError("query handler fails")
    if note.text == "bad-number":
        await ctx.conn.fetchval("SELECT $1::int8", 2**63)
    return Reply(status=200, body={"text": note.text})


def make_loop(infra, pool, producer, schema, topic, handler=record_note, max_attempts=5, **options) -> ConsumerLoop:
    group = unique("test.hardening")
    return ConsumerLoop(
        name=group, topics=(topic,), routes={NOTE: Route(Note, handler)},
        consumer=kafka.make_consumer(infra.settings(), topic, group_id=group, client_id=unique(group)),
        producer=producer, pool=pool, schema=schema, source="posint/test",
        pacer_settings={"busy_ms": 5, "idle_ms": 50, "window_ms": 1000}, max_attempts=max_attempts, **options,
    )


def note(text: str, **attrs) -> Envelope:
    return Envelope.wrap(Note(text=text), source="posint/test", type=NOTE, subject=SUBJECT, **attrs)


def replace(headers, name, value):
    return [(n, value if n == name else v) for n, v in headers]


def without(headers, name):
    return [(n, v) for n, v in headers if n != name]


async def produce(producer, topic, records):
    for headers, value, key in records:
        await producer.send_and_wait(topic, value, key=key, headers=headers)


_SAME = object()


def record(envelope: Envelope, headers=None, value=_SAME, key=SUBJECT.encode()):
    """(headers, value, key) of ``envelope``, with the headers or value replaced."""
    return (envelope.headers() if headers is None else headers, envelope.value() if value is _SAME else value, key)


async def notes(pool) -> list[str]:
    return [r["note"] for r in await pool.fetch("SELECT note FROM effects ORDER BY id")]


async def dead_letters(pool, topic) -> list[dict]:
    """Dead letters still in the outbox (no relay runs in these tests, so none has left)."""
    rows = await pool.fetch("SELECT envelope FROM outbox WHERE topic = $1 ORDER BY seq", f"{topic}.dlq")
    letters = [json.loads(row["envelope"]) for row in rows]
    assert all(letter["type"] == DEAD_LETTER for letter in letters)
    return [letter["data"] for letter in letters]


async def _count_dead_letters_at_least(pool, topic, n: int) -> bool:
    return len(await dead_letters(pool, topic)) >= n


async def test_no_record_stops_its_partition(infra, pool, producer, schema, topic):
    def poison(change=lambda headers: headers, value=_SAME):
        envelope = note("poison")  # each its own ce_id
        return record(envelope, change(envelope.headers()), value)

    poisons = [  # (what the dead letter's error must mention, the record)
        ("ce_tenantid has no value", poison(lambda h: h + [("ce_tenantid", None)])),
        ("ce_subject is not UTF-8", poison(lambda h: replace(h, "ce_subject", b"\xff\xfe"))),
        ("duplicate header ce_id", poison(lambda h: h + [("ce_id", b"another-id")])),
        ("missing ce_id", poison(lambda h: without(h, "ce_id"))),
        ("control character", poison(lambda h: replace(h, "ce_id", b"a\x00b"))),
        ("longer than", poison(lambda h: replace(h, "ce_id", b"x" * 5000))),
        ("not JSON", poison(value=b"{not json")),
        ("not JSON", poison(lambda h: h + [("x-\x00", b"\x00\xff")], value=b"\x00")),
        ("not a JSON object", poison(value=b"[1, 2]")),
        ("invalid payload", poison(value=b'{"text": 5}')),
        ("invalid payload", poison(value=None)),
        ("0x00", poison(value=b'{"text": "a\\u0000b"}')),  # Postgres refuses NUL in text
    ]
    foreign = note("foreign-null-header")
    fine = [record(foreign, foreign.headers() + [("traceparent", None)]), record(note("non-utf8-key"), key=b"\xff\xfe")]
    loop = make_loop(infra, pool, producer, schema, topic)
    await loop.start()
    try:
        await produce(producer, topic, [poisoned for _, poisoned in poisons] + fine + [record(note("after"))])
        await eventually(lambda: _notes_include(pool, {"foreign-null-header", "non-utf8-key", "after"}), 30,
                         "the messages behind the poison ones")
        letters = await dead_letters(pool, topic)
    finally:
        await loop.stop()
    assert sorted(await notes(pool)) == ["after", "foreign-null-header", "non-utf8-key"]
    assert len(letters) == len(poisons)
    for (expected, _), letter in zip(poisons, letters):
        assert expected in letter["error"], (expected, letter["error"])
        assert letter["attempts"] == 1, letter
    assert "\x00" not in json.dumps(letters)  # Postgres text refuses NUL
    assert loop.ready is False  # stopped; while running it never stalled:
    assert metrics.CONSUMER_STALLED.labels(loop.name)._value.get() == 0
    assert metrics.BATCH_RETRIES.labels(loop.name)._value.get() == 0


async def _notes_include(pool, expected: set) -> bool:
    return expected <= set(await notes(pool))


async def test_errors_that_can_never_succeed_are_dead_lettered_at_once(infra, pool, producer, schema, topic):
    loop = make_loop(infra, pool, producer, schema, topic, max_attempts=5)
    await loop.start()
    try:
        began = time.monotonic()
        await produce(producer, topic, [record(note("bad-number")), record(note("bad-model")), record(note("after"))])
        await eventually(lambda: _notes_include(pool, {"after"}), 30, "the message behind the permanent failures")
        elapsed = time.monotonic() - began
        letters = await dead_letters(pool, topic)
    finally:
        await loop.stop()
    assert [letter["attempts"] for letter in letters] == [1, 1]
    assert "DataError" in letters[0]["error"] and "ValidationError" in letters[1]["error"]
    assert elapsed < 3  # five tries with backoff would take 1.75 s each


async def test_an_outage_holds_the_partition_visibly_and_the_replay_doubles_nothing(infra, pool, producer, schema, topic):
    """The batch [unreadable, no ce_id, trigger, after] is written up to the trigger, which takes
    Postgres away; the replay must not write the first two dead letters again."""
    loop = make_loop(infra, pool, producer, schema, topic, max_attempts=2)
    anonymous = note("anonymous")
    await produce(producer, topic, [
        record(note("unreadable"), value=b"{not json"),
        record(anonymous, without(anonymous.headers(), "ce_id")),
        record(note("trigger")),
        record(note("after")),
    ])
    Outage.pool = pool
    await loop.start()  # after producing: one fetch, one batch
    try:
        await eventually(lambda: metrics.BATCH_RETRIES.labels(loop.name)._value.get() >= 1, 30, "a replayed batch")
        assert metrics.CONSUMER_STALLED.labels(loop.name)._value.get() == 1
        assert loop.ready is False  # /readyz reports the consumers check false
        Outage.pool = None
        await pool.execute("ALTER TABLE outbox_away RENAME TO outbox")
        await eventually(lambda: _notes_include(pool, {"after"}), 30, "the replayed batch to finish")
        await eventually(lambda: loop.ready, 10, "the consumer to be ready again")
        assert metrics.CONSUMER_STALLED.labels(loop.name)._value.get() == 0
        letters = await dead_letters(pool, topic)
    finally:
        Outage.pool = None
        await pool.execute("ALTER TABLE IF EXISTS outbox_away RENAME TO outbox")
        await loop.stop()
    assert await notes(pool) == ["trigger", "after"]  # the record without ce_id was never applied
    assert [letter["offset"] for letter in letters] == [0, 1]  # each written once
    assert metrics.MESSAGES.labels(loop.name, "invalid", "duplicate")._value.get() >= 1  # replayed, not rewritten
    assert "missing ce_id" in letters[1]["error"]


@pytest.fixture
async def replies(infra):
    name = unique("test.replies")
    await kafka.ensure_topics(infra.bootstrap_servers, (name,))
    return name


async def ask(infra, producer, topic, replies, text) -> tuple[Reply, float]:
    query = note(text, replyto=replies)
    began = time.monotonic()
    await producer.send_and_wait(topic, query.value(), key=query.key, headers=query.headers())
    [answer] = await read_topic(infra.bootstrap_servers, replies, 1, timeout_s=15,
                                match=lambda e: e.type == REPLY and e.causationid == query.id)
    return answer.parse(Reply), time.monotonic() - began


async def test_a_failed_query_is_answered_500_at_once(infra, pool, producer, schema, topic, replies):
    loop = make_loop(infra, pool, producer, schema, topic, handler=answer_note, max_attempts=5, read_only=True)
    await loop.start()
    await eventually(lambda: loop.ready, 30, "the query consumer to join")
    try:
        ok, _ = await ask(infra, producer, topic, replies, "hello")
        failed, elapsed = await ask(infra, producer, topic, replies, "bad-number")
        # the 500 goes out first, the dead letter is committed right after it
        await eventually(lambda: _count_dead_letters_at_least(pool, topic, 1), 10, "the dead letter")
        letters = await dead_letters(pool, topic)
    finally:
        await loop.stop()
    assert ok.status == 200 and ok.body == {"text": "hello"}
    assert failed.status == 500 and failed.problem.status == 500
    assert elapsed < 3  # well before a requester's deadline (REPLY_TIMEOUT_MS, 5 s)
    assert [letter["attempts"] for letter in letters] == [1]


async def test_a_query_that_fails_while_postgres_is_away_is_answered_counted_and_logged(
    infra, pool, producer, schema, topic, replies
):
    loop = make_loop(infra, pool, producer, schema, topic, handler=answer_note, max_attempts=2, read_only=True)
    await loop.start()
    await eventually(lambda: loop.ready, 30, "the query consumer to join")
    failures = metrics.MESSAGES.labels(loop.name, NOTE, "failed")
    before = failures._value.get()
    await pool.execute("ALTER TABLE outbox RENAME TO outbox_away")  # the dead letter cannot be written
    try:
        failed, elapsed = await ask(infra, producer, topic, replies, "explode")
        await eventually(lambda: failures._value.get() == before + 1, 10, "the failure to be counted")
    finally:
        await pool.execute("ALTER TABLE outbox_away RENAME TO outbox")
        await loop.stop()
    assert failed.status == 500
    assert elapsed < 4  # before a requester's deadline (REPLY_TIMEOUT_MS, 5 s)


def run_dying_service(infra, victim: str, tmp_path: Path, topic: str) -> tuple[int, list[dict]]:
    env = {**os.environ, "DATABASE_URL": infra.database_url, "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
           "HEALTH_PORT": "0", "GATEWAY_PORT": "0", "KAFKA_SESSION_TIMEOUT_MS": "3000"}
    schema = unique("dying").replace("-", "_")
    process = subprocess.run([sys.executable, str(DYING_SERVICE), victim, schema, topic, str(tmp_path)],
                             env=env, capture_output=True, text=True, timeout=60)
    lines = []
    for line in process.stdout.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    return process.returncode, lines or [{"stdout": process.stdout[-2000:], "stderr": process.stderr[-2000:]}]


@pytest.mark.parametrize("victim, task", [
    ("consumer", "consumer-dying.notes"),
    ("relay", "outbox-relay-"),
    ("reply-router", "gateway-reply-router"),
])
async def test_a_dead_loop_takes_its_process_down(infra, tmp_path, topic, victim, task):
    status, lines = await asyncio.to_thread(run_dying_service, infra, victim, tmp_path, topic)
    events = [line.get("event") for line in lines]
    assert status == 1, lines[-5:]
    died = [line for line in lines if line.get("event") == "task_died"]
    assert len(died) == 1 and died[0]["task"].startswith(task) and died[0]["level"] == "error", died
    assert died[0]["error"]
    assert "service_failed" not in events
    assert events.index("service_started") < events.index("task_died") < events.index("service_stopped")
