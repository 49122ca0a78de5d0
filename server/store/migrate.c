/* capstan: schema migrations (see migrate.h). */
#include "store/migrate.h"

#include "log/log.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "capstan" in ASCII: the advisory lock key that serializes migrations. */
#define MIGRATION_LOCK_KEY "27981222392537454"

static const struct store_stmt st_lock = {"migrate_lock", "SELECT pg_advisory_lock($1::bigint)", 1};
static const struct store_stmt st_unlock = {"migrate_unlock",
                                            "SELECT pg_advisory_unlock($1::bigint)", 1};
static const struct store_stmt st_table = {"migrate_table",
                                           "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                           " version integer PRIMARY KEY,"
                                           " name text NOT NULL,"
                                           " checksum text NOT NULL,"
                                           " applied_at timestamptz NOT NULL DEFAULT now())",
                                           0};
static const struct store_stmt st_exists = {
    "migrate_exists", "SELECT to_regclass('schema_migrations') IS NOT NULL", 0};
/* served by the primary key */
static const struct store_stmt st_applied = {
    "migrate_applied", "SELECT version, name, checksum FROM schema_migrations ORDER BY version", 0};
static const struct store_stmt st_record = {
    "migrate_record", "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
    3};

static int file_version(const char *name, long long *version)
{
    char digits[8];
    size_t n = strspn(name, "0123456789");
    size_t len = strlen(name);
    if (n != 4 || name[4] != '_' || len < 10 || strcmp(name + len - 4, ".sql") != 0)
        return cap_error_set(CAP_ECONFLICT,
                             "migration file \"%s\" is not named NNNN_description.sql", name);
    memcpy(digits, name, 4);
    digits[4] = '\0';
    return cap_parse_long(version, digits, 1, 9999);
}

/* Compares files with the applied rows; sets *pending to the index of the first file not yet
 * applied (or the count of files), fails on changed or reordered files. */
static int check_applied(PGresult *rows, const struct embedded_file *files, int *pending)
{
    int nrows = PQntuples(rows);
    int i = 0;
    for (; files[i].name; i++) {
        long long v = 0;
        char sum[65];
        if (file_version(files[i].name, &v))
            return CAP_ECONFLICT;
        if (i >= nrows)
            break;
        if (atoll(store_val(rows, i, 0)) != v)
            return cap_error_set(CAP_ECONFLICT,
                                 "migration \"%s\" does not match the applied migration %s "
                                 "(\"%s\"): a migration was added, removed or renumbered",
                                 files[i].name, store_val(rows, i, 0), store_val(rows, i, 1));
        cap_sha256_hex(sum, files[i].data, files[i].len);
        if (strcmp(sum, store_val(rows, i, 2)) != 0)
            return cap_error_set(CAP_ECONFLICT,
                                 "migration \"%s\" changed after it was applied (checksum "
                                 "%.12s..., applied %.12s...); add a new migration instead",
                                 files[i].name, sum, store_val(rows, i, 2));
    }
    if (nrows > i && !files[i].name)
        log_warn("the database has %d migrations this binary does not know (a newer capstan "
                 "applied them)",
                 nrows - i);
    *pending = i;
    return 0;
}

static int apply_one(struct store_conn *c, const struct embedded_file *f)
{
    long long v = 0;
    char vtext[16], sum[65];
    const char *params[3];
    int rc;

    file_version(f->name, &v);
    snprintf(vtext, sizeof(vtext), "%lld", v);
    cap_sha256_hex(sum, f->data, f->len);
    params[0] = vtext;
    params[1] = f->name;
    params[2] = sum;
    if ((rc = store_begin(c)) != 0)
        return rc;
    /* Trusted text: the file ships inside the binary. */
    if ((rc = store_exec_script(c, f->data)) != 0 ||
        (rc = store_exec(c, &st_record, params, NULL)) != 0 || (rc = store_commit(c)) != 0) {
        store_rollback(c);
        return cap_error_wrap("migration \"%s\"", f->name);
    }
    log_info("applied migration %s", f->name);
    return 0;
}

int store_migrate(struct store_conn *c, const struct embedded_file *files, int *applied)
{
    const char *key[] = {MIGRATION_LOCK_KEY};
    PGresult *rows = NULL;
    int pending = 0, rc;

    *applied = 0;
    if ((rc = store_exec(c, &st_lock, key, NULL)) != 0)
        return rc;
    if ((rc = store_exec(c, &st_table, NULL, NULL)) != 0)
        goto cleanup;
    if ((rc = store_exec(c, &st_applied, NULL, &rows)) != 0)
        goto cleanup;
    if ((rc = check_applied(rows, files, &pending)) != 0)
        goto cleanup;
    for (int i = pending; files[i].name; i++) {
        if ((rc = apply_one(c, &files[i])) != 0)
            goto cleanup;
        (*applied)++;
    }
cleanup:
    PQclear(rows);
    if (!c->broken) {
        /* keep the first error, not the unlock's */
        int code = cap_error_code();
        char msg[CAP_ERROR_MESSAGE_MAX];
        cap_strlcpy(msg, cap_error_message(), sizeof(msg));
        store_exec(c, &st_unlock, key, NULL);
        if (rc)
            cap_error_set(code, "%s", msg);
    }
    return rc;
}

int store_migrations_current(struct store_conn *c, const struct embedded_file *files, bool *current)
{
    PGresult *res = NULL;
    int pending = 0, rc, nfiles = 0;

    *current = false;
    if ((rc = store_exec(c, &st_exists, NULL, &res)) != 0)
        return rc;
    bool exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    res = NULL;
    if (!exists)
        return 0;
    if ((rc = store_exec(c, &st_applied, NULL, &res)) != 0)
        return rc;
    while (files[nfiles].name)
        nfiles++;
    rc = check_applied(res, files, &pending);
    PQclear(res);
    if (rc == CAP_ECONFLICT)
        return 0; /* changed migrations: not current, not an error for a readiness probe */
    *current = rc == 0 && pending == nfiles;
    return rc;
}
