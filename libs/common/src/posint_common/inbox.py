"""Idempotent consumers: the processed-message row is written in the same transaction as the
effect, so a redelivered message is a unique-key no-op, not a race."""
from __future__ import annotations

import asyncpg

from posint_common.envelope import Envelope


def message_key(envelope: Envelope) -> str:
    """CloudEvents identity: ``source`` + ``id``."""
    return f"{envelope.source}/{envelope.id}"


def position_key(topic: str, partition: int, offset: int) -> str:
    """The identity of a record without a readable one: where it sits, the same on every redelivery."""
    return f"kafka:{topic}:{partition}:{offset}"


async def claim(conn: asyncpg.Connection, consumer: str, key: str) -> bool:
    """True the first time ``consumer`` claims ``key``; call inside the effect's transaction."""
    row = await conn.fetchval(
        "INSERT INTO inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
        consumer,
        key,
    )
    return row is not None
