/* capstan: the audit log's writer thread, queue and queries (see audit.h).
 *
 * Invariants: the queue holds at most max_queue entries; the writer holds at most one batch
 * outside it; every entry added is, exactly once, either stored, or logged as not stored. */
#include "store/audit.h"

#include "log/log.h"
#include "store/sqljson.h"
#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH_MAX          200
#define BACKOFF_FIRST_MS   200
#define BACKOFF_MAX_MS     30000
#define RETENTION_EVERY_MS (3600LL * 1000)
#define RETENTION_CHUNK    "10000"

struct store_audit {
    struct store_pool *pool;
    long long retention_ms;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;     /* new entries, or stop */
    pthread_cond_t progress; /* entries stored or given up */
    json_t **ring;
    size_t cap, head, count;
    bool stopping;
    int64_t stop_by_ms; /* monotonic deadline once stopping */
    unsigned long long added, settled, written, dropped;
    int64_t last_warn_ms;
};

static const struct store_stmt st_audit_insert = {
    "audit_insert",
    /* appends; the primary key's sequence keeps the batch's order */
    "INSERT INTO audit_log (time, actor, token_id, role, tenant, action, target, method, path, "
    "status, result, request_id, remote) "
    "SELECT (e.v->>'time')::timestamptz, e.v->>'actor', e.v->>'tokenId', e.v->>'role', "
    "e.v->>'tenant', e.v->>'action', e.v->>'target', e.v->>'method', e.v->>'path', "
    "(e.v->>'status')::integer, e.v->>'result', e.v->>'requestId', e.v->>'remote' "
    "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(v, n) ORDER BY e.n",
    1};
static const struct store_stmt st_audit_expire = {
    "audit_expire",
    /* audit_log_time */
    "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE time < now() - "
    "$1::bigint * interval '1 millisecond' LIMIT " RETENTION_CHUNK ")",
    1};
static const struct store_stmt st_audit_list = {
    "audit_list",
    /* primary key backwards; audit_log_tenant / audit_log_actor when filtered */
    "SELECT jsonb_build_object('id', a.id::text, 'time', " SQL_TS(
        "a.time") ", 'actor', a.actor, "
                  "'tokenId', a.token_id, 'role', a.role, 'tenant', a.tenant, 'action', a.action, "
                  "'target', a.target, 'method', a.method, 'path', a.path, 'status', a.status, "
                  "'result', a.result, 'requestId', a.request_id, 'remote', a.remote), a.id "
                  "FROM audit_log a WHERE ($1::text IS NULL OR a.tenant = $1::text) "
                  "AND ($2::text IS NULL OR a.actor = $2::text) "
                  "AND ($3::bigint = 0 OR a.id < $3::bigint) ORDER BY a.id DESC LIMIT $4",
    4};

/* Writes an entry that will not be stored to the log; steals entry. */
static void log_unstored(json_t *entry, const char *why)
{
    log_write(LOG_WARN, json_pack("{s:o,s:s}", "audit", entry, "reason", why),
              "audit entry not stored");
}

