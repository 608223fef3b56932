"""The dispatcher's delivery tables: messages (one per event and endpoint), their attempts, and
recoveries. Claiming uses a lease (``lease_until``) taken with FOR UPDATE SKIP LOCKED and committed
at once, so no transaction stays open across an HTTP attempt, replicas never take the same message,
and a message whose worker died is taken again when its lease runs out."""
from __future__ import annotations

from datetime import datetime

import asyncpg

from posint_common.vault import Sealed

from webhook_dispatcher.adapters.sender import Attempt

CHANNEL = "webhook_dispatcher_messages"  # NOTIFY'd when messages become due now
NEW, RECOVER = "new", "recover"  # payloads: new messages (first attempts), a recovery opened; none: put back

# Due messages of one lane in due order (the partial index on due_at), skipping endpoints already at
# their cap and a message whose order has an earlier message to the same endpoint still waiting for
# its first attempt; locked with SKIP LOCKED so replicas never pick the same rows.
# The lane's condition is written out (LANES), not a parameter, so the lane's partial index applies.
CANDIDATES = """
SELECT m.id, m.endpoint_id FROM messages m
WHERE m.status = 'pending' AND {lane} AND m.due_at <= now() AND (m.lease_until IS NULL OR m.lease_until < now())
  AND NOT (m.endpoint_id = ANY ($1::bigint[]))
  AND (m.order_key IS NULL OR m.id <= coalesce(
        (SELECT min(e.id) FROM messages e  -- a scalar subquery: one index probe per row, never a join
         WHERE e.endpoint_id = m.endpoint_id AND e.order_key = m.order_key AND e.status = 'pending' AND e.attempts = 0),
        m.id))
ORDER BY m.due_at, m.id LIMIT $2
FOR UPDATE OF m SKIP LOCKED
"""
LANES = {True: CANDIDATES.format(lane="m.attempts = 0"), False: CANDIDATES.format(lane="m.attempts > 0")}

LEASE = """
UPDATE messages m SET lease_until = now() + make_interval(secs => $2)
FROM endpoints e
WHERE m.id = ANY ($1::bigint[]) AND e.id = m.endpoint_id
RETURNING m.id, m.message_id, m.endpoint_id, m.event_type, m.body, m.attempts, e.tenant_id, e.url,
          e.is_active AND e.deleted_at IS NULL AS live, e.secret, e.secret_key_id, e.previous_secret,
          e.previous_secret_key_id, e.previous_secret_until
"""


def sealed_secrets(row: asyncpg.Record, now: datetime) -> list[Sealed]:
    """The endpoint's secret, and its previous one while a rotation's overlap lasts."""
    found = [Sealed(row["secret_key_id"], bytes(row["secret"]))]
    if row["previous_secret"] is not None and row["previous_secret_until"] and row["previous_secret_until"] > now:
        found.append(Sealed(row["previous_secret_key_id"], bytes(row["previous_secret"])))
    return found


async def record(conn: asyncpg.Connection, endpoint_ids: list[int], message_ids: list[str], event_type: str,
                 order_key: str | None, body: str) -> int:
    """One message per endpoint; a message id already recorded (the same event again) is skipped.
    The rows and the wake-up (NOTIFY, delivered at commit, only when a row is new) in one round trip."""
    if not endpoint_ids:
        return 0
    row = await conn.fetchrow(
        "WITH inserted AS (INSERT INTO messages (endpoint_id, message_id, event_type, order_key, body)"
        " SELECT e, m, $3, $4, $5 FROM unnest($1::bigint[], $2::text[]) AS t (e, m)"
        " ON CONFLICT (message_id) DO NOTHING RETURNING 1)"
        " SELECT n, CASE WHEN n > 0 THEN pg_notify($6, $7) END AS woken FROM (SELECT count(*) AS n FROM inserted) c",
        endpoint_ids, message_ids, event_type, order_key, body, CHANNEL, NEW,
    )
    return row["n"]


async def matching_endpoints(conn: asyncpg.Connection, tenant_id: str, integration_id: int, event: str,
                             *, besides: int | None = None) -> list[int]:
    rows = await conn.fetch(
        "SELECT id FROM endpoints WHERE tenant_id = $1 AND integration_id = $2 AND $3 = ANY (events)"
        " AND is_active AND deleted_at IS NULL AND id IS DISTINCT FROM $4 ORDER BY id",
        tenant_id, integration_id, event, besides,
    )
    return [row["id"] for row in rows]


