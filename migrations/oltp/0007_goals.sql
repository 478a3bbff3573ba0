-- Goals: what counts as a conversion on a site, a pageview whose path matches a pattern (with *
-- wildcards) or a custom event by name. Names are unique per site, as reports show them.
CREATE TABLE goals (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    site_id TEXT NOT NULL REFERENCES sites (id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('page', 'event')),
    pattern TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (site_id, name)
);

CREATE INDEX goals_tenant_id_idx ON goals (tenant_id);
