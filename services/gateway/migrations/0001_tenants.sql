CREATE TABLE tenants (
    id         text PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Keys are 256-bit random tokens, so a SHA-256 digest is a safe at-rest form; the key itself is never stored.
CREATE TABLE api_keys (
    key_hash   text PRIMARY KEY,
    tenant_id  text        NOT NULL REFERENCES tenants (id),
    key_prefix text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE INDEX api_keys_tenant ON api_keys (tenant_id);
