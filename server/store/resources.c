/* capstan: tenants, environments and the API side of jobs (see resources.h).
 * Every statement says which index serves it. */
#include "store/resources.h"

#include "jobs/kinds.h"
#include "store/jobs.h"
#include "store/sqljson.h"
#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the longest an ephemeral environment may have left (720h) */
#define MAX_LIFETIME_MS (720LL * 3600 * 1000)

/* ---- helpers ---- */

static char *dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static void ll_text(char buf[24], long long v)
{
    snprintf(buf, 24, "%lld", v);
}

/* ---- idempotency ---- */

static const struct store_stmt st_idem_claim = {
    "idem_claim",
    /* primary key (actor, key) */
    "INSERT INTO idempotency_keys (actor, key, request_hash) VALUES ($1, $2, $3) "
    "ON CONFLICT (actor, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, "
    "status = NULL, location = NULL, response = NULL, created_at = now() "
    "WHERE idempotency_keys.created_at < now() - interval '24 hours' RETURNING 1",
    3};
static const struct store_stmt st_idem_get = {
    "idem_get",
    "SELECT request_hash, status, location, response FROM idempotency_keys "
    "WHERE actor = $1 AND key = $2",
    2};
static const struct store_stmt st_idem_save = {
    "idem_save",
    "UPDATE idempotency_keys SET status = $3, location = $4, response = $5::jsonb "
    "WHERE actor = $1 AND key = $2",
    5};

/* In c's transaction. 0: the key is ours now (or there is none); w->replayed with *out set:
 * answer with the stored response; CAP_EINVALID: the key was used for another request. */
static int idem_begin(struct store_conn *c, struct store_write *w, json_t **out)
{
    const char *params[3] = {w->actor, w->idem_key, w->idem_hash};
    PGresult *res = NULL;
    int rc;

    if (!w->idem_key)
        return 0;
    if ((rc = store_exec(c, &st_idem_claim, params, &res)) != 0)
        return rc;
    bool ours = PQntuples(res) == 1;
    PQclear(res);
    if (ours)
        return 0;
    if ((rc = store_exec(c, &st_idem_get, params, &res)) != 0)
        return rc;
    if (PQntuples(res) != 1 || !store_val(res, 0, 1)) {
        PQclear(res);
        return cap_error_set(CAP_ERETRY, "a request with this Idempotency-Key is in progress");
    }
    if (strcmp(store_val(res, 0, 0), w->idem_hash) != 0) {
        PQclear(res);
        return cap_error_set_field(CAP_EINVALID, "Idempotency-Key",
                                   "this Idempotency-Key was used for a different request in "
                                   "the last 24 hours; use a new key");
    }
    w->replayed = true;
    w->status = (int)strtol(store_val(res, 0, 1), NULL, 10);
    cap_strlcpy(w->location, store_val(res, 0, 2) ? store_val(res, 0, 2) : "", sizeof(w->location));
    *out = store_json(res, 0, 3);
    PQclear(res);
    return *out ? 0 : cap_error_set(CAP_ERROR, "cannot decode a stored answer");
}

static int idem_finish(struct store_conn *c, const struct store_write *w, const json_t *body)
{
    char status[16];
    char *text;
    int rc;

    if (!w->idem_key)
        return 0;
    snprintf(status, sizeof(status), "%d", w->status);
    text = dump(body);
    const char *params[5] = {w->actor, w->idem_key, status, w->location, text};
    rc = store_exec(c, &st_idem_save, params, NULL);
    free(text);
    return rc;
}

/* Runs fn in one transaction with the Idempotency-Key bookkeeping around it. fn sets
 * w->status and w->location and *out. */
typedef int (*write_fn)(struct store_conn *c, void *ctx, struct store_write *w, json_t **out);

static int write_tx(struct store_pool *p, struct store_write *w, write_fn fn, void *ctx,
                    json_t **out)
{
    struct store_conn *c = NULL;
    int rc;

    *out = NULL;
    w->replayed = false;
    if ((rc = store_acquire(p, &c)) != 0)
        return rc;
    if ((rc = store_begin(c)) != 0)
        goto cleanup;
    if ((rc = idem_begin(c, w, out)) != 0 || w->replayed)
        goto cleanup;
    if ((rc = fn(c, ctx, w, out)) != 0)
        goto cleanup;
    if ((rc = idem_finish(c, w, *out)) != 0)
        goto cleanup;
    rc = store_commit(c);
cleanup:
    if (rc || w->replayed)
        store_rollback(c);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    store_release(c);
    return rc;
}

/* In c's transaction: inserts the job of a write and makes its answer: 202, Location of the
 * resource, body {"tenant"|"environment": resource, "job": job}. env NULL for tenant jobs. */
static int answer_with_job(struct store_conn *c, struct store_write *w, enum job_kind kind,
                           long long tenant_id, const char *tenant, long long env_id,
                           const char *env, const json_t *params, const json_t *resource,
                           json_t **out)
{
    json_t *job = NULL;
    int rc = store_job_insert(c, kind, tenant_id, tenant, env_id, env, params, w->actor, &job);
    if (rc)
        return rc;
    *out = json_pack("{s:O,s:o}", env ? "environment" : "tenant", resource, "job", job);
    w->status = 202;
    if (env)
        snprintf(w->location, sizeof(w->location), "/api/v1/tenants/%s/environments/%s", tenant,
                 env);
    else
        snprintf(w->location, sizeof(w->location), "/api/v1/tenants/%s", tenant);
    return 0;
}

