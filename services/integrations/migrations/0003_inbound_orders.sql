-- Inbound orders: every verified push that became an order, kept with its exact bytes (what was
-- signed) and its normalized form. (integration, external id) and (integration, webhook id) are
-- unique, so a repeated delivery creates nothing new.
CREATE TABLE inbound_orders (
    id             bigserial   PRIMARY KEY,
    tenant_id      text        NOT NULL,
    integration_id bigint      NOT NULL REFERENCES integrations (id),
    external_id    text        NOT NULL,
    webhook_id     text,
    received_at    timestamptz NOT NULL DEFAULT now(),
    body           bytea       NOT NULL,
    normalized     jsonb       NOT NULL,
    UNIQUE (integration_id, external_id)
);
CREATE UNIQUE INDEX inbound_orders_webhook_id ON inbound_orders (integration_id, webhook_id) WHERE webhook_id IS NOT NULL;

-- Verified pushes refused as malformed (400), kept for inspection: at most the newest 100 per
-- integration (older ones are deleted as new ones arrive), each body cut to 64 KiB.
CREATE TABLE inbound_rejections (
    id             bigserial   PRIMARY KEY,
    tenant_id      text        NOT NULL,
    integration_id bigint      NOT NULL REFERENCES integrations (id),
    webhook_id     text,
    received_at    timestamptz NOT NULL DEFAULT now(),
    error          text        NOT NULL,
    body_bytes     integer     NOT NULL,
    body           bytea       NOT NULL
);
CREATE INDEX inbound_rejections_integration ON inbound_rejections (integration_id, id);
