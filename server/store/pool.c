/* capstan: the libpq connection pool and statement execution (see store.h). */
#include "store/store.h"

#include "log/log.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/str.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct store_pool {
    char *conninfo;
    int size;
    long long wait_ms;
    pthread_mutex_t lock;
    pthread_cond_t freed;
    struct store_conn **idle;
    int nidle;
    int open; /* connections that exist (idle + in use) or are being made */
    int waiting;
    _Atomic int64_t last_failure_log_ms;
};

int store_pool_create(struct store_pool **out, const char *conninfo, int size, long long wait_ms)
{
    struct store_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return cap_error_set(CAP_ERROR, "out of memory");
    p->conninfo = strdup(conninfo ? conninfo : "");
    p->idle = calloc((size_t)size, sizeof(struct store_conn *));
    if (!p->conninfo || !p->idle) {
        free(p->conninfo);
        free(p->idle);
        free(p);
        return cap_error_set(CAP_ERROR, "out of memory");
    }
    p->size = size;
    p->wait_ms = wait_ms;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->freed, NULL);
    *out = p;
    return 0;
}

static void conn_close(struct store_conn *c)
{
    if (!c)
        return;
    PQfinish(c->pg);
    free(c);
}

void store_pool_destroy(struct store_pool *pool)
{
    if (!pool)
        return;
    for (int i = 0; i < pool->nidle; i++)
        conn_close(pool->idle[i]);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->freed);
    free(pool->idle);
    free(pool->conninfo);
    free(pool);
}

static void notice_ignore(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *connect_with_defaults(const char *conninfo)
{
    /* our defaults first: settings in the connection string override them */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"5", "capstan", conninfo, NULL};
    return PQconnectdbParams(keys, vals, 1);
}

int store_connect(const char *conninfo, PGconn **out)
{
    PGconn *pg = connect_with_defaults(conninfo);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        PQfinish(pg);
        *out = NULL;
        return cap_error_set(CAP_EUNAVAILABLE, "the database is unreachable");
    }
    PQsetNoticeProcessor(pg, notice_ignore, NULL);
    *out = pg;
    return 0;
}

static int conn_open(struct store_pool *pool, struct store_conn **out)
{
    struct store_conn *c;
    PGconn *pg = connect_with_defaults(pool->conninfo);

    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        int64_t now = cap_mono_ms();
        /* the reason (without the connection string) for operators, at most every 5 s */
        if (now - pool->last_failure_log_ms > 5000) {
            pool->last_failure_log_ms = now;
            char msg[256];
            cap_strlcpy(msg, pg ? PQerrorMessage(pg) : "out of memory", sizeof(msg));
            for (char *nl = strchr(msg, '\n'); nl; nl = strchr(nl, '\n'))
                *nl = ' ';
            log_warn("cannot connect to the database: %s", msg);
        }
        PQfinish(pg);
        return cap_error_set(CAP_EUNAVAILABLE, "the database is unreachable; try again shortly");
    }
    PQsetNoticeProcessor(pg, notice_ignore, NULL);
    c = calloc(1, sizeof(*c));
    if (!c) {
        PQfinish(pg);
        return cap_error_set(CAP_ERROR, "out of memory");
    }
    c->pg = pg;
    c->pool = pool;
    *out = c;
    return 0;
}

int store_acquire(struct store_pool *pool, struct store_conn **out)
{
    struct timespec until;
    int rc;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(pool->wait_ms / 1000);
    until.tv_nsec += (long)(pool->wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        if (pool->nidle > 0) {
            struct store_conn *c = pool->idle[--pool->nidle];
            pthread_mutex_unlock(&pool->lock);
            if (PQstatus(c->pg) != CONNECTION_OK) {
                conn_close(c);
                pthread_mutex_lock(&pool->lock);
                pool->open--;
                continue;
            }
            *out = c;
            return 0;
        }
        if (pool->open < pool->size) {
            pool->open++;
            pthread_mutex_unlock(&pool->lock);
            rc = conn_open(pool, out);
            if (rc) {
                pthread_mutex_lock(&pool->lock);
                pool->open--;
                pthread_cond_signal(&pool->freed);
                pthread_mutex_unlock(&pool->lock);
            }
            return rc;
        }
        pool->waiting++;
        rc = pthread_cond_timedwait(&pool->freed, &pool->lock, &until);
        pool->waiting--;
        if (rc == ETIMEDOUT) {
            pthread_mutex_unlock(&pool->lock);
            return cap_error_set(CAP_EUNAVAILABLE,
                                 "all database connections are busy; try again shortly");
        }
    }
}

void store_release(struct store_conn *c)
{
    struct store_pool *pool;
    if (!c)
        return;
    pool = c->pool;
    if (c->in_tx && !c->broken)
        store_rollback(c);
    pthread_mutex_lock(&pool->lock);
    if (c->broken || c->in_tx || PQstatus(c->pg) != CONNECTION_OK ||
        PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        pool->open--;
        pthread_cond_signal(&pool->freed);
        pthread_mutex_unlock(&pool->lock);
        conn_close(c);
        return;
    }
    pool->idle[pool->nidle++] = c;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
}

void store_pool_stats(struct store_pool *pool, int *in_use, int *waiting, int *open)
{
    pthread_mutex_lock(&pool->lock);
    *in_use = pool->open - pool->nidle;
    *waiting = pool->waiting;
    *open = pool->open;
    pthread_mutex_unlock(&pool->lock);
}

