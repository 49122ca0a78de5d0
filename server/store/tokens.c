/* capstan: API tokens in PostgreSQL (see tokens.h). Every statement says which index serves
 * it. */
#include "store/tokens.h"

#include "store/sqljson.h"
#include "util/error.h"
#include "util/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_TOKEN_JSON(k)                                                                          \
    "jsonb_build_object('id', " k ".id, 'name', " k ".name, 'role', " k ".role, 'tenant', " k      \
    ".tenant, 'createdAt', " SQL_TS(k ".created_at") ", 'expiresAt', " SQL_TS(                     \
        k                                                                                          \
        ".expires_at") ", 'revokedAt', " SQL_TS(k                                                  \
                                                ".revoked_at") ", 'lastUsedAt', " SQL_TS(k         \
                                                                                         ".last_"  \
                                                                                         "used_"   \
                                                                                         "at") ")"

static const struct store_stmt st_token_auth = {
    "token_auth",
    /* api_tokens_token_hash_key; the update notes the use at most once a minute */
    "WITH u AS (UPDATE api_tokens SET last_used_at = now() WHERE token_hash = $1 "
    "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) "
    "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')) "
    "SELECT k.id, k.name, k.role, t.name, k.token_hash FROM api_tokens k "
    "LEFT JOIN tenants t ON t.id = k.tenant_id WHERE k.token_hash = $1 "
    "AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())",
    1};
static const struct store_stmt st_token_insert = {
    "token_insert",
    /* tenants_name_key for the tenant */
    "INSERT INTO api_tokens (id, name, role, tenant_id, tenant, token_hash, created_by, "
    "expires_at) SELECT $1::uuid, $2, $3, t.id, t.name, $5, $6, "
    "CASE WHEN $7::bigint = 0 THEN NULL ELSE to_timestamp($7::bigint / 1000.0) END "
    "FROM (SELECT NULL::bigint AS id, NULL::text AS name WHERE $4::text IS NULL "
    "UNION ALL SELECT id, name FROM tenants WHERE name = $4::text AND state <> 'deleted') t "
    "RETURNING " SQL_TOKEN_JSON("api_tokens"),
    7};
static const struct store_stmt st_token_list = {
    "token_list",
    /* api_tokens_seq_key, backwards */
    "SELECT " SQL_TOKEN_JSON("k") ", k.seq FROM api_tokens k "
                                  "WHERE ($1::bigint = 0 OR k.seq < $1::bigint) "
                                  "ORDER BY k.seq DESC LIMIT $2",
    2};
static const struct store_stmt st_token_revoke = {
    "token_revoke",
    /* primary key */
    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1::uuid "
    "RETURNING 1",
    1};
static const struct store_stmt st_job_tenant = {"job_tenant",
                                                /* primary key */
                                                "SELECT tenant FROM jobs WHERE id = $1::uuid", 1};

int store_token_auth(struct store_pool *p, const char *hash, struct store_token_auth *out)
{
    const char *params[1] = {hash};
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = store_run(p, &st_token_auth, params, &res)) != 0)
        return rc;
    if (PQntuples(res) != 1) {
        rc = cap_error_set(CAP_EUNAUTHORIZED, "the bearer token is unknown, expired or revoked");
        goto cleanup;
    }
    cap_strlcpy(out->id, store_val(res, 0, 0), sizeof(out->id));
    cap_strlcpy(out->name, store_val(res, 0, 1), sizeof(out->name));
    cap_strlcpy(out->role, store_val(res, 0, 2), sizeof(out->role));
    cap_strlcpy(out->tenant, store_val(res, 0, 3) ? store_val(res, 0, 3) : "", sizeof(out->tenant));
    cap_strlcpy(out->hash, store_val(res, 0, 4), sizeof(out->hash));
    if (strcmp(out->role, "admin") != 0 && !out->tenant[0])
        rc = cap_error_set(CAP_EUNAUTHORIZED, "the bearer token is unknown, expired or revoked");
cleanup:
    PQclear(res);
    return rc;
}

int store_token_create(struct store_pool *p, const char *id, const char *name, const char *role,
                       const char *tenant, const char *hash, long long expires_ms,
                       const char *created_by, json_t **out)
{
    char exp[24];
    PGresult *res = NULL;
    int rc;

    *out = NULL;
    snprintf(exp, sizeof(exp), "%lld", expires_ms);
    const char *params[7] = {id, name, role, tenant, hash, created_by, exp};
    if ((rc = store_run(p, &st_token_insert, params, &res)) != 0)
        return rc;
    if (PQntuples(res) != 1) {
        rc = cap_error_set_field(CAP_EINVALID, "tenant", "tenant \"%s\" does not exist",
                                 tenant ? tenant : "");
        goto cleanup;
    }
    *out = json_loads(store_val(res, 0, 0), 0, NULL);
    if (!*out)
        rc = cap_error_set(CAP_ERROR, "cannot decode a stored token");
cleanup:
    PQclear(res);
    return rc;
}

int store_token_list(struct store_pool *p, struct store_page *page, char **items)
{
    const char *params[2] = {NULL, NULL};
    return store_read_page(p, &st_token_list, params, page, items);
}

int store_token_revoke(struct store_pool *p, const char *id)
{
    const char *params[1] = {id};
    PGresult *res = NULL;
    int rc = store_run(p, &st_token_revoke, params, &res);
    if (rc)
        return rc;
    if (PQntuples(res) != 1)
        rc = cap_error_set(CAP_ENOTFOUND, "token \"%s\" does not exist", id);
    PQclear(res);
    return rc;
}

int store_job_tenant(struct store_pool *p, const char *id, char *out, size_t n)
{
    const char *params[1] = {id};
    PGresult *res = NULL;
    int rc = store_run(p, &st_job_tenant, params, &res);
    if (rc)
        return rc;
    if (PQntuples(res) != 1)
        rc = cap_error_set(CAP_ENOTFOUND, "job \"%s\" does not exist", id);
    else
        cap_strlcpy(out, store_val(res, 0, 0), n);
    PQclear(res);
    return rc;
}