/* ---- tenants ---- */

static const struct store_stmt st_tenant_get = {
    "tenant_get",
    /* tenants_name_key */
    "SELECT " SQL_TENANT_JSON("t") " FROM tenants t WHERE t.name = $1", 1};
static const struct store_stmt st_tenant_spec = {
    "tenant_spec",
    "SELECT jsonb_build_object('name', t.name) || t.spec, t.generation FROM tenants t "
    "WHERE t.name = $1",
    1};
static const struct store_stmt st_tenant_list = {
    "tenant_list",
    /* primary key, backwards; tenants_state / tenants_labels when filtered */
    "SELECT " SQL_TENANT_JSON(
        "t") ", t.id FROM tenants t "
             "WHERE ($1::text IS NULL OR t.state = $1) "
             "AND ($2::jsonb IS NULL OR t.spec -> 'labels' @> $2::jsonb) "
             "AND ($3::bigint = 0 OR t.id < $3::bigint) ORDER BY t.id DESC LIMIT $4",
    4};
static const struct store_stmt st_tenant_purge = {
    "tenant_purge",
    "DELETE FROM tenants WHERE name = $1 AND state = 'deleted' "
    "AND deleted_at < now() - interval '7 days'",
    1};
static const struct store_stmt st_tenant_insert = {
    "tenant_insert",
    "INSERT INTO tenants (name, spec) VALUES ($1, $2::jsonb) ON CONFLICT (name) DO NOTHING "
    "RETURNING id, " SQL_TENANT_JSON("tenants"),
    2};
static const struct store_stmt st_tenant_state = {
    "tenant_state",
    "SELECT state, " SQL_TS("deleted_at + interval '7 days'") " FROM tenants WHERE name = $1", 1};
static const struct store_stmt st_tenant_lock = {
    "tenant_lock",
    "SELECT t.id, t.state, t.generation, jsonb_build_object('name', t.name) || t.spec, "
    "(SELECT count(*) FROM environments e WHERE e.tenant_id = t.id AND e.deleted_at IS NULL) "
    "FROM tenants t WHERE t.name = $1 FOR UPDATE",
    1};
static const struct store_stmt st_tenant_set_spec = {
    "tenant_set_spec",
    "UPDATE tenants SET spec = $2::jsonb, generation = generation + 1, updated_at = now() "
    "WHERE id = $1 RETURNING generation, " SQL_TENANT_JSON("tenants"),
    2};
static const struct store_stmt st_tenant_set_deleting = {
    "tenant_set_deleting",
    "UPDATE tenants SET state = 'deleting', updated_at = now() WHERE id = $1 "
    "RETURNING " SQL_TENANT_JSON("tenants"),
    1};
static const struct store_stmt st_envs_set_deleting = {
    "envs_set_deleting",
    /* environments_tenant */
    "UPDATE environments SET state = 'deleting', updated_at = now() "
    "WHERE tenant_id = $1 AND deleted_at IS NULL",
    1};

int store_tenant_get(struct store_pool *p, const char *name, json_t **out)
{
    const char *params[1] = {name};
    int rc = store_read_one(p, &st_tenant_get, params, out);
    if (rc == 0 && !*out)
        rc = cap_error_set(CAP_ENOTFOUND, "tenant \"%s\" does not exist", name);
    return rc;
}

int store_tenant_spec(struct store_pool *p, const char *name, json_t **spec, long long *generation)
{
    const char *params[1] = {name};
    PGresult *res = NULL;
    int rc = store_run(p, &st_tenant_spec, params, &res);
    *spec = NULL;
    if (rc)
        return rc;
    if (PQntuples(res) == 1) {
        *spec = store_json(res, 0, 0);
        *generation = atoll(store_val(res, 0, 1));
    }
    PQclear(res);
    if (!*spec)
        return cap_error_set(CAP_ENOTFOUND, "tenant \"%s\" does not exist", name);
    return 0;
}

int store_tenant_list(struct store_pool *p, const char *state, const json_t *labels,
                      struct store_page *page, char **items)
{
    char *lab = labels && json_object_size(labels) ? dump(labels) : NULL;
    const char *params[4] = {state, lab, NULL, NULL};
    int rc = store_read_page(p, &st_tenant_list, params, page, items);
    free(lab);
    return rc;
}

static int tenant_create_fn(struct store_conn *c, void *ctx, struct store_write *w, json_t **out)
{
    const json_t *spec = ctx;
    const char *name = cap_json_get_str(spec, "name");
    json_t *stored = json_deep_copy(spec), *tenant = NULL, *params_json = NULL;
    char *spec_text;
    PGresult *res = NULL;
    int rc;

    json_object_del(stored, "name");
    spec_text = dump(stored);
    const char *p1[1] = {name};
    const char *p2[2] = {name, spec_text};
    if ((rc = store_exec(c, &st_tenant_purge, p1, NULL)) != 0)
        goto cleanup;
    if ((rc = store_exec(c, &st_tenant_insert, p2, &res)) != 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        PQclear(res);
        res = NULL;
        if ((rc = store_exec(c, &st_tenant_state, p1, &res)) == 0) {
            if (PQntuples(res) == 1 && strcmp(store_val(res, 0, 0), "deleted") == 0)
                rc = cap_error_set(CAP_ECONFLICT,
                                   "tenant \"%s\" was deleted recently; its name is taken "
                                   "until %s",
                                   name, store_val(res, 0, 1) ? store_val(res, 0, 1) : "later");
            else
                rc = cap_error_set(CAP_ECONFLICT, "tenant \"%s\" already exists", name);
        }
        goto cleanup;
    }
    long long id = atoll(store_val(res, 0, 0));
    tenant = store_json(res, 0, 1);
    params_json = json_pack("{s:I,s:O}", "generation", (json_int_t)1, "spec", spec);
    rc = answer_with_job(c, w, JOB_TENANT_CREATE, id, name, 0, NULL, params_json, tenant, out);
cleanup:
    PQclear(res);
    free(spec_text);
    json_decref(stored);
    json_decref(tenant);
    json_decref(params_json);
    return rc;
}

