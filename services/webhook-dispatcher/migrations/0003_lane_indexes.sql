-- Each delivery lane reads its own due queue in due order and stops after a page
-- (adapters/messages.CANDIDATES): first attempts and retries get a partial index each.
DROP INDEX IF EXISTS messages_due;
CREATE INDEX messages_first_due ON messages (due_at, id) WHERE status = 'pending' AND attempts = 0;
CREATE INDEX messages_retry_due ON messages (due_at, id) WHERE status = 'pending' AND attempts > 0;
