-- capstan 0006: cheaper step transitions for the job queue.
-- A job's row is updated once per step (steps, result, event_seq: no index covers them). With
-- free room on its page PostgreSQL makes such an update HOT: no new entry in any of the seven
-- indexes of jobs and no dead entry left for the claim's index walk. Packed pages (the default
-- fillfactor of 100) made every step transition a full update, and under a burst of jobs the
-- claim walked thousands of dead index entries. Autovacuum also visits the table sooner: it
-- churns far faster than it grows.
ALTER TABLE jobs SET (fillfactor = 60, autovacuum_vacuum_scale_factor = 0.02,
                      autovacuum_analyze_scale_factor = 0.02);