int store_tenant_create(struct store_pool *p, const json_t *spec, struct store_write *w,
                        json_t **out)
{
    return write_tx(p, w, tenant_create_fn, (void *)spec, out);
}

struct locked_tenant {
    long long id;
    char state[16];
    long long generation;
    json_t *spec;
    long long live_envs;
};

/* Locks the tenant row for the transaction. */
static int tenant_lock(struct store_conn *c, const char *name, struct locked_tenant *t)
{
    const char *params[1] = {name};
    PGresult *res = NULL;
    int rc = store_exec(c, &st_tenant_lock, params, &res);
    memset(t, 0, sizeof(*t));
    if (rc)
        return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return cap_error_set(CAP_ENOTFOUND, "tenant \"%s\" does not exist", name);
    }
    t->id = atoll(store_val(res, 0, 0));
    cap_strlcpy(t->state, store_val(res, 0, 1), sizeof(t->state));
    t->generation = atoll(store_val(res, 0, 2));
    t->spec = store_json(res, 0, 3);
    t->live_envs = atoll(store_val(res, 0, 4));
    PQclear(res);
    return t->spec ? 0 : cap_error_set(CAP_ERROR, "cannot decode a stored tenant");
}

static int check_if_match(const struct store_write *w, long long generation, const char *what)
{
    if (w->if_match >= 0 && w->if_match != generation)
        return cap_error_set(CAP_EPRECONDITION,
                             "%s is at generation %lld, not %lld as If-Match says; read it "
                             "again",
                             what, generation, w->if_match);
    return 0;
}

/* Locks a tenant that is to change: it must not be going away, and If-Match must hold. */
static int tenant_lock_live(struct store_conn *c, const char *name, const struct store_write *w,
                            struct locked_tenant *t)
{
    int rc = tenant_lock(c, name, t);
    if (rc)
        return rc;
    if (strcmp(t->state, "deleting") == 0 || strcmp(t->state, "deleted") == 0)
        return cap_error_set(CAP_ECONFLICT, "tenant \"%s\" is already %s", name, t->state);
    return check_if_match(w, t->generation, "the tenant");
}

struct tenant_update_ctx {
    const char *name;
    long long generation;
    const json_t *spec;
};

static int tenant_update_fn(struct store_conn *c, void *ctx, struct store_write *w, json_t **out)
{
    struct tenant_update_ctx *u = ctx;
    struct locked_tenant t;
    json_t *stored = NULL, *tenant = NULL, *params_json = NULL;
    char *spec_text = NULL;
    char idtext[24];
    PGresult *res = NULL;
    int rc;

    if ((rc = tenant_lock_live(c, u->name, w, &t)) != 0)
        goto cleanup;
    if (t.generation != u->generation) {
        rc = cap_error_set(CAP_ERETRY, "the tenant changed meanwhile");
        goto cleanup;
    }
    stored = json_deep_copy(u->spec);
    json_object_del(stored, "name");
    spec_text = dump(stored);
    ll_text(idtext, t.id);
    const char *params[2] = {idtext, spec_text};
    if ((rc = store_exec(c, &st_tenant_set_spec, params, &res)) != 0)
        goto cleanup;
    long long gen = atoll(store_val(res, 0, 0));
    tenant = store_json(res, 0, 1);
    params_json = json_pack("{s:I,s:O}", "generation", (json_int_t)gen, "spec", u->spec);
    rc = answer_with_job(c, w, JOB_TENANT_UPDATE, t.id, u->name, 0, NULL, params_json, tenant, out);
cleanup:
    PQclear(res);
    free(spec_text);
    json_decref(t.spec);
    json_decref(stored);
    json_decref(tenant);
    json_decref(params_json);
    return rc;
}

int store_tenant_update(struct store_pool *p, const char *name, long long generation,
                        const json_t *new_spec, struct store_write *w, json_t **out)
{
    struct tenant_update_ctx u = {name, generation, new_spec};
    return write_tx(p, w, tenant_update_fn, &u, out);
}

struct tenant_delete_ctx {
    const char *name;
    bool cascade;
};

