-- The outbox keeps each envelope exactly as written (json, not jsonb): jsonb reorders object keys,
-- so a command's reply, which travels through the outbox, would reach the client in another key
-- order than the same document read through a query.
ALTER TABLE outbox ALTER COLUMN envelope TYPE json USING envelope::json;
