-- Replays asked for with `pulse replay`, carried out by a rollup worker (pulse/replay).
-- The worker that claimed a job beats its heartbeat; another worker takes over a job whose
-- heartbeat stopped. Days are UTC, YYYY-MM-DD, both ends included.
CREATE TABLE replay_jobs (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    site_ids TEXT NOT NULL,
    first_day TEXT NOT NULL,
    last_day TEXT NOT NULL,
    state TEXT NOT NULL,
    total BIGINT NOT NULL DEFAULT 0,
    emitted BIGINT NOT NULL DEFAULT 0,
    staged BIGINT NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT '',
    heartbeat_at BIGINT NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

CREATE INDEX replay_jobs_state ON replay_jobs (state, created_at);
