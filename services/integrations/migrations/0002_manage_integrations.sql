-- Managing integrations: provider config (not secret), sealed credentials and inbound secret
-- (AES-GCM; the id of the sealing key beside each), health, and soft deletion: a deleted
-- integration is inactive and hidden, its row (and its orders) stay.
ALTER TABLE integrations
    ADD COLUMN config                jsonb       NOT NULL DEFAULT '{}',
    ADD COLUMN credentials           bytea,
    ADD COLUMN credentials_key_id    text,
    ADD COLUMN inbound_secret        bytea,
    ADD COLUMN inbound_secret_key_id text,
    ADD COLUMN updated_at            timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN deleted_at            timestamptz,
    ADD COLUMN last_sync_status      text,
    ADD COLUMN last_sync_error       text,
    ADD COLUMN last_inbound_order_at timestamptz,
    ADD COLUMN token_expires_at      timestamptz,
    ADD CONSTRAINT integrations_credentials_sealed CHECK ((credentials IS NULL) = (credentials_key_id IS NULL)),
    ADD CONSTRAINT integrations_inbound_secret_sealed CHECK ((inbound_secret IS NULL) = (inbound_secret_key_id IS NULL)),
    ADD CONSTRAINT integrations_deleted_is_inactive CHECK (deleted_at IS NULL OR NOT is_active);

-- One live integration per provider and tenant; a deleted one no longer counts.
ALTER TABLE integrations DROP CONSTRAINT integrations_tenant_id_provider_key;
CREATE UNIQUE INDEX integrations_live_provider ON integrations (tenant_id, provider) WHERE deleted_at IS NULL;
