-- The ClickHouse database holding a tenant's events and rollups: '' for the shared one (the
-- default tier), or the tenant's own, set by `pulse tenant isolate` (the "separate database" tier).
ALTER TABLE tenants ADD COLUMN clickhouse_database TEXT NOT NULL DEFAULT '';
