-- capstan 0001: the processes that share this database.
-- Each serving process registers itself and refreshes its heartbeat; job leases name the
-- process that holds them.
CREATE TABLE instances (
    id uuid PRIMARY KEY,
    hostname text NOT NULL,
    pid integer NOT NULL,
    version text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instances_heartbeat ON instances (heartbeat_at);