static int tenant_delete_fn(struct store_conn *c, void *ctx, struct store_write *w, json_t **out)
{
    struct tenant_delete_ctx *d = ctx;
    struct locked_tenant t;
    json_t *tenant = NULL, *params_json = NULL;
    char idtext[24];
    PGresult *res = NULL;
    int rc;

    if ((rc = tenant_lock_live(c, d->name, w, &t)) != 0)
        goto cleanup;
    if (t.live_envs > 0 && !d->cascade) {
        rc = cap_error_set(CAP_ECONFLICT,
                           "tenant \"%s\" still has %lld environment%s; delete them first or "
                           "add ?cascade=true",
                           d->name, t.live_envs, t.live_envs == 1 ? "" : "s");
        goto cleanup;
    }
    ll_text(idtext, t.id);
    const char *params[1] = {idtext};
    if (d->cascade && (rc = store_exec(c, &st_envs_set_deleting, params, NULL)) != 0)
        goto cleanup;
    if ((rc = store_exec(c, &st_tenant_set_deleting, params, &res)) != 0)
        goto cleanup;
    tenant = store_json(res, 0, 0);
    params_json = json_pack("{s:I,s:O,s:s,s:b}", "generation", (json_int_t)t.generation, "spec",
                            t.spec, "previousState", t.state, "cascade", d->cascade);
    rc = answer_with_job(c, w, JOB_TENANT_DELETE, t.id, d->name, 0, NULL, params_json, tenant, out);
cleanup:
    PQclear(res);
    json_decref(t.spec);
    json_decref(tenant);
    json_decref(params_json);
    return rc;
}

int store_tenant_delete(struct store_pool *p, const char *name, bool cascade, struct store_write *w,
                        json_t **out)
{
    struct tenant_delete_ctx d = {name, cascade};
    return write_tx(p, w, tenant_delete_fn, &d, out);
}

/* ---- environments ---- */

static const struct store_stmt st_env_get = {
    "env_get",
    /* environments_live_name (the live one first, else the newest deleted) */
    "SELECT " SQL_ENV_JSON("e") " FROM environments e JOIN tenants t ON t.id = e.tenant_id "
                                "WHERE t.name = $1 AND e.name = $2 ORDER BY (e.deleted_at IS NULL) "
                                "DESC, e.id DESC LIMIT 1",
    2};
static const struct store_stmt st_env_spec = {
    "env_spec",
    "SELECT e.spec, e.generation FROM environments e JOIN tenants t ON t.id = e.tenant_id "
    "WHERE t.name = $1 AND e.name = $2 AND e.deleted_at IS NULL",
    2};
static const struct store_stmt st_env_specs = {
    "env_specs",
    /* environments_tenant */
    "SELECT coalesce(jsonb_agg(e.spec ORDER BY e.name), '[]'::jsonb) FROM environments e "
    "JOIN tenants t ON t.id = e.tenant_id WHERE t.name = $1 AND e.deleted_at IS NULL",
    1};
static const struct store_stmt st_env_list = {
    "env_list",
    /* environments_tenant, backwards */
    "SELECT " SQL_ENV_JSON(
        "e") ", e.id FROM environments e JOIN tenants t ON t.id = e.tenant_id "
             "WHERE t.name = $1 AND ($2::text IS NULL OR e.state = $2) "
             "AND ($3::bigint = 0 OR e.id < $3::bigint) ORDER BY e.id DESC LIMIT $4",
    4};
static const struct store_stmt st_env_insert = {
    "env_insert",
    "INSERT INTO environments (tenant_id, tenant, name, spec, expires_at) "
    "VALUES ($1, $2, $3, $4::jsonb, CASE WHEN $5::bigint IS NULL THEN NULL "
    "ELSE now() + $5::bigint * interval '1 millisecond' END) "
    "ON CONFLICT (tenant_id, name) WHERE deleted_at IS NULL DO NOTHING "
    "RETURNING id, " SQL_ENV_JSON("environments"),
    5};
static const struct store_stmt st_env_lock = {
    "env_lock",
    /* environments_live_name */
    "SELECT e.id, e.state, e.generation, e.spec, "
    "extract(epoch FROM (coalesce(greatest(e.expires_at, now()), now()) - now())) * 1000 "
    "FROM environments e WHERE e.tenant_id = $1 AND e.name = $2 AND e.deleted_at IS NULL "
    "FOR UPDATE",
    2};
static const struct store_stmt st_env_set_spec = {
    "env_set_spec",
    "UPDATE environments SET spec = $2::jsonb, generation = generation + 1, updated_at = now() "
    "WHERE id = $1 RETURNING generation, " SQL_ENV_JSON("environments"),
    2};
static const struct store_stmt st_env_set_deleting = {
    "env_set_deleting",
    "UPDATE environments SET state = 'deleting', updated_at = now() WHERE id = $1 "
    "RETURNING " SQL_ENV_JSON("environments"),
    1};
static const struct store_stmt st_env_extend = {
    "env_extend",
    "UPDATE environments SET expires_at = greatest(expires_at, now()) + "
    "$2::bigint * interval '1 millisecond', updated_at = now() WHERE id = $1 "
    "RETURNING " SQL_ENV_JSON("environments"),
    2};

int store_env_get(struct store_pool *p, const char *tenant, const char *name, json_t **out)
{
    const char *params[2] = {tenant, name};
    int rc = store_read_one(p, &st_env_get, params, out);
    if (rc == 0 && !*out)
        rc = cap_error_set(CAP_ENOTFOUND, "environment \"%s\" of tenant \"%s\" does not exist",
                           name, tenant);
    return rc;
}

