-- Delivery: one message per (event, endpoint), recorded in the transaction that claims the event in
-- the inbox, attempted from here (due_at, lease_until), every attempt logged.

-- Rotation keeps the previous sealed secret for a while (messages carry both signatures); an
-- endpoint that fails every attempt since failing_since for too long, or answers 410, is disabled.
ALTER TABLE endpoints
    ADD COLUMN previous_secret        bytea,
    ADD COLUMN previous_secret_key_id text,
    ADD COLUMN previous_secret_until  timestamptz,
    ADD COLUMN failing_since          timestamptz,
    ADD COLUMN disabled_at            timestamptz,
    ADD COLUMN disabled_reason        text;

-- status: pending (due at due_at; being attempted while lease_until is in the future), delivered, failed.
-- attempts = 0: the first attempt is still to come (the "fresh" lane, never behind retries).
CREATE TABLE messages (
    id              bigserial   PRIMARY KEY,
    message_id      text        NOT NULL UNIQUE,  -- the webhook-id header, stable across retries
    endpoint_id     bigint      NOT NULL REFERENCES endpoints (id),
    event_type      text        NOT NULL,
    order_key       text,                         -- the event's subject: one order's messages go in order
    body            text        NOT NULL,         -- exactly the bytes signed and sent
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz
);
CREATE INDEX messages_due ON messages (due_at, id) WHERE status = 'pending';
CREATE INDEX messages_order ON messages (endpoint_id, order_key, id) WHERE status = 'pending' AND attempts = 0;
CREATE INDEX messages_failed ON messages (endpoint_id, created_at, id) WHERE status = 'failed';

CREATE TABLE attempts (
    id            bigserial        PRIMARY KEY,
    message       bigint           NOT NULL REFERENCES messages (id),
    endpoint_id   bigint           NOT NULL,
    attempt       integer          NOT NULL,
    attempted_at  timestamptz      NOT NULL,
    outcome       text             NOT NULL,
    status_code   integer,
    latency_ms    double precision NOT NULL,
    error         text,
    response_body text
);
CREATE INDEX attempts_endpoint ON attempts (endpoint_id, id);

-- POST /webhooks/{id}/recover: failed messages of the endpoint created since `since`, up to the
-- message `upto` (the newest when asked), put back in batches after `after`; done when finished_at is set.
CREATE TABLE recoveries (
    id          bigserial   PRIMARY KEY,
    endpoint_id bigint      NOT NULL REFERENCES endpoints (id),
    since       timestamptz NOT NULL,
    upto        bigint      NOT NULL,
    after       bigint      NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX recoveries_open ON recoveries (id) WHERE finished_at IS NULL;
