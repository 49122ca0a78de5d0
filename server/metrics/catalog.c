/* capstan: the catalog of capstan's metrics and the hooks that move them (see catalog.h).
 *
 * The table `decls` is the one list of names; README.md's metric list follows it. Families
 * with a small known label set (job kinds x final states, push outcomes) get their series at
 * start, so rate() works from the first scrape instead of from the first event. */
#include "metrics/catalog.h"

#include "jobs/kinds.h"
#include "log/log.h"
#include "util/error.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct metrics_registry *global;
static struct metrics_catalog cat;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static const double http_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25,   0.5,   1,      2.5,   5,    10,    30};
static const double step_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                      2.5,   5,    10,    30,   60,  120,  300};
static const double push_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                      1,     2.5,  5,     10,   30,  60};
#define NB(a) (sizeof(a) / sizeof((a)[0]))

struct decl {
    struct metrics_family **slot;
    enum metrics_type type;
    const char *name;
    const char *labels[METRICS_MAX_LABELS + 1];
    const double *buckets;
    size_t nbuckets;
    const char *help;
};

static const struct decl decls[] = {
    {&cat.build_info,
     METRICS_GAUGE,
     "capstan_build_info",
     {"version"},
     NULL,
     0,
     "capstan's version (always 1)"},
    {&cat.start_time,
     METRICS_GAUGE,
     "process_start_time_seconds",
     {NULL},
     NULL,
     0,
     "when the process started, in seconds since the Unix epoch"},
    {&cat.cpu_seconds,
     METRICS_COUNTER,
     "process_cpu_seconds_total",
     {NULL},
     NULL,
     0,
     "user and system CPU time spent, in seconds"},
    {&cat.resident_bytes,
     METRICS_GAUGE,
     "process_resident_memory_bytes",
     {NULL},
     NULL,
     0,
     "resident memory size in bytes"},
    {&cat.open_fds, METRICS_GAUGE, "process_open_fds", {NULL}, NULL, 0, "open file descriptors"},

    {&cat.http_requests,
     METRICS_COUNTER,
     "capstan_http_requests_total",
     {"route", "method", "status"},
     NULL,
     0,
     "HTTP requests answered, by route name (\"unmatched\" when no route matched), method and "
     "status code"},
    {&cat.http_duration,
     METRICS_HISTOGRAM,
     "capstan_http_request_duration_seconds",
     {"route", "method"},
     http_buckets,
     NB(http_buckets),
     "time from the first byte of a request to the end of its answer (event streams: until "
     "they close)"},
    {&cat.http_in_flight,
     METRICS_GAUGE,
     "capstan_http_requests_in_flight",
     {NULL},
     NULL,
     0,
     "HTTP requests being served now"},

    {&cat.jobs_finished,
     METRICS_COUNTER,
     "capstan_jobs_finished_total",
     {"kind", "state"},
     NULL,
     0,
     "jobs this process brought to a final state (succeeded, failed, cancelled), by kind"},
    {&cat.step_duration,
     METRICS_HISTOGRAM,
     "capstan_job_step_duration_seconds",
     {"kind", "step"},
     step_buckets,
     NB(step_buckets),
     "time a job step took, whether it succeeded or failed"},
    {&cat.step_failures,
     METRICS_COUNTER,
     "capstan_job_step_failures_total",
     {"kind", "step"},
     NULL,
     0,
     "job steps that failed (the job then retries with backoff, or fails)"},
    {&cat.jobs_running,
     METRICS_GAUGE,
     "capstan_jobs_running",
     {NULL},
     NULL,
     0,
     "jobs running in this process now"},
    {&cat.jobs_queued,
     METRICS_GAUGE,
     "capstan_jobs_queued",
     {NULL},
     NULL,
     0,
     "jobs waiting in the queue (the whole database, not just this process)"},
    {&cat.queue_oldest_age,
     METRICS_GAUGE,
     "capstan_jobs_oldest_queued_age_seconds",
     {NULL},
     NULL,
     0,
     "age of the oldest queued job (0 when the queue is empty)"},

    {&cat.git_push_duration,
     METRICS_HISTOGRAM,
     "capstan_git_push_duration_seconds",
     {"outcome"},
     push_buckets,
     NB(push_buckets),
     "pushes to the fleet repository by outcome: pushed, rejected (another writer moved the "
     "branch: fetch and retry) or error"},
    {&cat.git_push_rejections,
     METRICS_COUNTER,
     "capstan_git_push_rejections_total",
     {NULL},
     NULL,
     0,
     "pushes rejected because another writer moved the branch (each one is retried until "
     "CAPSTAN_GIT_PUSH_ATTEMPTS)"},
    {&cat.git_commits,
     METRICS_COUNTER,
     "capstan_git_commits_total",
     {NULL},
     NULL,
     0,
     "commits pushed to the fleet repository"},
    {&cat.git_changes,
     METRICS_COUNTER,
     "capstan_git_changes_total",
     {NULL},
     NULL,
     0,
     "job changes carried by pushed commits (group commit: changes / commits is the batch size)"},
    {&cat.git_reclones,
     METRICS_COUNTER,
     "capstan_git_reclones_total",
     {NULL},
     NULL,
     0,
     "times the local cache of the fleet repository was removed and cloned again"},

    {&cat.kube_requests,
     METRICS_COUNTER,
     "capstan_kube_requests_total",
     {"verb", "code"},
     NULL,
     0,
     "Kubernetes API calls by verb and HTTP status code (\"error\": no answer)"},

    {&cat.db_up,
     METRICS_GAUGE,
     "capstan_database_up",
     {NULL},
     NULL,
     0,
     "1 when the last scrape could query the database, else 0"},
    {&cat.db_pool_in_use,
     METRICS_GAUGE,
     "capstan_db_pool_connections_in_use",
     {NULL},
     NULL,
     0,
     "database connections lent out now"},
    {&cat.db_pool_open,
     METRICS_GAUGE,
     "capstan_db_pool_connections_open",
     {NULL},
     NULL,
     0,
     "database connections open now (in use and idle)"},
    {&cat.db_pool_max,
     METRICS_GAUGE,
     "capstan_db_pool_connections_max",
     {NULL},
     NULL,
     0,
     "most database connections this process opens (CAPSTAN_DB_POOL)"},
    {&cat.db_pool_waiting,
     METRICS_GAUGE,
     "capstan_db_pool_waiting",
     {NULL},
     NULL,
     0,
     "threads waiting for a database connection now"},

    {&cat.dropped,
     METRICS_COUNTER,
     "capstan_metrics_series_dropped_total",
     {NULL},
     NULL,
     0,
     "label combinations refused because a metric already had too many (should stay 0)"},
};