int store_result_error(struct store_conn *c, const PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg);

    if (PQstatus(c->pg) != CONNECTION_OK || (state && strncmp(state, "08", 2) == 0) ||
        (state && strncmp(state, "57P", 3) == 0)) {
        c->broken = true;
        return cap_error_set(CAP_EUNAVAILABLE, "the database is unreachable; try again shortly");
    }
    if (state && strcmp(state, "23505") == 0)
        return cap_error_set(CAP_ECONFLICT, "%s: already exists", what);
    if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0))
        return cap_error_set(CAP_ERETRY, "%s: concurrent update, try again", what);
    if (state && strcmp(state, "57014") == 0)
        return cap_error_set(CAP_ETIMEOUT, "%s: the database took too long", what);
    {
        char m[300];
        cap_strlcpy(m, msg ? msg : "", sizeof(m));
        for (char *nl = strchr(m, '\n'); nl; nl = strchr(nl, '\n'))
            *nl = ' ';
        return cap_error_set(CAP_ERROR, "%s failed: %s (SQLSTATE %s)", what, m,
                             state ? state : "none");
    }
}

static bool is_prepared(const struct store_conn *c, const struct store_stmt *st)
{
    for (int i = 0; i < c->nprepared; i++)
        if (c->prepared[i] == st)
            return true;
    return false;
}

int store_exec(struct store_conn *c, const struct store_stmt *st, const char *const *params,
               PGresult **out)
{
    PGresult *res;
    ExecStatusType s;

    if (out)
        *out = NULL;
    if (!is_prepared(c, st)) {
        if (c->nprepared == STORE_MAX_STMTS)
            return cap_error_set(CAP_ERROR, "too many prepared statements");
        res = PQprepare(c->pg, st->name, st->sql, st->nparams, NULL);
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
            int rc = store_result_error(c, res, st->name);
            PQclear(res);
            return rc;
        }
        PQclear(res);
        c->prepared[c->nprepared++] = st;
    }
    res = PQexecPrepared(c->pg, st->name, st->nparams, params, NULL, NULL, 0);
    s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        int rc = store_result_error(c, res, st->name);
        PQclear(res);
        return rc;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return 0;
}

static int exec_simple(struct store_conn *c, const char *sql, const char *what)
{
    PGresult *res = PQexec(c->pg, sql);
    ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        rc = store_result_error(c, res, what);
    PQclear(res);
    return rc;
}

int store_begin(struct store_conn *c)
{
    int rc = exec_simple(c, "BEGIN", "begin");
    if (rc == 0)
        c->in_tx = true;
    return rc;
}

int store_commit(struct store_conn *c)
{
    int rc = exec_simple(c, "COMMIT", "commit");
    c->in_tx = false;
    if (rc == 0 && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        rc = cap_error_set(CAP_ERROR, "commit did not end the transaction");
    return rc;
}

void store_rollback(struct store_conn *c)
{
    if (PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        exec_simple(c, "ROLLBACK", "rollback");
    c->in_tx = false;
}

int store_exec_script(struct store_conn *c, const char *sql)
{
    return exec_simple(c, sql, "script");
}

bool store_ping(struct store_pool *pool)
{
    static const struct store_stmt ping = {"ping", "SELECT 1", 0};
    struct store_conn *c = NULL;
    bool ok;
    if (store_acquire(pool, &c) != 0 || !c)
        return false;
    ok = store_exec(c, &ping, NULL, NULL) == 0;
    store_release(c);
    return ok;
}

const char *store_val(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    return PQgetvalue(res, row, col);
}

json_t *store_json(const PGresult *res, int row, int col)
{
    const char *v = store_val(res, row, col);
    return v ? json_loads(v, JSON_DECODE_ANY, NULL) : NULL;
}

int store_run(struct store_pool *p, const struct store_stmt *st, const char *const *params,
              PGresult **out)
{
    struct store_conn *c = NULL;
    int rc = store_acquire(p, &c);
    if (rc)
        return rc;
    rc = store_exec(c, st, params, out);
    store_release(c);
    return rc;
}

int store_read_one(struct store_pool *p, const struct store_stmt *st, const char *const *params,
                   json_t **out)
{
    PGresult *res = NULL;
    int rc = store_run(p, st, params, &res);
    *out = NULL;
    if (rc)
        return rc;
    if (PQntuples(res) == 1 && !(*out = store_json(res, 0, 0)))
        rc = cap_error_set(CAP_ERROR, "cannot decode a stored row");
    PQclear(res);
    return rc;
}

int store_read_page(struct store_pool *p, const struct store_stmt *st, const char **params,
                    struct store_page *page, char **items)
{
    char after[24], limit[24];
    struct cap_buf b = CAP_BUF_INIT(256u << 20);
    PGresult *res = NULL;
    int rc, n;

    snprintf(after, sizeof(after), "%lld", page->after);
    snprintf(limit, sizeof(limit), "%d", page->limit + 1);
    params[st->nparams - 2] = after;
    params[st->nparams - 1] = limit;
    *items = NULL;
    page->next = 0;
    if ((rc = store_run(p, st, params, &res)) != 0)
        return rc;
    n = PQntuples(res);
    rc = cap_buf_putc(&b, '[');
    for (int i = 0; rc == 0 && i < n && i < page->limit; i++) {
        const char *v = store_val(res, i, 0);
        if (!v) {
            rc = cap_error_set(CAP_ERROR, "a stored row has no JSON");
            break;
        }
        if ((i > 0 && (rc = cap_buf_putc(&b, ',')) != 0) || (rc = cap_buf_puts(&b, v)) != 0)
            break;
        if (i == page->limit - 1 && n > page->limit)
            page->next = strtoll(store_val(res, i, 1), NULL, 10);
    }
    if (rc == 0)
        rc = cap_buf_putc(&b, ']');
    PQclear(res);
    if (rc) {
        cap_buf_free(&b);
        return rc;
    }
    *items = cap_buf_detach(&b);
    return 0;
}