int store_env_spec(struct store_pool *p, const char *tenant, const char *name, json_t **spec,
                   long long *generation)
{
    const char *params[2] = {tenant, name};
    PGresult *res = NULL;
    int rc = store_run(p, &st_env_spec, params, &res);
    *spec = NULL;
    if (rc)
        return rc;
    if (PQntuples(res) == 1) {
        *spec = store_json(res, 0, 0);
        *generation = atoll(store_val(res, 0, 1));
    }
    PQclear(res);
    if (!*spec)
        return cap_error_set(CAP_ENOTFOUND, "environment \"%s\" of tenant \"%s\" does not exist",
                             name, tenant);
    return 0;
}

int store_env_specs(struct store_pool *p, const char *tenant, json_t **out)
{
    const char *params[1] = {tenant};
    PGresult *res = NULL;
    int rc = store_run(p, &st_env_specs, params, &res);
    *out = NULL;
    if (rc)
        return rc;
    *out = store_json(res, 0, 0);
    PQclear(res);
    return *out ? 0 : cap_error_set(CAP_ERROR, "cannot decode stored environments");
}

int store_env_list(struct store_pool *p, const char *tenant, const char *state,
                   struct store_page *page, char **items)
{
    const char *params[4] = {tenant, state, NULL, NULL};
    return store_read_page(p, &st_env_list, params, page, items);
}

struct env_ctx {
    const char *tenant;
    const char *name;
    const json_t *spec;
    long long generation;
    long long ttl_ms;
};

static int ttl_of(const json_t *spec, long long *ms)
{
    const char *ttl = cap_json_get_str(spec, "ttl");
    if (!ttl)
        return 1;
    return cap_parse_duration_ms(ms, ttl);
}

static int env_create_fn(struct store_conn *c, void *ctx, struct store_write *w, json_t **out)
{
    struct env_ctx *e = ctx;
    struct locked_tenant t;
    json_t *env = NULL, *params_json = NULL;
    char *spec_text = NULL;
    char idtext[24], ttltext[24];
    long long ttl_ms = 0, quota;
    PGresult *res = NULL;
    int rc;

    if ((rc = tenant_lock(c, e->tenant, &t)) != 0)
        goto cleanup;
    if (strcmp(t.state, "ready") != 0) {
        rc = cap_error_set(CAP_ECONFLICT,
                           "tenant \"%s\" is %s; environments can be added once it is ready",
                           e->tenant, t.state);
        goto cleanup;
    }
    quota = json_integer_value(json_object_get(json_object_get(t.spec, "quota"), "environments"));
    if (t.live_envs >= quota) {
        rc = cap_error_set(CAP_ECONFLICT,
                           "tenant \"%s\" has %lld of its %lld environments (quota.environments); "
                           "delete one or raise the quota",
                           e->tenant, t.live_envs, quota);
        goto cleanup;
    }
    const char *name = cap_json_get_str(e->spec, "name");
    spec_text = dump(e->spec);
    ll_text(idtext, t.id);
    bool has_ttl = ttl_of(e->spec, &ttl_ms) == 0;
    ll_text(ttltext, ttl_ms);
    const char *params[5] = {idtext, e->tenant, name, spec_text, has_ttl ? ttltext : NULL};
    if ((rc = store_exec(c, &st_env_insert, params, &res)) != 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = cap_error_set(CAP_ECONFLICT, "environment \"%s\" of tenant \"%s\" already exists",
                           name, e->tenant);
        goto cleanup;
    }
    long long env_id = atoll(store_val(res, 0, 0));
    env = store_json(res, 0, 1);
    params_json = json_pack("{s:I,s:O}", "generation", (json_int_t)1, "spec", e->spec);
    rc =
        answer_with_job(c, w, JOB_ENV_CREATE, t.id, e->tenant, env_id, name, params_json, env, out);
cleanup:
    PQclear(res);
    free(spec_text);
    json_decref(t.spec);
    json_decref(env);
    json_decref(params_json);
    return rc;
}

int store_env_create(struct store_pool *p, const char *tenant, const json_t *spec,
                     struct store_write *w, json_t **out)
{
    struct env_ctx e = {tenant, NULL, spec, 0, 0};
    return write_tx(p, w, env_create_fn, &e, out);
}

struct locked_env {
    long long id;
    char state[16];
    long long generation;
    json_t *spec;
    long long remaining_ms; /* until expiresAt (0 when past or none) */
};

static int env_lock(struct store_conn *c, const struct locked_tenant *t, const char *tenant,
                    const char *name, struct locked_env *e)
{
    char idtext[24];
    PGresult *res = NULL;
    int rc;

    memset(e, 0, sizeof(*e));
    ll_text(idtext, t->id);
    const char *params[2] = {idtext, name};
    if ((rc = store_exec(c, &st_env_lock, params, &res)) != 0)
        return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return cap_error_set(CAP_ENOTFOUND, "environment \"%s\" of tenant \"%s\" does not exist",
                             name, tenant);
    }
    e->id = atoll(store_val(res, 0, 0));
    cap_strlcpy(e->state, store_val(res, 0, 1), sizeof(e->state));
    e->generation = atoll(store_val(res, 0, 2));
    e->spec = store_json(res, 0, 3);
    e->remaining_ms = (long long)strtod(store_val(res, 0, 4), NULL);
    PQclear(res);
    return e->spec ? 0 : cap_error_set(CAP_ERROR, "cannot decode a stored environment");
}

