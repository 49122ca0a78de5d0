/* capstan: the job engine: worker threads, leases, wake-ups, the expiry scheduler.
 *
 * Workers claim jobs from PostgreSQL (store/jobs.h) and run their steps through the
 * executor. A listener thread LISTENs on capstan_jobs (new or freed jobs: workers wake at
 * once) and capstan_events (new job events: handed to the event hub); a slow poll covers lost
 * notifications and delayed retries. A lease thread renews the leases of the running jobs and
 * the instance's heartbeat, and enqueues expiries. See jobs/README.md for the state machine. */
#ifndef CAPSTAN_JOBS_ENGINE_H
#define CAPSTAN_JOBS_ENGINE_H

#include "store/jobs.h"
#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>

struct jobs_hub;

/* What a step gives back. message: a short line for the job's step (may stay empty). result:
 * merged into the job's result (new reference, may stay NULL). */
struct jobs_step_out {
    char message[256];
    json_t *result;
    bool skipped;      /* the step had nothing to do here (recorded as "skipped") */
    long long wait_ms; /* > 0: not done yet; run the step again after this long */
    bool fail_now;     /* an error that retrying cannot help (a wait that timed out) */
};

/* Runs one step of a job. Returns 0, or a CAP_E* code with the last error set (the message
 * is stored in the job: no secrets). CAP_EINVALID fails the job at once; other codes retry
 * with backoff until maxAttempts. */
typedef int (*jobs_step_fn)(void *ctx, struct store_job *job, const char *step,
                            struct jobs_step_out *out);

struct jobs_engine_options {
    struct store_pool *pool;
    const char *conninfo;      /* for the LISTEN connection */
    const char *instance;      /* this process's uuid */
    int workers;               /* 0: no workers (API only) */
    long long lease_ms;        /* default 30000 */
    long long poll_ms;         /* default 2000 */
    long long backoff_base_ms; /* default 1000 */
    long long backoff_max_ms;  /* default 300000 */
    long long expiry_every_ms; /* default 10000; 0: no expiry scheduler */
    jobs_step_fn run_step;
    void *step_ctx;
    struct jobs_hub *hub; /* receives capstan_events notifications; may be NULL */
};

struct jobs_engine;

int jobs_engine_start(struct jobs_engine **out, const struct jobs_engine_options *opt);
/* Stops claiming; running jobs finish their current step (waiting up to deadline_ms) and go
 * back to the queue for another process. Frees the engine and returns true; returns false
 * (freeing nothing) when a thread is still busy at the deadline. */
bool jobs_engine_stop(struct jobs_engine *e, long long deadline_ms);

/* Jobs running in this process now (metrics). */
int jobs_engine_running(const struct jobs_engine *e);

#endif
