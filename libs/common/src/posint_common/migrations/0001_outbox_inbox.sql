-- Runtime tables every service has in its own schema (search_path is set to it).
CREATE TABLE outbox (
    seq         bigserial PRIMARY KEY,
    id          text        NOT NULL UNIQUE,
    topic       text        NOT NULL,
    aggregateid text,
    type        text        NOT NULL,
    envelope    jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE inbox (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
