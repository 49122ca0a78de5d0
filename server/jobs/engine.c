/* capstan: the job engine (see engine.h and jobs/README.md). */
#include "jobs/engine.h"

#include "jobs/hub.h"
#include "log/log.h"
#include "metrics/catalog.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/str.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WORKER_NICE 5

struct jobs_engine {
    struct jobs_engine_options opt;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int wake_tokens; /* guarded by lock: claims worth trying (at most nworkers) */
    atomic_bool stopping;
    atomic_int running;
    atomic_int alive; /* threads not yet finished */
    pthread_t *workers;
    char (*held)[37]; /* guarded by lock: the job each worker runs ("" for none) */
    int nworkers;
    pthread_t listener, leaser;
    bool listener_started, leaser_started;
};

/* Lets n idle workers try a claim: one per new job, not all of them (a broadcast would have
 * every idle worker query for the one job, and all but one find nothing). */
static void wake_workers(struct jobs_engine *e, int n)
{
    pthread_mutex_lock(&e->lock);
    e->wake_tokens += n;
    if (e->wake_tokens > e->nworkers)
        e->wake_tokens = e->nworkers;
    if (n >= e->nworkers)
        pthread_cond_broadcast(&e->wake);
    else
        for (int i = 0; i < n; i++)
            pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
}

/* Waits until a wake-up can be taken or ms passed (or stopping). A wake-up given while the
 * worker was claiming is kept, so none is lost. */
static void wait_wake(struct jobs_engine *e, long long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&e->lock);
    while (e->wake_tokens == 0 && !atomic_load(&e->stopping))
        if (pthread_cond_timedwait(&e->wake, &e->lock, &ts) != 0)
            break;
    if (e->wake_tokens > 0)
        e->wake_tokens--;
    pthread_mutex_unlock(&e->lock);
}

/* The leaser renews only the leases of jobs a worker holds. */
static void hold_job(struct jobs_engine *e, const char *id, bool hold)
{
    pthread_mutex_lock(&e->lock);
    for (int i = 0; i < e->opt.workers; i++) {
        if (hold ? e->held[i][0] == '\0' : strcmp(e->held[i], id) == 0) {
            snprintf(e->held[i], sizeof(e->held[i]), "%s", hold ? id : "");
            break;
        }
    }
    pthread_mutex_unlock(&e->lock);
}

/* The held jobs as a PostgreSQL array ("{id,id}"), or NULL for none (malloc'd). */
static char *held_jobs(struct jobs_engine *e)
{
    char *out = NULL;
    size_t len = 1, size = (size_t)e->opt.workers * 37 + 3;
    pthread_mutex_lock(&e->lock);
    for (int i = 0; i < e->opt.workers; i++) {
        if (!e->held[i][0])
            continue;
        if (!out && !(out = calloc(size, 1)))
            break;
        len += (size_t)snprintf(out + len, size - len, "%s%s", len > 1 ? "," : "", e->held[i]);
    }
    pthread_mutex_unlock(&e->lock);
    if (out) {
        out[0] = '{';
        out[len] = '}';
    }
    return out;
}

static long long backoff_ms(const struct jobs_engine *e, int attempt)
{
    long long ms = e->opt.backoff_base_ms;
    unsigned char r[2] = {0, 0};
    for (int i = 1; i < attempt && ms < e->opt.backoff_max_ms; i++)
        ms *= 2;
    if (ms > e->opt.backoff_max_ms)
        ms = e->opt.backoff_max_ms;
    /* jitter: between half and all of it, so retries of many jobs spread out */
    cap_random_bytes(r, sizeof(r));
    return ms / 2 + (ms / 2) * (((long long)r[0] << 8) | r[1]) / 65535;
}

/* Runs the steps of a claimed job from the first one not yet succeeded. */
/* The index of the first step at or after from that is neither succeeded nor skipped, or -1. */
static int next_step(const struct store_job *job, size_t from)
{
    for (size_t i = from; i < json_array_size(job->steps); i++) {
        const char *state =
            json_string_value(json_object_get(json_array_get(job->steps, i), "state"));
        if (!state || (strcmp(state, "succeeded") != 0 && strcmp(state, "skipped") != 0))
            return (int)i;
    }
    return -1;
}

