-- capstan 0004: jobs that wait for the management cluster without holding a worker.
-- A step that waits (for Flux to apply a commit, for a Cluster to be Provisioned or gone)
-- gives its worker back: the job returns to the queue with waiting = true and runs again at
-- run_after. A waiting job has made its change in the fleet repository already, so it does
-- not hold back the later jobs of its tenant: their changes still happen in request order,
-- while the waits overlap.
ALTER TABLE jobs ADD COLUMN waiting boolean NOT NULL DEFAULT false;

DROP INDEX jobs_active_tenant;
CREATE INDEX jobs_active_tenant ON jobs (tenant_id, seq)
    WHERE state IN ('queued', 'running') AND NOT waiting;
