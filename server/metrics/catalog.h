/* capstan: the catalog of capstan's own metrics, in one process-wide registry, and the hooks
 * the other modules call to move them.
 *
 * Every name, help text, label set and bucket layout is declared in catalog.c, in one table,
 * so the list in README.md ("What to monitor") can be checked against it. Label values come
 * from small fixed sets only: route names of the route table (or "unmatched"), normalised
 * HTTP methods, status codes, job kinds, job states, step names, Kubernetes verbs, push
 * outcomes. Never tenant or environment names, job ids, raw paths or anything secret.
 *
 * The registry is made on first use (pthread_once), so the hooks work in every program that
 * links the library (drivers, tests) without set-up. Every hook is thread-safe, takes no lock
 * and allocates only the first time a label combination appears. */
#ifndef CAPSTAN_METRICS_CATALOG_H
#define CAPSTAN_METRICS_CATALOG_H

#include "metrics/metrics.h"

#include <stdbool.h>

/* The families of the catalog (borrowed, valid for the life of the process). */
struct metrics_catalog {
    struct metrics_family *build_info;          /* gauge {version} = 1 */
    struct metrics_family *start_time;          /* gauge: process start, seconds since the epoch */
    struct metrics_family *cpu_seconds;         /* counter: user + system CPU time */
    struct metrics_family *resident_bytes;      /* gauge */
    struct metrics_family *open_fds;            /* gauge */
    struct metrics_family *http_requests;       /* counter {route, method, status} */
    struct metrics_family *http_duration;       /* histogram {route, method} */
    struct metrics_family *http_in_flight;      /* gauge */
    struct metrics_family *jobs_finished;       /* counter {kind, state} */
    struct metrics_family *step_duration;       /* histogram {kind, step} */
    struct metrics_family *step_failures;       /* counter {kind, step} */
    struct metrics_family *jobs_running;        /* gauge: jobs this process runs now */
    struct metrics_family *jobs_queued;         /* gauge: queued jobs (whole database) */
    struct metrics_family *queue_oldest_age;    /* gauge: seconds */
    struct metrics_family *git_push_duration;   /* histogram {outcome} */
    struct metrics_family *git_push_rejections; /* counter */
    struct metrics_family *git_commits;         /* counter */
    struct metrics_family *git_changes;         /* counter */
    struct metrics_family *git_reclones;        /* counter */
    struct metrics_family *kube_requests;       /* counter {verb, code} */
    struct metrics_family *db_up;               /* gauge 1/0 */
    struct metrics_family *db_pool_in_use;      /* gauge */
    struct metrics_family *db_pool_open;        /* gauge */
    struct metrics_family *db_pool_max;         /* gauge */
    struct metrics_family *db_pool_waiting;     /* gauge */
    struct metrics_family *dropped;             /* counter: refused series (label explosion) */
};

/* The registry holding the catalog; made (with every family) on the first call of any
 * function of this header. Never NULL unless memory ran out at that first call. */
struct metrics_registry *metrics_global(void);
/* The catalog's families. Never NULL (its members are NULL if the registry could not be made,
 * and every update accepts NULL). */
const struct metrics_catalog *metrics_catalog(void);

/* The normalised method label: GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS, else "other".
 * Static string. */
const char *metrics_http_method(const char *method);
/* The Kubernetes verb of an API request: get, list, watch, create, update, patch, apply,
 * delete, deletecollection, or "other". path may carry a query (watch=1 or watch=true makes a
 * watch); content_type tells a server-side apply from another PATCH (may be NULL). Pure;
 * static string. */
const char *metrics_kube_verb(const char *method, const char *path, const char *content_type);

/* Hooks. */
/* One finished HTTP request: route = the route's name, NULL when nothing matched. */
void metrics_http_request(const char *route, const char *method, int status, double seconds);
/* A job reached a final state in this process: "succeeded", "failed" or "cancelled". */
void metrics_job_finished(const char *kind, const char *state);
/* One run of a job step (ok: it succeeded; otherwise it failed and the job retries or fails). */
void metrics_job_step(const char *kind, const char *step, bool ok, double seconds);
/* One push to the fleet repository: outcome "pushed", "rejected" (another writer moved the
 * branch; the round retries) or "error" (the remote could not be reached, refused, ...). */
void metrics_git_push(const char *outcome, double seconds);
/* One Kubernetes API call (every attempt, retries included); status 0: no HTTP answer. */
void metrics_kube_call(const char *method, const char *path, const char *content_type, long status);

#endif
