-- What the collector needs beyond the site key: the hosts a site accepts events from,
-- and the day's secret salt for visitor ids.

-- Comma-separated hostnames ('shop.example', '*.shop.example'); empty accepts any host.
ALTER TABLE sites ADD COLUMN allowed_hosts TEXT NOT NULL DEFAULT '';

-- One random salt per UTC day, shared by every collector replica. Rows of past days are
-- deleted at rotation, so yesterday's visitor ids cannot be recomputed from anything kept.
CREATE TABLE visitor_salts (
    day TEXT PRIMARY KEY,
    salt TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
