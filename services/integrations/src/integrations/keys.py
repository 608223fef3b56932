"""Key ring operations for operators: a new key entry, and resealing every stored secret with the
ring's first key so an old key can be dropped.

    python -m integrations.keys new <key id>     # prints '<key id>:<base64 key>'
    python -m integrations.keys reseal           # DATABASE_URL and INTEGRATIONS_ENCRYPTION_KEYS from the environment

Rotation without downtime: put the new entry first in INTEGRATIONS_ENCRYPTION_KEYS, keeping the old
one after it, restart the service (new secrets are sealed with the new key, old ones still open),
run ``reseal``, then remove the old entry. The service refuses to start while a stored secret's key
is missing from the ring.
"""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg

from posint_common import vault

from integrations import SCHEMA
from integrations.adapters.vault import VARIABLE, KeyRing, KeyRingError, associated_data, new_key_entry
from integrations.domain.model import CREDENTIALS, INBOUND_SECRET, Sealed

BATCH = 500


async def reseal(conn: asyncpg.Connection, keys: KeyRing) -> int:
    """Re-encrypt, with the first key, every secret sealed with another; returns how many. Each
    batch is one transaction; a value that does not open stops it (nothing is re-sealed blindly)."""
    done = 0
    for purpose, column in ((CREDENTIALS, "credentials"), (INBOUND_SECRET, "inbound_secret")):
        while True:
            async with conn.transaction():
                rows = await conn.fetch(
                    f"SELECT id, tenant_id, {column} AS blob, {column}_key_id AS key_id FROM {SCHEMA}.integrations"
                    f" WHERE {column}_key_id IS NOT NULL AND {column}_key_id <> $1 ORDER BY id LIMIT $2 FOR UPDATE",
                    keys.primary, BATCH,
                )
                for row in rows:
                    aad = associated_data(row["tenant_id"], row["id"], purpose)
                    fresh = keys.seal(keys.open(Sealed(row["key_id"], bytes(row["blob"])), aad), aad)
                    await conn.execute(
                        f"UPDATE {SCHEMA}.integrations SET {column} = $2, {column}_key_id = $3 WHERE id = $1",
                        row["id"], fresh.blob, fresh.key_id,
                    )
                done += len(rows)
            if len(rows) < BATCH:
                break
    return done


def ensure_dev_keys(path: Path) -> str:
    """For ``make run``: the setting's value kept in ``path`` (see posint_common.vault)."""
    return vault.ensure_dev_keys(path, KeyRing)


async def _reseal_from_environment() -> int:
    keys = KeyRing.parse(os.environ.get(VARIABLE, ""))
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        return await reseal(conn, keys)
    finally:
        await conn.close()


def main(argv: list[str]) -> int:
    try:
        if len(argv) == 2 and argv[0] == "new":
            print(new_key_entry(argv[1]))
            return 0
        if argv == ["reseal"]:
            print(f"resealed {asyncio.run(_reseal_from_environment())} values with the first key")
            return 0
    except (KeyRingError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