/* Later steps of this run see what a step stored (the commit). */
static void keep_result(struct store_job *job, json_t *result)
{
    if (!json_is_object(result))
        return;
    if (!json_is_object(job->result)) {
        json_decref(job->result);
        job->result = json_object();
    }
    json_object_update(job->result, result);
}

static void cancelled(struct jobs_engine *e, struct store_job *job, const char *step)
{
    if (store_job_cancelled(e->opt.pool, job, e->opt.instance) == 0) {
        log_info("cancelled before step %s", step);
        metrics_job_finished(jobs_kind_name(job->kind), "cancelled");
    }
}

/* Runs the steps of a claimed job from the first one not yet done. A step's end and the next
 * step's start are one write (the last step's end and the job's success another), so a job of
 * quick steps costs few round trips; a crash in between loses nothing, as every step can run
 * again. */
static void run_job(struct jobs_engine *e, struct store_job *job)
{
    const char *me = e->opt.instance;
    int idx = job->step; /* the claim started it */
    bool cancel = job->cancel;

    log_context_set(NULL, job->id, job->tenant);
    log_info("running %s %s%s%s (attempt %d of %d)", jobs_kind_name(job->kind), job->tenant,
             job->env[0] ? "/" : "", job->env, job->attempt, job->max_attempts);
    if (cancel) {
        cancelled(e, job, "its next");
        goto done;
    }
    if (idx < 0) {
        if (store_job_succeed(e->opt.pool, job, me, NULL) == 0)
            metrics_job_finished(jobs_kind_name(job->kind), "succeeded");
        goto done;
    }
    if (atomic_load(&e->stopping)) {
        if (store_job_release(e->opt.pool, job, me) == 0)
            log_info("gave the job back to the queue (stopping)");
        goto done;
    }
    for (;;) {
        const char *name =
            json_string_value(json_object_get(json_array_get(job->steps, (size_t)idx), "name"));
        struct jobs_step_out out;
        bool final = false;
        int rc, next;

        if (cancel) {
            cancelled(e, job, name);
            goto done;
        }
        memset(&out, 0, sizeof(out));
        cap_error_clear();
        int64_t t0 = cap_mono_ms();
        double t1 = metrics_now();
        rc = e->opt.run_step(e->opt.step_ctx, job, name, &out);
        metrics_job_step(jobs_kind_name(job->kind), name, rc == 0, metrics_now() - t1);
        if (rc != 0 || out.wait_ms == 0)
            log_info("step %s %s in %lld ms%s%s", name,
                     rc ? "failed" : (out.skipped ? "skipped" : "succeeded"),
                     (long long)(cap_mono_ms() - t0), rc ? ": " : "",
                     rc ? cap_error_message() : "");
        if (rc == 0 && out.wait_ms > 0) {
            json_decref(out.result);
            if (store_job_wait(e->opt.pool, job, me, idx, out.message, out.wait_ms) != 0)
                log_warn("cannot put the job back to wait: %s", cap_error_message());
            goto done;
        }
        if (rc != 0) {
            json_decref(out.result);
            char msg[CAP_ERROR_MESSAGE_MAX];
            cap_strlcpy(msg, cap_error_message()[0] ? cap_error_message() : "failed", sizeof(msg));
            if (store_job_step_failed(e->opt.pool, job, me, idx, msg, backoff_ms(e, job->attempt),
                                      rc == CAP_EINVALID || out.fail_now, &final) != 0)
                log_warn("cannot record the failure of step %s: %s", name, cap_error_message());
            else if (final) {
                log_warn("job failed at step %s: %s", name, msg);
                metrics_job_finished(jobs_kind_name(job->kind), "failed");
            }
            goto done;
        }
        keep_result(job, out.result);
        const char *message = out.message[0] ? out.message : NULL;
        next = next_step(job, (size_t)idx + 1);
        if (next < 0) {
            rc = store_job_finish_last(e->opt.pool, job, me, idx, message, out.result, out.skipped);
            json_decref(out.result);
            if (rc == 0) {
                log_info("job succeeded");
                metrics_job_finished(jobs_kind_name(job->kind), "succeeded");
            } else {
                log_warn("cannot record the job's success: %s", cap_error_message());
            }
            goto done;
        }
        if (atomic_load(&e->stopping)) {
            /* record this step, then give the job back for another process to continue */
            rc = store_job_step_done(e->opt.pool, job, me, idx, message, out.result, out.skipped);
            json_decref(out.result);
            if (rc == 0 && store_job_release(e->opt.pool, job, me) == 0)
                log_info("gave the job back to the queue (stopping)");
            goto done;
        }
        rc = store_job_step_advance(e->opt.pool, job, me, idx, message, out.result, out.skipped,
                                    next, &cancel);
        json_decref(out.result);
        if (rc) {
            log_warn("cannot record step %s: %s", name, cap_error_message());
            goto done;
        }
        idx = next;
    }
done:
    log_context_clear();
}