static bool env_gone(const char *state)
{
    return strcmp(state, "deleting") == 0 || strcmp(state, "deleted") == 0 ||
           strcmp(state, "expired") == 0;
}

/* Locks tenant and environment; the environment must not be going away. */
static int env_lock_both(struct store_conn *c, struct env_ctx *x, struct locked_tenant *t,
                         struct locked_env *e)
{
    int rc = tenant_lock(c, x->tenant, t);
    if (rc)
        return rc;
    if ((rc = env_lock(c, t, x->tenant, x->name, e)) != 0)
        return rc;
    if (env_gone(e->state))
        return cap_error_set(CAP_ECONFLICT, "environment \"%s\" is %s", x->name, e->state);
    return 0;
}

static int env_update_fn(struct store_conn *c, void *ctx, struct store_write *w, json_t **out)
{
    struct env_ctx *x = ctx;
    struct locked_tenant t;
    struct locked_env e;
    json_t *env = NULL, *params_json = NULL;
    char *spec_text = NULL;
    char idtext[24];
    PGresult *res = NULL;
    int rc;

    memset(&e, 0, sizeof(e));
    if ((rc = env_lock_both(c, x, &t, &e)) != 0)
        goto cleanup;
    if ((rc = check_if_match(w, e.generation, "the environment")) != 0)
        goto cleanup;
    if (e.generation != x->generation) {
        rc = cap_error_set(CAP_ERETRY, "the environment changed meanwhile");
        goto cleanup;
    }
    spec_text = dump(x->spec);
    ll_text(idtext, e.id);
    const char *params[2] = {idtext, spec_text};
    if ((rc = store_exec(c, &st_env_set_spec, params, &res)) != 0)
        goto cleanup;
    long long gen = atoll(store_val(res, 0, 0));
    env = store_json(res, 0, 1);
    params_json = json_pack("{s:I,s:O}", "generation", (json_int_t)gen, "spec", x->spec);
    rc = answer_with_job(c, w, JOB_ENV_UPDATE, t.id, x->tenant, e.id, x->name, params_json, env,
                         out);
cleanup:
    PQclear(res);
    free(spec_text);
    json_decref(t.spec);
    json_decref(e.spec);
    json_decref(env);
    json_decref(params_json);
    return rc;
}

int store_env_update(struct store_pool *p, const char *tenant, const char *name,
                     long long generation, const json_t *new_spec, struct store_write *w,
                     json_t **out)
{
    struct env_ctx x = {tenant, name, new_spec, generation, 0};
    return write_tx(p, w, env_update_fn, &x, out);
}

static int env_delete_fn(struct store_conn *c, void *ctx, struct store_write *w, json_t **out)
{
    struct env_ctx *x = ctx;
    struct locked_tenant t;
    struct locked_env e;
    json_t *env = NULL, *params_json = NULL;
    char idtext[24];
    PGresult *res = NULL;
    int rc;

    memset(&e, 0, sizeof(e));
    if ((rc = env_lock_both(c, x, &t, &e)) != 0)
        goto cleanup;
    if ((rc = check_if_match(w, e.generation, "the environment")) != 0)
        goto cleanup;
    ll_text(idtext, e.id);
    const char *params[1] = {idtext};
    if ((rc = store_exec(c, &st_env_set_deleting, params, &res)) != 0)
        goto cleanup;
    env = store_json(res, 0, 0);
    params_json = json_pack("{s:I,s:O,s:s}", "generation", (json_int_t)e.generation, "spec", e.spec,
                            "previousState", e.state);
    rc = answer_with_job(c, w, JOB_ENV_DELETE, t.id, x->tenant, e.id, x->name, params_json, env,
                         out);
cleanup:
    PQclear(res);
    json_decref(t.spec);
    json_decref(e.spec);
    json_decref(env);
    json_decref(params_json);
    return rc;
}

int store_env_delete(struct store_pool *p, const char *tenant, const char *name,
                     struct store_write *w, json_t **out)
{
    struct env_ctx x = {tenant, name, NULL, 0, 0};
    return write_tx(p, w, env_delete_fn, &x, out);
}

static int env_extend_fn(struct store_conn *c, void *ctx, struct store_write *w, json_t **out)
{
    struct env_ctx *x = ctx;
    struct locked_tenant t;
    struct locked_env e;
    char idtext[24], ttltext[24];
    PGresult *res = NULL;
    int rc;

    memset(&e, 0, sizeof(e));
    if ((rc = env_lock_both(c, x, &t, &e)) != 0)
        goto cleanup;
    if (strcmp(cap_json_get_str(e.spec, "type") ? cap_json_get_str(e.spec, "type") : "",
               "ephemeral") != 0) {
        rc = cap_error_set(CAP_ECONFLICT,
                           "environment \"%s\" is permanent; only ephemeral "
                           "environments can be extended",
                           x->name);
        goto cleanup;
    }
    if (e.remaining_ms + x->ttl_ms > MAX_LIFETIME_MS) {
        rc = cap_error_set_field(CAP_EINVALID, "ttl",
                                 "the environment would expire more than 720h from now (it has "
                                 "%lldh left)",
                                 e.remaining_ms / 3600000);
        goto cleanup;
    }
    ll_text(idtext, e.id);
    ll_text(ttltext, x->ttl_ms);
    const char *params[2] = {idtext, ttltext};
    if ((rc = store_exec(c, &st_env_extend, params, &res)) != 0)
        goto cleanup;
    *out = json_pack("{s:o}", "environment", store_json(res, 0, 0));
    w->status = 200;
    snprintf(w->location, sizeof(w->location), "/api/v1/tenants/%s/environments/%s", x->tenant,
             x->name);
cleanup:
    PQclear(res);
    json_decref(t.spec);
    json_decref(e.spec);
    return rc;
}