static void deadline_in(struct timespec *ts, long long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Stores batch (a JSON array). */
static int insert_batch(struct store_pool *pool, const json_t *batch)
{
    struct store_conn *c = NULL;
    char *text = json_dumps(batch, JSON_COMPACT);
    int rc;

    if (!text)
        return cap_error_set(CAP_ERROR, "out of memory");
    const char *params[1] = {text};
    if ((rc = store_acquire(pool, &c)) == 0) {
        rc = store_exec(c, &st_audit_insert, params, NULL);
        store_release(c);
    }
    free(text);
    return rc;
}

static void expire_old(struct store_audit *a)
{
    char ms[24];
    snprintf(ms, sizeof(ms), "%lld", a->retention_ms);
    const char *params[1] = {ms};
    for (int i = 0; i < 1000; i++) {
        struct store_conn *c = NULL;
        PGresult *res = NULL;
        if (store_acquire(a->pool, &c) != 0)
            return;
        int rc = store_exec(c, &st_audit_expire, params, &res);
        store_release(c);
        if (rc) {
            log_warn("cannot delete old audit entries: %s", cap_error_message());
            return;
        }
        long n = strtol(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        if (n < 10000)
            return;
    }
}

/* Marks n entries settled (stored when stored is true) and wakes flushers; lock held. */
static void settle(struct store_audit *a, size_t n, bool stored)
{
    a->settled += n;
    if (stored)
        a->written += n;
    pthread_cond_broadcast(&a->progress);
}

static void *writer(void *arg)
{
    struct store_audit *a = arg;
    json_t *batch = NULL;
    long long backoff = BACKOFF_FIRST_MS;
    int64_t next_expiry = cap_mono_ms();

    pthread_mutex_lock(&a->lock);
    for (;;) {
        if (!batch) {
            while (!a->stopping && a->count == 0) {
                struct timespec ts;
                long long wait = a->retention_ms > 0 ? next_expiry - cap_mono_ms() : 60000;
                if (a->retention_ms > 0 && wait <= 0)
                    break;
                deadline_in(&ts, wait > 0 ? wait : 1);
                pthread_cond_timedwait(&a->wake, &a->lock, &ts);
            }
            if (a->count > 0) {
                batch = json_array();
                while (a->count > 0 && json_array_size(batch) < BATCH_MAX) {
                    json_array_append_new(batch, a->ring[a->head]);
                    a->ring[a->head] = NULL;
                    a->head = (a->head + 1) % a->cap;
                    a->count--;
                }
            } else if (a->stopping) {
                break;
            }
        }
        pthread_mutex_unlock(&a->lock);

        if (a->retention_ms > 0 && cap_mono_ms() >= next_expiry) {
            expire_old(a);
            next_expiry = cap_mono_ms() + RETENTION_EVERY_MS;
        }
        int rc = batch ? insert_batch(a->pool, batch) : 0;

        pthread_mutex_lock(&a->lock);
        if (!batch)
            continue;
        size_t n = json_array_size(batch);
        if (rc == 0) {
            settle(a, n, true);
            json_decref(batch);
            batch = NULL;
            backoff = BACKOFF_FIRST_MS;
            continue;
        }
        bool transient = rc == CAP_EUNAVAILABLE || rc == CAP_ERETRY || rc == CAP_ETIMEOUT;
        bool out_of_time = a->stopping && cap_mono_ms() >= a->stop_by_ms;
        if (!transient || out_of_time) {
            /* a batch the database refuses, or no time left: keep it in the log */
            size_t i;
            json_t *e;
            const char *why = transient ? "stopping while the database is unreachable"
                                        : "the database refused it";
            if (!transient)
                log_error("cannot store %zu audit entries: %s", n, cap_error_message());
            json_array_foreach(batch, i, e) log_unstored(json_incref(e), why);
            settle(a, n, false);
            json_decref(batch);
            batch = NULL;
            continue;
        }
        if (cap_mono_ms() - a->last_warn_ms > 10000) {
            a->last_warn_ms = cap_mono_ms();
            log_warn("cannot store audit entries (%zu waiting; trying again): %s", a->count + n,
                     cap_error_message());
        }
        struct timespec ts;
        long long wait = backoff;
        if (a->stopping && a->stop_by_ms - cap_mono_ms() < wait)
            wait = a->stop_by_ms - cap_mono_ms();
        if (wait > 0) {
            deadline_in(&ts, wait);
            pthread_cond_timedwait(&a->wake, &a->lock, &ts);
        }
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

int store_audit_start(struct store_audit **out, struct store_pool *pool, long long retention_ms,
                      size_t max_queue)
{
    struct store_audit *a = calloc(1, sizeof(*a));

    *out = NULL;
    if (!a)
        return cap_error_set(CAP_ERROR, "out of memory");
    a->cap = max_queue ? max_queue : 1;
    a->ring = calloc(a->cap, sizeof(json_t *));
    if (!a->ring) {
        free(a);
        return cap_error_set(CAP_ERROR, "out of memory");
    }
    a->pool = pool;
    a->retention_ms = retention_ms;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->wake, NULL);
    pthread_cond_init(&a->progress, NULL);
    if (pthread_create(&a->thread, NULL, writer, a) != 0) {
        pthread_mutex_destroy(&a->lock);
        pthread_cond_destroy(&a->wake);
        pthread_cond_destroy(&a->progress);
        free(a->ring);
        free(a);
        return cap_error_set(CAP_ERROR, "cannot start the audit writer");
    }
    *out = a;
    return 0;
}

void store_audit_add(struct store_audit *a, json_t *entry)
{
    if (!entry)
        return;
    if (!a) {
        log_unstored(entry, "no audit writer");
        return;
    }
    pthread_mutex_lock(&a->lock);
    if (a->count == a->cap || a->stopping) {
        a->dropped++;
        pthread_mutex_unlock(&a->lock);
        log_unstored(entry, "the audit queue is full");
        return;
    }
    a->ring[(a->head + a->count) % a->cap] = entry;
    a->count++;
    a->added++;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
}

bool store_audit_flush(struct store_audit *a, long long deadline_ms)
{
    struct timespec ts;
    bool done;

    if (!a)
        return true;
    deadline_in(&ts, deadline_ms);
    pthread_mutex_lock(&a->lock);
    unsigned long long target = a->added;
    while (a->settled < target) {
        if (pthread_cond_timedwait(&a->progress, &a->lock, &ts) == ETIMEDOUT)
            break;
    }
    done = a->settled >= target;
    pthread_mutex_unlock(&a->lock);
    return done;
}

void store_audit_stop(struct store_audit *a, long long deadline_ms)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    a->stop_by_ms = cap_mono_ms() + deadline_ms;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->thread, NULL);
    /* the writer left nothing behind: it stops only with an empty queue */
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->wake);
    pthread_cond_destroy(&a->progress);
    free(a->ring);
    free(a);
}

void store_audit_stats(struct store_audit *a, size_t *queued, unsigned long long *written,
                       unsigned long long *dropped)
{
    *queued = 0;
    *written = *dropped = 0;
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    *queued = a->count;
    *written = a->written;
    *dropped = a->dropped;
    pthread_mutex_unlock(&a->lock);
}

int store_audit_list(struct store_pool *p, const char *tenant, const char *actor,
                     struct store_page *page, char **items)
{
    const char *params[4] = {tenant, actor, NULL, NULL};
    return store_read_page(p, &st_audit_list, params, page, items);
}
