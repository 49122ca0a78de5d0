/* capstan: PostgreSQL access through libpq.
 *
 * A pool of connections shared by the HTTP and worker threads. Statements are declared once
 * (struct store_stmt, usually static const in the store file that owns them) and prepared
 * lazily on each connection the first time they run there; after a reconnect they are prepared
 * again. Only parameters carry values into SQL.
 *
 * Failures map to codes: a lost or refused connection is CAP_EUNAVAILABLE (the connection is
 * dropped and a later acquire reconnects), a unique violation CAP_ECONFLICT, a serialization
 * failure or deadlock CAP_ERETRY, anything else CAP_ERROR with the server's message logged
 * (never returned to users). All functions are thread-safe; a store_conn is used by one thread
 * at a time. */
#ifndef CAPSTAN_STORE_STORE_H
#define CAPSTAN_STORE_STORE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#define STORE_MAX_STMTS 160

struct store_stmt {
    const char *name; /* unique prepared statement name */
    const char *sql;  /* with $1..$n */
    int nparams;
};

struct store_pool;

struct store_conn {
    PGconn *pg;
    struct store_pool *pool;
    const struct store_stmt *prepared[STORE_MAX_STMTS];
    int nprepared;
    bool broken;
    bool in_tx;
};

/* Makes a pool of at most `size` connections to conninfo (URI or key=value). Connects lazily:
 * creating a pool never fails for an unreachable database. wait_ms bounds how long
 * store_acquire waits for a free connection. *out is the caller's (store_pool_destroy). */
int store_pool_create(struct store_pool **out, const char *conninfo, int size, long long wait_ms);
void store_pool_destroy(struct store_pool *pool);

/* Takes a connection (reconnecting if needed). CAP_EUNAVAILABLE if the database cannot be
 * reached or no connection frees up in time. Give it back with store_release. */
int store_acquire(struct store_pool *pool, struct store_conn **out);
/* Returns a connection; one that broke, or that is still in a transaction, is closed. */
void store_release(struct store_conn *c);

/* Number of connections in use and of threads waiting for one (metrics). */
void store_pool_stats(struct store_pool *pool, int *in_use, int *waiting, int *open);

/* Runs a declared statement with text parameters (NULL = SQL NULL). On success *out (may be
 * NULL if the caller needs no rows) is the caller's to PQclear. */
int store_exec(struct store_conn *c, const struct store_stmt *st, const char *const *params,
               PGresult **out);

/* Transactions. store_rollback is safe to call when no transaction is open. */
int store_begin(struct store_conn *c);
int store_commit(struct store_conn *c);
void store_rollback(struct store_conn *c);

/* Runs SQL text that holds no outside input (migration files); CAP_* as above. */
int store_exec_script(struct store_conn *c, const char *sql);

/* Opens a connection outside the pool (for LISTEN), with the pool's defaults. *out is the
 * caller's (PQfinish). CAP_EUNAVAILABLE if the database cannot be reached. */
int store_connect(const char *conninfo, PGconn **out);

/* True if a trivial query succeeds within the pool's wait. */
bool store_ping(struct store_pool *pool);

/* Maps a failed result (or a NULL result) on c to a code and sets the last error. */
int store_result_error(struct store_conn *c, const PGresult *res, const char *what);

/* Row helpers: value of row r, column c, or NULL for SQL NULL. */
const char *store_val(const PGresult *res, int row, int col);
/* Column col of row parsed as JSON: a new reference, or NULL (SQL NULL or not JSON). */
json_t *store_json(const PGresult *res, int row, int col);

/* Runs st on a pooled connection of p (acquire, exec, release); *out as store_exec. */
int store_run(struct store_pool *p, const struct store_stmt *st, const char *const *params,
              PGresult **out);
/* Runs st (at most one row, column 0 JSON): *out is that value (new reference), or NULL when
 * there is no row; the caller says what was not found. */
int store_read_one(struct store_pool *p, const struct store_stmt *st, const char *const *params,
                   json_t **out);

/* A page of a list, newest first. */
struct store_page {
    long long after; /* cursor: only items older than this id/seq (0: from the newest) */
    int limit;
    long long next; /* out: cursor of the next page, 0 when this is the last */
};
/* Runs a list statement whose last two parameters are the cursor and the limit (params holds
 * st->nparams slots; these two are filled here, asking for one row more to learn whether a
 * next page exists): column 0 of each row (JSON made by PostgreSQL) goes into *items, the text
 * of a JSON array (caller frees; the rows are joined, not parsed again), column 1 of the last
 * row kept becomes page->next. */
int store_read_page(struct store_pool *p, const struct store_stmt *st, const char **params,
                    struct store_page *page, char **items);

#endif