/* Reads CPU time and resident memory from /proc/self/stat, open files from /proc/self/fd. */
static void collect_process(void *ctx)
{
    char buf[1024];
    FILE *f;
    DIR *d;
    (void)ctx;

    if ((f = fopen("/proc/self/stat", "r")) != NULL) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* fields after the command name in parentheses: state is field 3, utime 14, stime 15,
         * rss 24 */
        char *p = strrchr(buf, ')');
        unsigned long long v[24] = {0};
        int field = 3;
        for (p = p ? p + 1 : NULL; p && *p && field <= 24; field++) {
            while (*p == ' ')
                p++;
            v[field - 1] = strtoull(p, NULL, 10);
            p = strchr(p, ' ');
        }
        if (field > 24) {
            long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
            if (tck > 0)
                metrics_counter_set(metrics_series_get(cat.cpu_seconds, NULL),
                                    (double)(v[13] + v[14]) / (double)tck);
            if (page > 0)
                metrics_gauge_set(metrics_series_get(cat.resident_bytes, NULL),
                                  (double)v[23] * (double)page);
        }
    }
    if ((d = opendir("/proc/self/fd")) != NULL) {
        long n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            n += e->d_name[0] != '.';
        closedir(d);
        metrics_gauge_set(metrics_series_get(cat.open_fds, NULL), (double)(n - 1)); /* minus d */
    }
    metrics_counter_set(metrics_series_get(cat.dropped, NULL), (double)metrics_dropped(global));
}

static void init_once(void)
{
    static const char *const states[] = {"succeeded", "failed", "cancelled"};
    static const char *const outcomes[] = {"pushed", "rejected", "error"};

    if (metrics_registry_new(&global) != 0) {
        log_error("cannot make the metrics registry: %s", cap_error_message());
        return;
    }
    for (size_t i = 0; i < NB(decls); i++) {
        const struct decl *d = &decls[i];
        if (metrics_family_new(d->slot, global, d->type, d->name, d->help, d->labels, d->buckets,
                               d->nbuckets) != 0)
            log_error("cannot declare metric %s: %s", d->name, cap_error_message());
    }
    metrics_gauge_set(metrics_series_get(cat.build_info, (const char *const[]){CAPSTAN_VERSION}),
                      1);
    for (int k = 0; k < JOB_KIND_COUNT; k++)
        for (size_t s = 0; s < NB(states); s++)
            metrics_series_get(cat.jobs_finished,
                               (const char *const[]){jobs_kind_name((enum job_kind)k), states[s]});
    for (size_t o = 0; o < NB(outcomes); o++)
        metrics_series_get(cat.git_push_duration, (const char *const[]){outcomes[o]});
    if (metrics_collector_add(global, collect_process, NULL) != 0)
        log_error("cannot add the process metrics: %s", cap_error_message());
}

struct metrics_registry *metrics_global(void)
{
    pthread_once(&once, init_once);
    return global;
}

const struct metrics_catalog *metrics_catalog(void)
{
    pthread_once(&once, init_once);
    return &cat;
}

