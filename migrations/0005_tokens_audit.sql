-- capstan 0005: API tokens and the audit log.

-- An API token. Only the SHA-256 of the token is kept (token_hash, 64 hex characters); the
-- plain token is shown once, when it is made. A tenant role is bound to the tenant's row (not
-- only its name): when that row goes, so do its tokens, and a later tenant of the same name
-- does not inherit them. seq orders the list (newest first).
CREATE TABLE api_tokens (
    id uuid PRIMARY KEY,
    seq bigserial NOT NULL UNIQUE,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    role text NOT NULL CHECK (role IN ('admin', 'tenant-admin', 'tenant-viewer')),
    tenant_id bigint REFERENCES tenants (id) ON DELETE CASCADE,
    tenant text,
    token_hash text NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz,
    CHECK ((role = 'admin') = (tenant_id IS NULL)),
    CHECK ((tenant_id IS NULL) = (tenant IS NULL))
);

-- Who did what, when, from where, with which result: every request that changes something
-- and every refused one. Never request bodies, never tokens.
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    time timestamptz NOT NULL,
    actor text,
    token_id text,
    role text,
    tenant text,
    action text NOT NULL,
    target text,
    method text NOT NULL,
    path text NOT NULL,
    status integer NOT NULL,
    result text NOT NULL CHECK (result IN ('allowed', 'denied', 'failed')),
    request_id text NOT NULL,
    remote text NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_time ON audit_log (time);