static void *worker_main(void *arg)
{
    struct jobs_engine *e = arg;
    /* Jobs are background work: when the cores are busy, API requests go first (Linux nice
     * values are per thread). Not being allowed to lower the priority is harmless. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), WORKER_NICE) != 0)
        log_debug("worker threads keep the process's priority");
    while (!atomic_load(&e->stopping)) {
        struct store_job job;
        int rc = store_job_claim(e->opt.pool, e->opt.instance, e->opt.lease_ms, &job);
        if (rc == 0) {
            /* there may be more: pass the wake-up on to one more idle worker */
            wake_workers(e, 1);
            hold_job(e, job.id, true);
            atomic_fetch_add(&e->running, 1);
            run_job(e, &job);
            atomic_fetch_sub(&e->running, 1);
            hold_job(e, job.id, false);
            store_job_clear(&job);
            continue;
        }
        if (rc != CAP_ENOTFOUND)
            log_debug("claiming a job failed: %s", cap_error_message());
        wait_wake(e, e->opt.poll_ms);
    }
    atomic_fetch_sub(&e->alive, 1);
    return NULL;
}

/* LISTENs for new jobs and job events. */
static void *listener_main(void *arg)
{
    struct jobs_engine *e = arg;
    PGconn *pg = NULL;
    int64_t last_fail_log = 0;

    while (!atomic_load(&e->stopping)) {
        if (!pg) {
            if (store_connect(e->opt.conninfo, &pg) != 0) {
                if (cap_mono_ms() - last_fail_log > 10000) {
                    log_warn("job listener: the database is unreachable; polling meanwhile");
                    last_fail_log = cap_mono_ms();
                }
                cap_sleep_ms(1000);
                continue;
            }
            PGresult *r1 = PQexec(pg, "LISTEN capstan_jobs");
            PGresult *r2 = PQexec(pg, "LISTEN capstan_events");
            bool ok =
                PQresultStatus(r1) == PGRES_COMMAND_OK && PQresultStatus(r2) == PGRES_COMMAND_OK;
            PQclear(r1);
            PQclear(r2);
            if (!ok) {
                PQfinish(pg);
                pg = NULL;
                cap_sleep_ms(1000);
                continue;
            }
            wake_workers(e, e->nworkers); /* anything queued while we were away */
        }
        struct pollfd pfd = {PQsocket(pg), POLLIN, 0};
        int pr = poll(&pfd, 1, 500);
        if (pr < 0)
            continue;
        if (pr > 0 && PQconsumeInput(pg) == 0) {
            PQfinish(pg);
            pg = NULL;
            continue;
        }
        PGnotify *nt;
        int jobs = 0;
        while ((nt = PQnotifies(pg)) != NULL) {
            if (strcmp(nt->relname, "capstan_jobs") == 0)
                jobs++;
            else if (strcmp(nt->relname, "capstan_events") == 0 && e->opt.hub)
                jobs_hub_notify(e->opt.hub, nt->extra);
            PQfreemem(nt);
        }
        if (jobs > 0)
            wake_workers(e, jobs);
    }
    PQfinish(pg);
    atomic_fetch_sub(&e->alive, 1);
    return NULL;
}

