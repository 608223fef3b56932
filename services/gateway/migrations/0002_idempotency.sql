-- Idempotency-Key on POST (gateway.http.idempotency): one row per tenant and key. While the first
-- request runs, status is NULL and locked_until bounds how long a crashed gateway can hold the key;
-- then its response is kept until expires_at. The key itself is stored only as a digest and the
-- body sealed with a key derived from it (a 201 may carry a secret shown once).
CREATE TABLE idempotency_keys (
    tenant_id    text        NOT NULL REFERENCES tenants (id),
    key_digest   text        NOT NULL,
    fingerprint  text        NOT NULL,  -- SHA-256 of method, path, query and canonical JSON body
    status       integer,
    headers      jsonb,
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key_digest)
);

-- The purger deletes expired rows oldest first.
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
