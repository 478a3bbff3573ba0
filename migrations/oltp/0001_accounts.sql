-- Tenants, their users and roles, and the sites whose events they collect.
-- Portable SQL: runs unchanged on SQLite and PostgreSQL. Times are epoch milliseconds.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    -- Stored lower-cased by the application, so uniqueness is case-insensitive on both databases.
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    user_id TEXT NOT NULL REFERENCES users (id),
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    PRIMARY KEY (user_id, tenant_id)
);

-- The primary key serves lookups by user; this serves listing a tenant's members.
CREATE INDEX memberships_tenant_id_idx ON memberships (tenant_id);

CREATE TABLE sites (
    -- The public site key used in the tracking snippet.
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    domain TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at BIGINT NOT NULL
);

CREATE INDEX sites_tenant_id_idx ON sites (tenant_id);
