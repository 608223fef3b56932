-- The latest report of telling the delivery platform the order's status (integrations.events
-- order-status-pushed): {status, outcome, attempts, error, at}. Not a status change, so not a
-- status_history line; a report older than the one kept (out of order) changes nothing.
ALTER TABLE orders ADD COLUMN platform_sync jsonb;
