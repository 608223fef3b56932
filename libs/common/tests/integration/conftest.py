"""A scratch schema (runtime tables + an ``effects`` table), a pool and a producer per test."""
from pathlib import Path

import pytest

from posint_common import db, kafka
from posint_common.testing import unique

EFFECTS_SQL = "CREATE TABLE effects (id bigserial PRIMARY KEY, message_id text NOT NULL, note text);\n"


@pytest.fixture
async def schema(infra, tmp_path: Path):
    name = unique("t").replace("-", "_")
    (tmp_path / "0001_effects.sql").write_text(EFFECTS_SQL)
    await db.migrate(infra.database_url, name, tmp_path)
    return name


@pytest.fixture
async def pool(infra, schema):
    pool = await db.create_pool(infra.database_url, schema, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture
async def producer(infra):
    producer = kafka.make_producer(infra.settings(), client_id="test")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def topic(infra):
    name = unique("test.topic")
    await kafka.ensure_topics(infra.bootstrap_servers, (name, f"{name}.dlq"))
    return name

