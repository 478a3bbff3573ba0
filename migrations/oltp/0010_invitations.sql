-- Invitations to join a tenant's team with a role. The link's token is shown once; only its SHA-256
-- is kept. invited_by is the inviting user's id, kept as text: the inviter may leave the team later.
-- Times are epoch milliseconds; accepted_at is NULL until the invitee sets a password. A revoked
-- invitation is deleted.
CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    -- Lower-cased by the application, as users.email.
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    token_hash TEXT NOT NULL UNIQUE,
    invited_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    accepted_at BIGINT
);

CREATE INDEX invitations_tenant_id_idx ON invitations (tenant_id);
