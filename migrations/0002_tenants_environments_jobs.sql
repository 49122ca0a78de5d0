-- capstan 0002: tenants, environments, jobs with their steps and events, idempotency keys.

-- A tenant. spec holds the fields the user sets, as the API shows them (displayName, owners,
-- isolation, provider, region, quota, labels); the other columns are set by capstan.
-- A deleted tenant keeps its row (and so its name) for 7 days.
CREATE TABLE tenants (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    spec jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'provisioning', 'ready', 'failed', 'deleting', 'deleted')),
    platform_repository text,
    generation bigint NOT NULL DEFAULT 1,
    observed_generation bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX tenants_state ON tenants (state, id);
CREATE INDEX tenants_labels ON tenants USING gin ((spec -> 'labels') jsonb_path_ops);

-- An environment of a tenant. Names are unique among the environments not yet deleted.
CREATE TABLE environments (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    tenant text NOT NULL,
    name text NOT NULL,
    spec jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'provisioning', 'ready', 'failed', 'deleting', 'deleted',
                         'expired')),
    expires_at timestamptz,
    cluster_phase text,
    git_commit text,
    generation bigint NOT NULL DEFAULT 1,
    observed_generation bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE UNIQUE INDEX environments_live_name ON environments (tenant_id, name)
    WHERE deleted_at IS NULL;
CREATE INDEX environments_tenant ON environments (tenant_id, id);
CREATE INDEX environments_expiry ON environments (expires_at)
    WHERE expires_at IS NOT NULL AND deleted_at IS NULL;

-- A job: one request's work, as an ordered list of steps. seq is the request order; jobs of
-- one tenant run one at a time in seq order. A running job holds a lease (lease_owner, an
-- instance id, until lease_expires_at) that its process renews; an expired lease lets any
-- process take the job up again.
CREATE TABLE jobs (
    id uuid PRIMARY KEY,
    seq bigserial NOT NULL UNIQUE,
    kind text NOT NULL CHECK (kind IN ('tenant.create', 'tenant.update', 'tenant.delete',
                                       'environment.create', 'environment.update',
                                       'environment.delete', 'environment.expire')),
    tenant_id bigint NOT NULL,
    tenant text NOT NULL,
    environment_id bigint,
    environment text,
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempt integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5,
    run_after timestamptz NOT NULL DEFAULT now(),
    params jsonb NOT NULL,
    steps jsonb NOT NULL,
    rendered jsonb,
    error jsonb,
    result jsonb,
    requested_by text NOT NULL,
    cancel_requested boolean NOT NULL DEFAULT false,
    lease_owner uuid,
    lease_expires_at timestamptz,
    event_seq integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);
-- the claim query walks the unfinished jobs in request order
CREATE INDEX jobs_active ON jobs (seq) WHERE state IN ('queued', 'running');
-- "is an earlier job of this tenant unfinished?"
CREATE INDEX jobs_active_tenant ON jobs (tenant_id, seq) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_tenant ON jobs (tenant, seq);
CREATE INDEX jobs_state ON jobs (state, seq);
CREATE INDEX jobs_lease ON jobs (lease_owner) WHERE state = 'running';
-- at most one unfinished expiry per environment
CREATE UNIQUE INDEX jobs_one_expiry ON jobs (environment_id)
    WHERE kind = 'environment.expire' AND state IN ('queued', 'running');

-- Every step change and log line of a job, numbered per job.
CREATE TABLE job_events (
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    type text NOT NULL,
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, seq)
);

-- Idempotency-Key: the first answer to a POST, returned again for the same key and body
-- within 24 hours.
CREATE TABLE idempotency_keys (
    actor text NOT NULL,
    key text NOT NULL,
    request_hash text NOT NULL,
    status integer,
    location text,
    response jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
