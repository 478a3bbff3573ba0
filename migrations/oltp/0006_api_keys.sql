-- API keys, exchanged for short-lived JWTs, and the ids of the keys those JWTs are signed with.

-- A key is shown once as pulse_<id>_<secret>; only a SHA-256 of the secret is kept. Permissions
-- are comma-separated ('stats:read,events:write'). created_by is the user id that made the key,
-- or 'operator' for `pulse api-key create`. Times are epoch milliseconds; NULL: never / not yet.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    permissions TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

CREATE INDEX api_keys_tenant_id_idx ON api_keys (tenant_id);

-- JWT signing keys by id (the kid header). The key material is not stored: every process derives
-- it from PULSE_SECRET_KEY and the kid, so this table holds nothing that signs a token. The newest
-- key without retire_at signs; one with retire_at still verifies the tokens it signed until then.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    retire_at BIGINT
);