const char *metrics_http_method(const char *method)
{
    static const char *const known[] = {"GET",   "HEAD",   "POST",    "PUT",
                                        "PATCH", "DELETE", "OPTIONS", NULL};
    for (int i = 0; method && known[i]; i++)
        if (strcmp(method, known[i]) == 0)
            return known[i];
    return "other";
}

/* True if the query string q (without '?') has watch=1 or watch=true. */
static bool query_watch(const char *q)
{
    while (q && *q) {
        size_t n = strcspn(q, "&#");
        if ((n == 7 && strncmp(q, "watch=1", 7) == 0) ||
            (n == 10 && strncmp(q, "watch=true", 10) == 0))
            return true;
        q += n;
        if (*q != '&')
            break;
        q++;
    }
    return false;
}

const char *metrics_kube_verb(const char *method, const char *path, const char *content_type)
{
    const char *seg[16];
    size_t len[16];
    int n = 0, i, rest;
    bool watch = false, collection;
    const char *q, *p, *end;

    if (!method || !path || path[0] != '/')
        return "other";
    q = strchr(path, '?');
    end = q ? q : path + strlen(path);
    if (q)
        watch = query_watch(q + 1);
    for (p = path; p < end && n < 16;) {
        while (p < end && *p == '/')
            p++;
        if (p == end)
            break;
        seg[n] = p;
        while (p < end && *p != '/')
            p++;
        len[n] = (size_t)(p - seg[n]);
        n++;
    }
#define SEG_IS(k, s) (len[k] == strlen(s) && strncmp(seg[k], s, len[k]) == 0)
    /* /api/v1/..., /apis/<group>/<version>/...; anything else (/version, /openapi) is a get */
    if (n >= 2 && SEG_IS(0, "api"))
        i = 2;
    else if (n >= 3 && SEG_IS(0, "apis"))
        i = 3;
    else
        i = n;
    if (i < n && SEG_IS(i, "watch")) {
        watch = true;
        i++;
    }
    rest = n - i;
    /* namespaces/<ns>/<resource>... (but namespaces/<name>/status|finalize is a subresource) */
    if (rest >= 3 && SEG_IS(i, "namespaces") &&
        !(rest == 3 && (SEG_IS(i + 2, "status") || SEG_IS(i + 2, "finalize"))))
        rest -= 2;
#undef SEG_IS
    collection = rest == 1;
    if (strcmp(method, "GET") == 0)
        return watch ? "watch" : collection ? "list" : "get";
    if (strcmp(method, "POST") == 0)
        return "create";
    if (strcmp(method, "PUT") == 0)
        return "update";
    if (strcmp(method, "PATCH") == 0)
        return content_type && strncmp(content_type, "application/apply-patch", 23) == 0 ? "apply"
                                                                                         : "patch";
    if (strcmp(method, "DELETE") == 0)
        return collection ? "deletecollection" : "delete";
    return "other";
}

void metrics_http_request(const char *route, const char *method, int status, double seconds)
{
    const struct metrics_catalog *c = metrics_catalog();
    const char *m = metrics_http_method(method);
    const char *r = route ? route : "unmatched";
    char code[8];

    snprintf(code, sizeof(code), "%d", status >= 0 && status <= 999 ? status : 0);
    metrics_counter_add(metrics_series_get(c->http_requests, (const char *const[]){r, m, code}), 1);
    metrics_observe(metrics_series_get(c->http_duration, (const char *const[]){r, m}), seconds);
}

void metrics_job_finished(const char *kind, const char *state)
{
    const struct metrics_catalog *c = metrics_catalog();
    metrics_counter_add(metrics_series_get(c->jobs_finished, (const char *const[]){kind, state}),
                        1);
}

void metrics_job_step(const char *kind, const char *step, bool ok, double seconds)
{
    const struct metrics_catalog *c = metrics_catalog();
    metrics_observe(metrics_series_get(c->step_duration, (const char *const[]){kind, step}),
                    seconds);
    if (!ok)
        metrics_counter_add(metrics_series_get(c->step_failures, (const char *const[]){kind, step}),
                            1);
}

void metrics_git_push(const char *outcome, double seconds)
{
    const struct metrics_catalog *c = metrics_catalog();
    metrics_observe(metrics_series_get(c->git_push_duration, (const char *const[]){outcome}),
                    seconds);
}

void metrics_kube_call(const char *method, const char *path, const char *content_type, long status)
{
    const struct metrics_catalog *c = metrics_catalog();
    char code[8];

    if (status >= 100 && status <= 599)
        snprintf(code, sizeof(code), "%ld", status);
    else
        snprintf(code, sizeof(code), "error");
    metrics_counter_add(
        metrics_series_get(
            c->kube_requests,
            (const char *const[]){metrics_kube_verb(method, path, content_type), code}),
        1);
}
