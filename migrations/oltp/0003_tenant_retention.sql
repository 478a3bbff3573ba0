-- How long a tenant's raw events are kept, in days (its plan). Rollups are kept regardless.
ALTER TABLE tenants ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 400;
