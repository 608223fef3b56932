"""Fixtures shared by the dispatcher's integration tests."""
import asyncio
import uuid

import pytest

from posint_common import db
from webhook_dispatcher.bootstrap import MIGRATIONS


@pytest.fixture
async def pool(infra):
    """A migrated schema of its own per test, on the session's embedded Postgres."""
    schema = f"wh_{uuid.uuid4().hex[:10]}"
    await db.migrate(infra.database_url, schema, MIGRATIONS)
    pool = await db.create_pool(infra.database_url, schema, max_size=6, application="webhook-tests")
    yield pool
    async with asyncio.timeout(10):  # a connection a stuck deliverer holds fails the test, never hangs it
        await pool.close()
