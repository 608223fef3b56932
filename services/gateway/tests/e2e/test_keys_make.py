"""``make key-create|key-list|key-rotate|key-revoke`` and ``make tenant``: the real make targets on a
run dir that looks running (its launcher lock held here, stack.env pointing at the session's
Postgres). Values reach the CLI as typed: make and the shell never evaluate them."""
from __future__ import annotations

import asyncio
import fcntl
import uuid
from pathlib import Path

import pytest

from gateway.tenants import Authenticator

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture
def run_dir(infra, tmp_path):
    (tmp_path / "stack.env").write_text(f"DATABASE_URL={infra.database_url}\n")
    with open(tmp_path / "launcher.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what the launcher holds while the stack runs
        yield tmp_path


async def make(target: str, run_dir: Path, **values: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "make", "--no-print-directory", "-C", str(REPO), target, *(f"{k}={v}" for k, v in values.items()),
        f"POSINT_RUN_DIR={run_dir}", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 300)
    return process.returncode, out.decode(), err.decode()


async def test_make_key_targets_manage_keys_and_never_evaluate_input(run_dir, gateway_service):
    marker = Path(f"/tmp/{uuid.uuid4().hex[:12]}")  # short: a tenant name is at most 100 characters
    tenant = f"{uuid.uuid4().hex[:8]}$(shell touch {marker})`touch {marker}`"
    status, out, err = await make("tenant", run_dir, NAME=tenant)
    assert status == 0, err
    assert out.strip().splitlines()[-1].startswith("pk_")  # make tenant: the new key is the last line

    key_name = f"-ci $(touch {marker}) 'q\""
    status, out, err = await make("key-create", run_dir, TENANT=tenant, NAME=key_name, SCOPE="read")
    assert status == 0, err
    key = out.strip().splitlines()[-1]
    assert key.startswith("pk_")
    assert (await gateway_service.pool.fetchrow("SELECT name, scope FROM api_keys WHERE key_prefix = $1", key[:12])) == (
        key_name, "read")

    status, out, err = await make("key-list", run_dir, TENANT=tenant)
    assert status == 0, err
    assert any(line.split("\t")[:3] == [key[:12], key_name, "read"] for line in out.splitlines())

    status, out, err = await make("key-rotate", run_dir, KEY=key[:12], GRACE_HOURS="0")
    assert status == 0, err
    successor = out.strip().splitlines()[-1]
    uncached = Authenticator(gateway_service.pool, cache_seconds=0, miss_cache_seconds=0)
    assert await uncached.principal_for(key) is None and (await uncached.principal_for(successor)).scope == "read"

    status, out, err = await make("key-revoke", run_dir, KEY=successor[:12])
    assert status == 0, err
    assert await uncached.principal_for(successor) is None
    assert not marker.exists()

    status, _out, err = await make("key-create", run_dir, TENANT=tenant)
    assert status != 0 and "usage: make key-create" in err
