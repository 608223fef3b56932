-- Several named keys per tenant with a scope; rotation leaves the old key valid until expires_at.
-- key_prefix (the key's first characters, e.g. pk_Ab3dE6gH9) names a key in the CLI and in logs.
ALTER TABLE api_keys
    ADD COLUMN name         text        NOT NULL DEFAULT 'default',
    ADD COLUMN scope        text        NOT NULL DEFAULT 'write' CHECK (scope IN ('read', 'write')),
    ADD COLUMN last_used_at timestamptz,
    ADD COLUMN expires_at   timestamptz;

CREATE UNIQUE INDEX api_keys_prefix ON api_keys (key_prefix);