async def claim(conn: asyncpg.Connection, *, fresh: bool, limit: int, used: dict[int, int], per_endpoint: int,
                lease_s: float) -> tuple[list[asyncpg.Record], bool]:
    """Up to ``limit`` due messages of one lane (first attempts, or retries), at most
    ``per_endpoint`` in flight per endpoint counting ``used``, and a message of an order only once
    the order's earlier messages to that endpoint had their first attempt. The lease is taken and
    committed at once. Also says whether more may be due (the candidates filled their page)."""
    full = [endpoint for endpoint, count in used.items() if count >= per_endpoint]
    page = limit * 2
    async with conn.transaction():
        candidates = await conn.fetch(LANES[fresh], full, page)
        counts, chosen = dict(used), []
        for row in candidates:
            if counts.get(row["endpoint_id"], 0) < per_endpoint:
                counts[row["endpoint_id"]] = counts.get(row["endpoint_id"], 0) + 1
                chosen.append(row["id"])
                if len(chosen) == limit:
                    break
        leased = await conn.fetch(LEASE, chosen, lease_s) if chosen else []
    return leased, len(candidates) == page


def _text(value: str | None) -> str | None:
    return None if value is None else value.replace("\x00", "\ufffd")  # Postgres text refuses NUL


async def log_attempt(conn: asyncpg.Connection, message: int, endpoint_id: int, number: int, attempt: Attempt) -> None:
    await conn.execute(
        "INSERT INTO attempts (message, endpoint_id, attempt, attempted_at, outcome, status_code, latency_ms, error,"
        " response_body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        message, endpoint_id, number, attempt.attempted_at, attempt.outcome, attempt.status_code, attempt.latency_ms,
        _text(attempt.error), _text(attempt.response_body),
    )


async def delivered_many(conn: asyncpg.Connection, done: list[tuple[int, int, int, Attempt]]) -> None:
    """Successes ``(message, endpoint id, attempt number, attempt)``, in one statement (atomic on
    its own, one round trip for the batch): each attempt logged, each message delivered, the
    endpoints' failure clocks stopped (their rows locked in id order, so two replicas' batches
    never deadlock)."""
    await conn.execute(
        "WITH done AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::timestamptz[], $5::int[],"
        " $6::float8[], $7::text[]) AS t (message, endpoint_id, attempt, attempted_at, status_code, latency_ms, response_body)),"
        " logged AS (INSERT INTO attempts (message, endpoint_id, attempt, attempted_at, outcome, status_code, latency_ms,"
        " error, response_body) SELECT message, endpoint_id, attempt, attempted_at, 'success', status_code, latency_ms,"
        " NULL, response_body FROM done),"
        " settled AS (UPDATE messages m SET status = 'delivered', attempts = d.attempt, lease_until = NULL,"
        " last_attempt_at = now() FROM done d WHERE m.id = d.message)"
        " UPDATE endpoints SET failing_since = NULL WHERE id IN (SELECT id FROM endpoints WHERE id = ANY ($2::bigint[])"
        " AND failing_since IS NOT NULL ORDER BY id FOR NO KEY UPDATE)",
        [each[0] for each in done], [each[1] for each in done], [each[2] for each in done],
        [each[3].attempted_at for each in done], [each[3].status_code for each in done],
        [each[3].latency_ms for each in done], [_text(each[3].response_body) for each in done],
    )


async def failed_many(conn: asyncpg.Connection, done: list[tuple[int, int, int, Attempt, float | None]]) -> dict[int, datetime]:
    """Failures ``(message, endpoint id, attempt number, attempt, seconds until the retry or None
    when given up)``, in one statement: each attempt logged, each message put back (``pending``,
    due then) or ``failed``, the endpoints' failure clocks started where they were not (rows
    locked in id order, as ``delivered_many``). Returns each endpoint's ``failing_since``."""
    rows = await conn.fetch(
        "WITH done AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::timestamptz[], $5::text[],"
        " $6::int[], $7::float8[], $8::text[], $9::text[], $10::float8[]) AS t (message, endpoint_id, attempt,"
        " attempted_at, outcome, status_code, latency_ms, error, response_body, due_in_s)),"
        " logged AS (INSERT INTO attempts (message, endpoint_id, attempt, attempted_at, outcome, status_code, latency_ms,"
        " error, response_body) SELECT message, endpoint_id, attempt, attempted_at, outcome, status_code, latency_ms,"
        " error, response_body FROM done),"
        " settled AS (UPDATE messages m SET status = CASE WHEN d.due_in_s IS NULL THEN 'failed' ELSE 'pending' END,"
        " attempts = d.attempt, due_at = now() + make_interval(secs => coalesce(d.due_in_s, 0)), lease_until = NULL,"
        " last_attempt_at = now() FROM done d WHERE m.id = d.message),"
        " locked AS MATERIALIZED (SELECT id FROM endpoints WHERE id = ANY ($2::bigint[]) ORDER BY id FOR NO KEY UPDATE),"
        " first AS (SELECT endpoint_id, min(attempted_at) AS at FROM done GROUP BY endpoint_id)"
        " UPDATE endpoints e SET failing_since = coalesce(e.failing_since, f.at) FROM first f"
        " WHERE e.id = f.endpoint_id AND e.id IN (SELECT id FROM locked) RETURNING e.id, e.failing_since",
        [each[0] for each in done], [each[1] for each in done], [each[2] for each in done],
        [each[3].attempted_at for each in done], [each[3].outcome for each in done],
        [each[3].status_code for each in done], [each[3].latency_ms for each in done],
        [_text(each[3].error) for each in done], [_text(each[3].response_body) for each in done],
        [each[4] for each in done],
    )
    return {row["id"]: row["failing_since"] for row in rows}


