-- What the dispatcher knows of each tenant's integrations, learnt from integrations.events (the
-- integrations service owns them): enough to tell whether an endpoint's integration_id is the tenant's.
CREATE TABLE known_integrations (
    id         bigint      PRIMARY KEY,
    tenant_id  text        NOT NULL,
    provider   text        NOT NULL,
    is_active  boolean     NOT NULL,
    deleted    boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A tenant's webhook endpoints. The signing secret is sealed (AES-GCM, WEBHOOKS_ENCRYPTION_KEYS;
-- the id of the sealing key beside it). A deleted endpoint is hidden; its row stays for its deliveries.
CREATE TABLE endpoints (
    id             bigserial   PRIMARY KEY,
    tenant_id      text        NOT NULL,
    integration_id bigint      NOT NULL,
    url            text        NOT NULL,
    events         text[]      NOT NULL,
    is_active      boolean     NOT NULL DEFAULT true,
    secret         bytea       NOT NULL,
    secret_key_id  text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);
CREATE INDEX endpoints_tenant_live ON endpoints (tenant_id, id) WHERE deleted_at IS NULL;
