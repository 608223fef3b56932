-- Calls the service owes a platform, kept until done: an order's status sent back to its delivery
-- platform (kind 'status'), a completed order booked in a ledger (kind 'sale'). Written in the
-- transaction that consumes the orders service's event (with its inbox row), then worked off by the
-- push worker: ``due_at`` is the next try (a try leases the row by moving it ahead), ``attempts``
-- counts tries, ``deadline_at`` ends a status push's retries (the platform's deadline). One order's
-- pushes of a kind go out in order. For sales, (integration, order) is unique: the durable map from
-- our order to the ledger's document (``ledger_id``), so an order is booked once per ledger.
CREATE TABLE platform_pushes (
    id              bigserial   PRIMARY KEY,
    tenant_id       text        NOT NULL,
    integration_id  bigint      NOT NULL REFERENCES integrations (id),
    kind            text        NOT NULL CHECK (kind IN ('status', 'sale')),
    order_id        bigint      NOT NULL,
    external_id     text        NOT NULL,
    status          text,
    payload         jsonb       NOT NULL,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL DEFAULT now(),
    deadline_at     timestamptz,
    last_error      text,
    idempotency_key text,
    ledger_id       text,
    ledger_number   text,
    correlation_id  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CONSTRAINT platform_pushes_sale_key CHECK (kind <> 'sale' OR idempotency_key IS NOT NULL)
);
CREATE UNIQUE INDEX platform_pushes_one_sale ON platform_pushes (integration_id, order_id) WHERE kind = 'sale';
CREATE INDEX platform_pushes_due ON platform_pushes (due_at) WHERE state = 'pending';
CREATE INDEX platform_pushes_order ON platform_pushes (integration_id, external_id, id);
