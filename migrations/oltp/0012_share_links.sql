-- Public share links: a read-only dashboard of one site for anyone holding the link's URL.

-- The URL carries a random token; only its SHA-256 is kept, so the table holds nothing that opens
-- a link. password_hash is an argon2id hash (pulse.oltp.passwords), NULL when the link needs no
-- password. Times are epoch milliseconds; revoked_at NULL: still valid.
CREATE TABLE share_links (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    site_id TEXT NOT NULL REFERENCES sites (id),
    token_hash TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX share_links_tenant_site_idx ON share_links (tenant_id, site_id);
