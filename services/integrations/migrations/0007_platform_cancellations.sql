-- A platform may cancel one of its orders (a push, or a sync listing it cancelled). The order row
-- remembers it, so the cancellation is handed to the orders service once, however often the
-- platform repeats it.
ALTER TABLE inbound_orders
    ADD COLUMN cancelled_at  timestamptz,
    ADD COLUMN cancel_reason text;
