"""Retention of the delivery tables, with the shared ``posint_common.retention.Pruner``: a message
delivered more than ``WEBHOOKS_RETENTION_HOURS`` ago goes with its attempts, a message that finally
failed after ``WEBHOOKS_FAILED_RETENTION_HOURS`` (longer: ``recover`` and the deliveries log need
them), a finished recovery after the first. Pending messages are never pruned, however old.

The trade-off: a webhook-id is unique only while its message row lasts, so an event redelivered by
the broker after both its inbox row and its messages were pruned is sent again (the receiver
deduplicates on webhook-id)."""
from __future__ import annotations

import asyncpg
from prometheus_client import Counter

from posint_common.retention import Pruner, PruneStep

PRUNED = Counter("posint_webhook_messages_pruned_total", "Webhook messages deleted after their retention (with their attempts)",
                 ["status"])

# A settled message with its attempts, in one statement (the foreign key is checked at its end);
# SKIP LOCKED: a message being put back (retry, recover) right now stays.
MESSAGES = """
WITH old AS (
    SELECT id FROM messages WHERE status = '{status}' AND last_attempt_at < now() - $1::float8 * interval '1 hour'
    ORDER BY last_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED),
gone AS (DELETE FROM attempts USING old WHERE attempts.message = old.id)
DELETE FROM messages USING old WHERE messages.id = old.id
"""
RECOVERIES = """
DELETE FROM recoveries WHERE id IN (
    SELECT id FROM recoveries WHERE finished_at < now() - $1::float8 * interval '1 hour' ORDER BY id LIMIT $2)
"""


def message_pruner(pool: asyncpg.Pool, schema: str, *, retention_hours: float, failed_retention_hours: float,
                   interval_s: float, batch_size: int = 1000) -> Pruner:
    return Pruner(
        pool=pool, schema=schema, name="webhook_messages", lock=f"posint.prune.{schema}.webhooks",
        interval_s=interval_s, batch_size=batch_size,
        steps=[
            PruneStep("webhook_delivered", MESSAGES.format(status="delivered"), retention_hours, PRUNED.labels("delivered")),
            PruneStep("webhook_failed", MESSAGES.format(status="failed"), failed_retention_hours, PRUNED.labels("failed")),
            PruneStep("webhook_recoveries", RECOVERIES, retention_hours),
        ],
    )