async def settle(conn: asyncpg.Connection, message: int, *, status: str, attempts: int, due_in_s: float = 0) -> None:
    await conn.execute(
        "UPDATE messages SET status = $2, attempts = $3, due_at = now() + make_interval(secs => $4),"
        " lease_until = NULL, last_attempt_at = now() WHERE id = $1",
        message, status, attempts, due_in_s,
    )


async def disable(conn: asyncpg.Connection, endpoint_id: int, reason: str) -> asyncpg.Record | None:
    """Switch the endpoint off; None when it already was."""
    return await conn.fetchrow(
        "UPDATE endpoints SET is_active = false, disabled_at = now(), disabled_reason = $2, updated_at = now()"
        " WHERE id = $1 AND is_active RETURNING id, tenant_id, integration_id, url",
        endpoint_id, reason,
    )


async def deliveries(conn: asyncpg.Connection, endpoint_id: int, limit: int, before: int | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT a.id, m.message_id, m.event_type, a.attempt, a.attempted_at, a.outcome, a.status_code, a.latency_ms,"
        " a.error, a.response_body FROM attempts a JOIN messages m ON m.id = a.message"
        " WHERE a.endpoint_id = $1 AND ($2::bigint IS NULL OR a.id < $2) ORDER BY a.id DESC LIMIT $3",
        endpoint_id, before, limit,
    )


async def resend(conn: asyncpg.Connection, endpoint_id: int, message_id: str) -> bool:
    """Send one message again now (not while an attempt of it is under way)."""
    found = await conn.fetchval(
        "UPDATE messages SET status = 'pending', due_at = now(),"
        " lease_until = CASE WHEN lease_until > now() THEN lease_until END"
        " WHERE endpoint_id = $1 AND message_id = $2 RETURNING true",
        endpoint_id, message_id,
    )
    if found:
        await conn.execute(f"NOTIFY {CHANNEL}")
    return bool(found)


async def open_recovery(conn: asyncpg.Connection, endpoint_id: int, since: datetime) -> asyncpg.Record:
    """Note what to send again: the failed messages since ``since`` up to the newest now."""
    upto = await conn.fetchval("SELECT coalesce(max(id), 0) FROM messages WHERE endpoint_id = $1", endpoint_id)
    count = await conn.fetchval(
        "SELECT count(*) FROM messages WHERE endpoint_id = $1 AND status = 'failed' AND created_at >= $2 AND id <= $3",
        endpoint_id, since, upto,
    )
    row = await conn.fetchrow(
        "INSERT INTO recoveries (endpoint_id, since, upto) VALUES ($1, $2, $3) RETURNING id, endpoint_id, since",
        endpoint_id, since, upto,
    )
    await conn.execute(f"NOTIFY {CHANNEL}, '{RECOVER}'")
    return {**dict(row), "messages": count}


async def recover_batch(conn: asyncpg.Connection, batch: int) -> int:
    """Put back one batch of one open recovery, in its own transaction; 0 when none is open."""
    async with conn.transaction():
        job = await conn.fetchrow(
            "SELECT id, endpoint_id, since, upto, after FROM recoveries WHERE finished_at IS NULL ORDER BY id"
            " LIMIT 1 FOR UPDATE SKIP LOCKED")
        if job is None:
            return 0
        ids = await conn.fetch(
            "UPDATE messages SET status = 'pending', due_at = now() WHERE id IN ("
            " SELECT id FROM messages WHERE endpoint_id = $1 AND status = 'failed' AND created_at >= $2"
            " AND id > $3 AND id <= $4 ORDER BY id LIMIT $5 FOR UPDATE) RETURNING id",
            job["endpoint_id"], job["since"], job["after"], job["upto"], batch,
        )
        last = max((row["id"] for row in ids), default=job["upto"])
        done = len(ids) < batch
        await conn.execute("UPDATE recoveries SET after = $2, finished_at = CASE WHEN $3 THEN now() END WHERE id = $1",
                           job["id"], last, done)
        if ids:
            await conn.execute(f"NOTIFY {CHANNEL}")
        return max(len(ids), 1)


async def backlog(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT (SELECT count(*) FROM messages WHERE status = 'pending') AS pending,"
        " (SELECT extract(epoch FROM now() - min(created_at)) FROM messages WHERE status = 'pending') AS oldest_s,"
        " (SELECT count(*) FROM endpoints WHERE disabled_at IS NOT NULL AND NOT is_active AND deleted_at IS NULL) AS disabled")
