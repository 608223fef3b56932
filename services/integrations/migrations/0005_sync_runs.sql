-- Sync runs: one per POST /integrations/{id}/sync, run in the background by the service's sync
-- worker. At most one running run per integration (partial unique index). ``claimed_by`` is the
-- worker instance that runs it, which holds a session advisory lock on the run while it does: a
-- claimed run whose lock is free was cut off by a crash and is finished as failed.
CREATE TABLE sync_runs (
    id             bigserial   PRIMARY KEY,
    tenant_id      text        NOT NULL,
    integration_id bigint      NOT NULL REFERENCES integrations (id),
    status         text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    fetched        integer     NOT NULL DEFAULT 0,
    created        integer     NOT NULL DEFAULT 0,
    updated        integer     NOT NULL DEFAULT 0,
    duplicates     integer     NOT NULL DEFAULT 0,
    failed         integer     NOT NULL DEFAULT 0,
    error          text,
    correlation_id text,
    claimed_by     text,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    CONSTRAINT sync_runs_finished CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE UNIQUE INDEX sync_runs_one_running ON sync_runs (integration_id) WHERE status = 'running';
CREATE INDEX sync_runs_integration ON sync_runs (integration_id, id DESC);

-- Where the next sync of a delivery integration starts: the platform's latest change time seen
-- by a run whose orders were all handed over.
ALTER TABLE integrations ADD COLUMN sync_watermark timestamptz;
