-- Outbox rows that fail to publish: bounded retries with backoff, then parked for an operator
-- (python -m posint_common.outbox retry). Rows of the same aggregate wait behind a held row.
ALTER TABLE outbox
    ADD COLUMN attempts   integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error text,
    ADD COLUMN retry_at   timestamptz,
    ADD COLUMN parked_at  timestamptz;

-- Held rows (waiting for a retry or parked): few, so the relay's "not behind a held row" check is cheap.
CREATE INDEX outbox_held ON outbox (aggregateid, seq) WHERE retry_at IS NOT NULL OR parked_at IS NOT NULL;

-- The pruner deletes the oldest inbox rows first.
CREATE INDEX inbox_processed_at ON inbox (processed_at);
