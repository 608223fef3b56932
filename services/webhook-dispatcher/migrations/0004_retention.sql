-- Retention (adapters/retention.py): delivered and failed messages go, oldest settled first, with
-- their attempts; each needs an index to be found without reading the table.
CREATE INDEX messages_delivered_at ON messages (last_attempt_at) WHERE status = 'delivered';
CREATE INDEX messages_failed_at ON messages (last_attempt_at) WHERE status = 'failed';
CREATE INDEX attempts_message ON attempts (message);
