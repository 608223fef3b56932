-- External orders, created from the integrations service's order-received hand-over. One row per
-- (tenant, integration, external id): a redelivered or updated copy never makes a second order.
CREATE TABLE orders (
    id               bigserial   PRIMARY KEY,
    tenant_id        text        NOT NULL,
    integration_id   bigint      NOT NULL,
    provider         text        NOT NULL,
    external_id      text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('received', 'accepted', 'preparing', 'ready', 'picked_up',
                                 'completed', 'rejected', 'expired', 'cancel_requested', 'cancelled', 'failed')),
    normalized       jsonb       NOT NULL,
    raw_data         jsonb       NOT NULL,
    received_at      timestamptz NOT NULL,
    accept_by        timestamptz,
    injection_status text,
    pos_order_id     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, integration_id, external_id)
);
-- Newest first per tenant, optionally per integration; the cursor is the id.
CREATE INDEX orders_tenant_id ON orders (tenant_id, id DESC);
CREATE INDEX orders_tenant_integration_id ON orders (tenant_id, integration_id, id DESC);

-- Every change of an order, oldest first: status moves, and updates of its content by the
-- platform (a line from the status to the same status).
CREATE TABLE status_history (
    id          bigserial   PRIMARY KEY,
    order_id    bigint      NOT NULL REFERENCES orders (id),
    from_status text,
    to_status   text        NOT NULL,
    source      text        NOT NULL CHECK (source IN ('platform', 'merchant', 'auto_accept', 'timer', 'pos')),
    reason      text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_history_order ON status_history (order_id, id);