int store_env_extend(struct store_pool *p, const char *tenant, const char *name, long long ttl_ms,
                     struct store_write *w, json_t **out)
{
    struct env_ctx x = {tenant, name, NULL, 0, ttl_ms};
    return write_tx(p, w, env_extend_fn, &x, out);
}

/* ---- jobs (API side) ---- */

static const struct store_stmt st_job_get = {
    "job_get", "SELECT " SQL_JOB_JSON("j") " FROM jobs j WHERE j.id = $1::uuid", 1};
static const struct store_stmt st_job_list = {
    "job_list",
    /* jobs_seq_key backwards; jobs_tenant / jobs_state when filtered */
    "SELECT " SQL_JOB_JSON(
        "j") ", j.seq FROM jobs j "
             "WHERE ($1::text IS NULL OR j.tenant = $1) AND ($2::text IS NULL OR j.state = $2) "
             "AND ($3::text IS NULL OR j.kind = $3) AND ($4::bigint = 0 OR j.seq < $4::bigint) "
             "ORDER BY j.seq DESC LIMIT $5",
    5};
static const struct store_stmt st_job_lock = {
    "job_lock", "SELECT state, steps FROM jobs WHERE id = $1::uuid FOR UPDATE", 1};
static const struct store_stmt st_job_cancel_queued = {
    "job_cancel_queued",
    "UPDATE jobs SET state = 'cancelled', finished_at = now(), lease_owner = NULL, "
    "steps = (SELECT jsonb_agg(CASE WHEN s ->> 'state' IN ('pending', 'failed') "
    "THEN s || '{\"state\": \"cancelled\"}'::jsonb ELSE s END ORDER BY n) "
    "FROM jsonb_array_elements(steps) WITH ORDINALITY AS x(s, n)) "
    "WHERE id = $1::uuid RETURNING " SQL_JOB_JSON("jobs"),
    1};
static const struct store_stmt st_job_cancel_running = {
    "job_cancel_running",
    "UPDATE jobs SET cancel_requested = true WHERE id = $1::uuid RETURNING " SQL_JOB_JSON("jobs"),
    1};
static const struct store_stmt st_job_retry = {
    "job_retry",
    "UPDATE jobs SET state = 'queued', attempt = 0, run_after = now(), error = NULL, "
    "finished_at = NULL, cancel_requested = false, lease_owner = NULL, "
    "steps = (SELECT jsonb_agg(CASE WHEN s ->> 'state' <> 'succeeded' "
    "THEN s || '{\"state\": \"pending\", \"startedAt\": null, \"finishedAt\": null}'::jsonb "
    "ELSE s END ORDER BY n) FROM jsonb_array_elements(steps) WITH ORDINALITY AS x(s, n)) "
    "WHERE id = $1::uuid RETURNING " SQL_JOB_JSON("jobs") ", tenant",
    1};
static const struct store_stmt st_job_notify = {"job_notify",
                                                "SELECT pg_notify('capstan_jobs', $1)", 1};
static const struct store_stmt st_job_events = {
    "job_events",
    /* job_events_pkey */
    "SELECT e.seq, e.type, e.data, " SQL_TS(
        "e.created_at") ", j.state "
                        "FROM jobs j LEFT JOIN job_events e ON e.job_id = j.id AND e.seq > $2::int "
                        "WHERE j.id = $1::uuid ORDER BY e.seq LIMIT $3",
    3};

int store_job_get(struct store_pool *p, const char *id, json_t **out)
{
    const char *params[1] = {id};
    int rc = store_read_one(p, &st_job_get, params, out);
    if (rc == 0 && !*out)
        rc = cap_error_set(CAP_ENOTFOUND, "job \"%s\" does not exist", id);
    return rc;
}

int store_job_list(struct store_pool *p, const char *tenant, const char *state, const char *kind,
                   struct store_page *page, char **items)
{
    const char *params[5] = {tenant, state, kind, NULL, NULL};
    return store_read_page(p, &st_job_list, params, page, items);
}

static int job_lock(struct store_conn *c, const char *id, char state[16])
{
    const char *params[1] = {id};
    PGresult *res = NULL;
    int rc = store_exec(c, &st_job_lock, params, &res);
    if (rc)
        return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return cap_error_set(CAP_ENOTFOUND, "job \"%s\" does not exist", id);
    }
    cap_strlcpy(state, store_val(res, 0, 0), 16);
    PQclear(res);
    return 0;
}

