-- ISO 3166-1 alpha-2 country of the visitor, looked up by the collector before it drops the IP
-- ('' when unknown: private addresses, or addresses the lookup does not cover).
ALTER TABLE events ADD COLUMN IF NOT EXISTS country LowCardinality(String) DEFAULT '';
