-- Accept with POS injection, the acceptance deadline, and what orders knows of each integration.
ALTER TABLE orders
    ADD COLUMN injection_attempt int  NOT NULL DEFAULT 0,   -- inject-order commands sent (1 after accept)
    ADD COLUMN injection_error   text,                       -- the POS's reason, while injection_status = 'failed'
    ADD COLUMN prep_time_minutes int,                        -- sent to the POS on accept
    ADD CONSTRAINT orders_injection_status CHECK (injection_status IN ('pending', 'injected', 'failed'));

-- The acceptance deadline: the timer finds due received orders through this.
CREATE INDEX orders_due ON orders (accept_by) WHERE status = 'received';

-- An accept (or retry-injection) whose reply waits for the POS's answer. The reply is written to
-- the outbox when pos.order-events answers or, at answer_by, by the timer with the order as it
-- stands (injection "pending"): kept here, so a restart of the service never leaves a request
-- unanswered (the gateway's own deadline is the backstop while the service is down).
CREATE TABLE reply_waits (
    id            bigserial   PRIMARY KEY,
    order_id      bigint      NOT NULL REFERENCES orders (id),
    tenant_id     text        NOT NULL,
    command_id    text        NOT NULL,   -- ce_id of the command: the gateway matches the reply by it
    correlationid text,
    reply_to      text        NOT NULL,
    answer_by     timestamptz NOT NULL
);
CREATE INDEX reply_waits_order ON reply_waits (order_id);
CREATE INDEX reply_waits_due ON reply_waits (answer_by);

-- Each integration's order settings, learnt from integrations.events (integration-created/-updated
-- carry the config). An integration not (yet) known here gets the defaults: no auto-accept, the
-- provider's acceptance window, 15 minutes prep.
CREATE TABLE integration_settings (
    integration_id        bigint      PRIMARY KEY,
    tenant_id             text        NOT NULL,
    provider              text        NOT NULL,
    auto_accept           boolean     NOT NULL DEFAULT false,
    prep_time_minutes     int         NOT NULL DEFAULT 15,
    accept_window_seconds int,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