static int job_cancel_fn(struct store_conn *c, void *ctx, struct store_write *w, json_t **out)
{
    const char *id = ctx;
    char state[16];
    PGresult *res = NULL;
    const char *params[1] = {id};
    int rc;

    if ((rc = job_lock(c, id, state)) != 0)
        return rc;
    if (strcmp(state, "queued") == 0) {
        if ((rc = store_exec(c, &st_job_cancel_queued, params, &res)) != 0)
            return rc;
        json_t *ev = json_pack("{s:s}", "state", "cancelled");
        rc = store_job_event(c, id, "state", ev);
        json_decref(ev);
        if (rc == 0)
            rc = store_job_apply_outcome(c, id, "cancelled", NULL);
    } else if (strcmp(state, "running") == 0) {
        if ((rc = store_exec(c, &st_job_cancel_running, params, &res)) != 0)
            return rc;
        json_t *ev = json_pack("{s:s,s:s}", "level", "info", "message",
                               "cancel requested; the job stops at the next step boundary");
        rc = store_job_event(c, id, "log", ev);
        json_decref(ev);
    } else {
        return cap_error_set(CAP_ECONFLICT, "job \"%s\" is already %s", id, state);
    }
    if (rc == 0) {
        *out = json_pack("{s:o}", "job", store_json(res, 0, 0));
        w->status = 202;
        snprintf(w->location, sizeof(w->location), "/api/v1/jobs/%s", id);
    }
    PQclear(res);
    return rc;
}

int store_job_cancel(struct store_pool *p, const char *id, struct store_write *w, json_t **out)
{
    return write_tx(p, w, job_cancel_fn, (void *)id, out);
}

static int job_retry_fn(struct store_conn *c, void *ctx, struct store_write *w, json_t **out)
{
    const char *id = ctx;
    char state[16];
    PGresult *res = NULL;
    const char *params[1] = {id};
    int rc;

    if ((rc = job_lock(c, id, state)) != 0)
        return rc;
    if (strcmp(state, "failed") != 0)
        return cap_error_set(CAP_ECONFLICT, "job \"%s\" is %s; only failed jobs can be retried", id,
                             state);
    if ((rc = store_exec(c, &st_job_retry, params, &res)) != 0)
        return rc;
    json_t *ev = json_pack("{s:s,s:s}", "state", "queued", "reason", "retry requested");
    rc = store_job_event(c, id, "state", ev);
    json_decref(ev);
    const char *np[1] = {store_val(res, 0, 1)};
    if (rc == 0)
        rc = store_exec(c, &st_job_notify, np, NULL);
    if (rc == 0) {
        *out = json_pack("{s:o}", "job", store_json(res, 0, 0));
        w->status = 202;
        snprintf(w->location, sizeof(w->location), "/api/v1/jobs/%s", id);
    }
    PQclear(res);
    return rc;
}

int store_job_retry(struct store_pool *p, const char *id, struct store_write *w, json_t **out)
{
    return write_tx(p, w, job_retry_fn, (void *)id, out);
}

int store_job_events(struct store_conn *c, const char *id, long long after, int limit,
                     json_t **events, char **state)
{
    char a[24], l[24];
    PGresult *res = NULL;
    int rc;

    ll_text(a, after);
    ll_text(l, limit);
    const char *params[3] = {id, a, l};
    *events = NULL;
    *state = NULL;
    if ((rc = store_exec(c, &st_job_events, params, &res)) != 0)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return cap_error_set(CAP_ENOTFOUND, "job \"%s\" does not exist", id);
    }
    *events = json_array();
    *state = strdup(store_val(res, 0, 4));
    for (int i = 0; i < PQntuples(res); i++) {
        if (!store_val(res, i, 0))
            continue; /* the job has no event after `after` */
        json_array_append_new(
            *events, json_pack("{s:I,s:s,s:o,s:s}", "seq", (json_int_t)atoll(store_val(res, i, 0)),
                               "type", store_val(res, i, 1), "data", store_json(res, i, 2), "time",
                               store_val(res, i, 3)));
    }
    PQclear(res);
    return 0;
}

/* ---- written by job steps ---- */

static const struct store_stmt st_tenant_set_repo = {
    "tenant_set_repo",
    "UPDATE tenants SET platform_repository = $2, updated_at = now() WHERE id = $1", 2};
static const struct store_stmt st_env_set_phase = {
    "env_set_phase",
    "UPDATE environments SET cluster_phase = $2, updated_at = now() "
    "WHERE id = $1 AND cluster_phase IS DISTINCT FROM $2",
    2};
static const struct store_stmt st_env_status = {
    "env_status", "SELECT state, generation FROM environments WHERE id = $1", 1};

int store_tenant_set_platform_repo(struct store_pool *p, long long tenant_id, const char *url)
{
    char id[24];
    PGresult *res = NULL;
    ll_text(id, tenant_id);
    const char *params[2] = {id, url};
    int rc = store_run(p, &st_tenant_set_repo, params, &res);
    PQclear(res);
    return rc;
}

int store_env_set_phase(struct store_pool *p, long long env_id, const char *phase)
{
    char id[24];
    PGresult *res = NULL;
    ll_text(id, env_id);
    const char *params[2] = {id, phase};
    int rc = store_run(p, &st_env_set_phase, params, &res);
    PQclear(res);
    return rc;
}

int store_env_status(struct store_pool *p, long long env_id, char state[16], long long *generation)
{
    char id[24];
    PGresult *res = NULL;
    ll_text(id, env_id);
    const char *params[1] = {id};
    int rc = store_run(p, &st_env_status, params, &res);
    if (rc)
        return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return cap_error_set(CAP_ENOTFOUND, "the environment no longer exists");
    }
    cap_strlcpy(state, store_val(res, 0, 0), 16);
    *generation = atoll(store_val(res, 0, 1));
    PQclear(res);
    return 0;
}
