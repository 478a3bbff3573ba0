-- Raw events are kept for their tenant's plan: the rollup worker stamps each row with the
-- tenant's retention (OLTP tenants.retention_days) and ClickHouse deletes rows past it as
-- parts merge. Rollups and sessions are not touched.
ALTER TABLE events ADD COLUMN IF NOT EXISTS retention_days UInt16 DEFAULT 400;

ALTER TABLE events MODIFY TTL toDateTime(ts) + toIntervalDay(retention_days);