/* Renews leases and the heartbeat; enqueues expiries. */
static void *leaser_main(void *arg)
{
    struct jobs_engine *e = arg;
    int64_t last_renew = 0, last_expiry = 0;
    long long every = e->opt.lease_ms / 3;
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);

    while (!atomic_load(&e->stopping)) {
        int64_t now = cap_mono_ms();
        if (now - last_renew >= every) {
            int n = 0;
            last_renew = now;
            char *ids = held_jobs(e);
            if (ids && store_job_renew(e->opt.pool, e->opt.instance, e->opt.lease_ms, ids, &n) != 0)
                log_warn("cannot renew job leases: %s", cap_error_message());
            free(ids);
            store_instance_heartbeat(e->opt.pool, e->opt.instance, host, (int)getpid(),
                                     CAPSTAN_VERSION);
        }
        if (e->opt.expiry_every_ms > 0 && now - last_expiry >= e->opt.expiry_every_ms) {
            int n = 0;
            last_expiry = now;
            if (store_expire_due(e->opt.pool, 100, &n) == 0 && n > 0)
                log_info("enqueued %d environment expir%s", n, n == 1 ? "y" : "ies");
        }
        cap_sleep_ms(100);
    }
    atomic_fetch_sub(&e->alive, 1);
    return NULL;
}

int jobs_engine_start(struct jobs_engine **out, const struct jobs_engine_options *opt)
{
    struct jobs_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return cap_error_set(CAP_ERROR, "out of memory");
    e->opt = *opt;
    if (e->opt.lease_ms <= 0)
        e->opt.lease_ms = 30000;
    if (e->opt.poll_ms <= 0)
        e->opt.poll_ms = 2000;
    if (e->opt.backoff_base_ms <= 0)
        e->opt.backoff_base_ms = 1000;
    if (e->opt.backoff_max_ms <= 0)
        e->opt.backoff_max_ms = 300000;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    e->workers = calloc((size_t)(opt->workers > 0 ? opt->workers : 1), sizeof(pthread_t));
    e->held = calloc((size_t)(opt->workers > 0 ? opt->workers : 1), sizeof(*e->held));
    if (!e->workers || !e->held) {
        free(e->workers);
        free(e->held);
        free(e);
        return cap_error_set(CAP_ERROR, "out of memory");
    }
    atomic_store(&e->alive, 0);
    if (pthread_create(&e->listener, NULL, listener_main, e) == 0) {
        e->listener_started = true;
        atomic_fetch_add(&e->alive, 1);
    }
    if (pthread_create(&e->leaser, NULL, leaser_main, e) == 0) {
        e->leaser_started = true;
        atomic_fetch_add(&e->alive, 1);
    }
    for (int i = 0; i < opt->workers; i++) {
        if (pthread_create(&e->workers[e->nworkers], NULL, worker_main, e) != 0)
            break;
        e->nworkers++;
        atomic_fetch_add(&e->alive, 1);
    }
    if (!e->listener_started || !e->leaser_started || e->nworkers != opt->workers) {
        jobs_engine_stop(e, 5000);
        return cap_error_set(CAP_ERROR, "cannot start the job engine's threads");
    }
    *out = e;
    return 0;
}

bool jobs_engine_stop(struct jobs_engine *e, long long deadline_ms)
{
    int64_t until;
    if (!e)
        return true;
    atomic_store(&e->stopping, true);
    wake_workers(e, e->nworkers);
    until = cap_mono_ms() + deadline_ms;
    while (atomic_load(&e->alive) > 0 && cap_mono_ms() < until)
        cap_sleep_ms(20);
    if (atomic_load(&e->alive) > 0) {
        /* A step is still running (a slow peer). Its lease runs out and another process takes
         * the job up; this process is exiting anyway, so leave the threads be. */
        log_warn("%d job threads still busy at the deadline; their jobs resume elsewhere once "
                 "their leases expire",
                 atomic_load(&e->alive));
        return false;
    }
    for (int i = 0; i < e->nworkers; i++)
        pthread_join(e->workers[i], NULL);
    if (e->listener_started)
        pthread_join(e->listener, NULL);
    if (e->leaser_started)
        pthread_join(e->leaser, NULL);
    store_instance_remove(e->opt.pool, e->opt.instance);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->wake);
    free(e->workers);
    free(e->held);
    free(e);
    return true;
}

int jobs_engine_running(const struct jobs_engine *e)
{
    return atomic_load(&((struct jobs_engine *)e)->running);
}
