CREATE TABLE integrations (
    id               bigserial PRIMARY KEY,
    tenant_id        text        NOT NULL,
    name             text        NOT NULL,
    integration_type text        NOT NULL CHECK (integration_type IN ('delivery', 'accounting', 'pos')),
    provider         text        NOT NULL,
    is_active        boolean     NOT NULL DEFAULT true,
    last_sync_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, provider)
);

CREATE INDEX integrations_tenant_id_id ON integrations (tenant_id, id);
