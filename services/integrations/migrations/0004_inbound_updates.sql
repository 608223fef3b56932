-- A platform may push an order again with changed content: the order row keeps the latest content
-- and its revision, and every delivery id seen is kept so a redelivered message stays a duplicate.
CREATE TABLE inbound_deliveries (
    integration_id bigint      NOT NULL REFERENCES integrations (id),
    webhook_id     text        NOT NULL,
    external_id    text        NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, webhook_id)
);
INSERT INTO inbound_deliveries (integration_id, webhook_id, external_id, received_at)
    SELECT integration_id, webhook_id, external_id, received_at FROM inbound_orders WHERE webhook_id IS NOT NULL;

ALTER TABLE inbound_orders
    ADD COLUMN revision   integer     NOT NULL DEFAULT 1,
    ADD COLUMN updated_at timestamptz;
