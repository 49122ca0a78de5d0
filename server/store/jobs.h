/* capstan: the job queue in PostgreSQL (claim, lease, steps, events, outcome).
 *
 * A worker claims the oldest runnable job (FOR UPDATE SKIP LOCKED): queued and due, or
 * running with an expired lease, and no earlier unfinished job of the same tenant. Claiming
 * sets the lease (owner = this process's instance id). Every later write of the worker is
 * fenced by the lease: it changes the job only while this instance still holds it, and fails
 * with CAP_ECONFLICT ("lease lost") otherwise, so a worker that lost its job (a long pause,
 * a partition) cannot overwrite the work of the process that took it up.
 *
 * Outcome effects on the tenant/environment (state, observedGeneration, gitCommit) are
 * applied in the same transaction that ends the job. Thread-safe. */
#ifndef CAPSTAN_STORE_JOBS_H
#define CAPSTAN_STORE_JOBS_H

#include "jobs/kinds.h"
#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>

struct store_job {
    char id[37];
    enum job_kind kind;
    long long tenant_id;
    char tenant[64];
    long long env_id; /* 0 for tenant jobs */
    char env[32];
    int attempt, max_attempts;
    char requested_by[160];
    json_t *params;   /* {"generation", "spec", "previousState", "cascade"} */
    json_t *steps;    /* the API's steps array */
    json_t *rendered; /* {"put": [{"path", "content"}], "delete": [paths]} or NULL */
    json_t *result;   /* what earlier steps stored ({"commit": ...}) or NULL */
    int step;         /* the step the claim started (marked running), -1 when none is left */
    bool cancel;      /* a cancel was asked: the claim started no step */
};

void store_job_clear(struct store_job *j);

/* maxAttempts of the jobs inserted from now on (default 5). */
void store_jobs_set_max_attempts(int n);

/* In c's open transaction: inserts a job with its first event and wakes the workers
 * (NOTIFY capstan_jobs). *out (may be NULL) = the job's API JSON. */
int store_job_insert(struct store_conn *c, enum job_kind kind, long long tenant_id,
                     const char *tenant, long long env_id, const char *env, const json_t *params,
                     const char *actor, json_t **out);
/* In c's transaction: appends an event (type "step", "log" or "state") and NOTIFYs
 * capstan_events with the job id. */
int store_job_event(struct store_conn *c, const char *job_id, const char *type, const json_t *data);

/* Claims a runnable job for instance; CAP_ENOTFOUND when there is none. */
int store_job_claim(struct store_pool *p, const char *instance, long long lease_ms,
                    struct store_job *out);
/* Extends the leases of the jobs in ids (a PostgreSQL array of uuids, "{a,b}") that this
 * instance still runs; *n gets how many. Only jobs a worker holds are renewed: a job its worker
 * gave up on (the database went away mid-step) must run out so that any worker takes it up. */
int store_job_renew(struct store_pool *p, const char *instance, long long lease_ms, const char *ids,
                    int *n);

/* Marks step idx running. *cancel is true if a cancel was asked (then nothing changed). */
int store_job_step_begin(struct store_pool *p, const struct store_job *j, const char *instance,
                         int idx, bool *cancel);
/* Marks step idx succeeded (or skipped) with message (may be NULL) and merges result (may be
 * NULL) into the job's result. */
int store_job_step_done(struct store_pool *p, const struct store_job *j, const char *instance,
                        int idx, const char *message, const json_t *result, bool skipped);
/* Step idx ended (as store_job_step_done) and step next starts (as store_job_step_begin): one
 * statement in the common case. *cancel as store_job_step_begin. */
int store_job_step_advance(struct store_pool *p, const struct store_job *j, const char *instance,
                           int idx, const char *message, const json_t *result, bool skipped,
                           int next, bool *cancel);
/* The last step idx ended and the job succeeded (as store_job_step_done + store_job_succeed),
 * in one transaction with the outcome. */
int store_job_finish_last(struct store_pool *p, const struct store_job *j, const char *instance,
                          int idx, const char *message, const json_t *result, bool skipped);
/* Step idx waits for something outside: the job goes back to the queue (not counted as an
 * attempt) to run again after wait_ms, and stops holding back the later jobs of its tenant.
 * The step stays running; message (an event when it changed) says what it waits for. */
int store_job_wait(struct store_pool *p, const struct store_job *j, const char *instance, int idx,
                   const char *message, long long wait_ms);
/* Stores the rendered files of the job. */
int store_job_set_rendered(struct store_pool *p, const struct store_job *j, const char *instance,
                           const json_t *rendered);
/* Appends a log event. */
int store_job_log(struct store_pool *p, const struct store_job *j, const char *instance,
                  const char *level, const char *message);
/* Step idx failed: again after backoff_ms if attempts remain and the failure is not
 * permanent, else the job fails. *final is set when the job is now failed. */
int store_job_step_failed(struct store_pool *p, const struct store_job *j, const char *instance,
                          int idx, const char *message, long long backoff_ms, bool permanent,
                          bool *final);
/* Gives a running job back to the queue (this process is stopping): the running step starts
 * again elsewhere; the attempt does not count. */
int store_job_release(struct store_pool *p, const struct store_job *j, const char *instance);
/* The job succeeded; result (may be NULL) is merged into what its steps stored. */
int store_job_succeed(struct store_pool *p, const struct store_job *j, const char *instance,
                      const json_t *result);
/* A cancel was asked and the worker stopped at a step boundary. */
int store_job_cancelled(struct store_pool *p, const struct store_job *j, const char *instance);

/* Enqueues environment.expire for up to `max` environments past expiresAt (once each, even
 * with several processes). *n gets how many were enqueued. */
int store_expire_due(struct store_pool *p, int max, int *n);

/* Registers or refreshes this process in `instances`. */
int store_instance_heartbeat(struct store_pool *p, const char *instance, const char *hostname,
                             int pid, const char *version);
int store_instance_remove(struct store_pool *p, const char *instance);

/* Internal to store/: applies a job outcome ("cancelled" for a queued job) on c. */
int store_job_apply_outcome(struct store_conn *c, const char *job_id, const char *outcome,
                            const char *commit);

/* Counts for metrics: jobs queued and the age in seconds of the oldest queued one. */
int store_job_queue_stats(struct store_pool *p, long long *queued, double *oldest_s);

#endif
