/* capstan: /api/v1/tenants/{tenant}/environments: create, list, read, change, extend and
 * delete environments. */
#include "api/api.h"
#include "api/common.h"
#include "app.h"
#include "jobs/plan.h"
#include "model/model.h"
#include "store/resources.h"
#include "util/error.h"
#include "util/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const env_states[] = {"pending",  "provisioning", "ready",   "failed",
                                         "deleting", "deleted",      "expired", NULL};

/* Answers a dry run of a job of kind on tenant/env (env may be NULL). */
static int dry_run(struct http_request *req, enum job_kind kind, const json_t *tenant,
                   const json_t *env)
{
    struct jobs_plan plan = {0};
    int rc = jobs_plan_make(&plan, kind, tenant, env, &capstan_app->render);
    if (rc == 0)
        rc = http_reply_json(req, HTTP_OK, jobs_plan_dry_run(&plan));
    else if (rc == CAP_EINVALID)
        cap_error_wrap("cannot render");
    jobs_plan_free(&plan);
    return rc;
}

/* The tenant's spec, which must exist; *tenant is the API object for rendering. */
static int load_tenant(const char *name, json_t **spec, json_t **tenant)
{
    long long gen;
    int rc = store_tenant_spec(capstan_app->pool, name, spec, &gen);
    if (rc)
        return rc;
    return store_tenant_get(capstan_app->pool, name, tenant);
}

int api_envs_create(struct http_request *req)
{
    static const char *const q[] = {"dryRun", NULL};
    const char *tname;
    json_t *tspec = NULL, *tenant = NULL, *spec = NULL, *errors = json_array(), *body = NULL;
    struct store_write w;
    bool dry;
    int rc;

    if ((rc = api_tenant_param(req, &tname)) != 0 || (rc = http_query_only(req, q)) != 0 ||
        (rc = api_flag(req, "dryRun", &dry)) != 0)
        goto cleanup;
    if ((rc = load_tenant(tname, &tspec, &tenant)) != 0)
        goto cleanup;
    if (model_env_create(&spec, req->json, tspec, &capstan_app->defaults, errors) != 0) {
        rc = api_invalid(req, errors);
        errors = NULL;
        goto cleanup;
    }
    if (dry) {
        json_object_set_new(spec, "tenant", json_string(tname));
        rc = dry_run(req, JOB_ENV_CREATE, tenant, spec);
        goto cleanup;
    }
    if ((rc = api_write_init(req, &w)) != 0)
        goto cleanup;
    if ((rc = store_env_create(capstan_app->pool, tname, spec, &w, &body)) != 0)
        goto cleanup;
    rc = api_write_reply(req, &w, body);
    body = NULL;
cleanup:
    json_decref(tspec);
    json_decref(tenant);
    json_decref(spec);
    json_decref(errors);
    json_decref(body);
    return rc;
}

int api_envs_list(struct http_request *req)
{
    static const char *const q[] = {"state", "limit", "cursor", NULL};
    struct store_page page;
    const char *tname, *state;
    json_t *t = NULL;
    char *items = NULL;
    int rc;

    if ((rc = api_tenant_param(req, &tname)) != 0 || (rc = http_query_only(req, q)) != 0 ||
        (rc = api_enum_query(req, "state", env_states, &state)) != 0 ||
        (rc = api_page(req, 'e', &page)) != 0)
        return rc;
    if ((rc = store_tenant_get(capstan_app->pool, tname, &t)) != 0)
        return rc;
    json_decref(t);
    if ((rc = store_env_list(capstan_app->pool, tname, state, &page, &items)) != 0)
        return rc;
    rc = api_list_reply(req, 'e', &page, items);
    free(items);
    return rc;
}

int api_envs_get(struct http_request *req)
{
    const char *tname, *ename;
    json_t *e = NULL;
    int rc;

    if ((rc = api_tenant_param(req, &tname)) != 0 || (rc = api_env_param(req, &ename)) != 0)
        return rc;
    if ((rc = store_env_get(capstan_app->pool, tname, ename, &e)) != 0)
        return rc;
    api_etag(req, e);
    return http_reply_json(req, HTTP_OK, e);
}

struct env_patch {
    const char *tenant, *env;
    json_t *tenant_spec, *tenant_obj; /* for validation and rendering */
};

static int env_load(void *ctx, json_t **spec, long long *generation)
{
    const struct env_patch *p = ctx;
    return store_env_spec(capstan_app->pool, p->tenant, p->env, spec, generation);
}

static int env_apply(void *ctx, const json_t *spec, const json_t *patch, json_t **new_spec,
                     json_t *errors)
{
    const struct env_patch *p = ctx;
    return model_env_patch(new_spec, spec, patch, p->tenant_spec, errors);
}

static int env_dry_run(void *ctx, struct http_request *req, json_t *new_spec)
{
    const struct env_patch *p = ctx;
    json_object_set_new(new_spec, "tenant", json_string(p->tenant));
    return dry_run(req, JOB_ENV_UPDATE, p->tenant_obj, new_spec);
}

static int env_store(void *ctx, long long generation, const json_t *new_spec, struct store_write *w,
                     json_t **body)
{
    const struct env_patch *p = ctx;
    return store_env_update(capstan_app->pool, p->tenant, p->env, generation, new_spec, w, body);
}

int api_envs_patch(struct http_request *req)
{
    static const char *const q[] = {"dryRun", NULL};
    static const struct api_patch_ops ops = {"environment", env_load, env_apply, env_dry_run,
                                             env_store};
    struct env_patch p = {0};
    bool dry;
    int rc;

    if ((rc = api_tenant_param(req, &p.tenant)) != 0 || (rc = api_env_param(req, &p.env)) != 0 ||
        (rc = http_query_only(req, q)) != 0 || (rc = api_flag(req, "dryRun", &dry)) != 0)
        return rc;
    if ((rc = load_tenant(p.tenant, &p.tenant_spec, &p.tenant_obj)) == 0)
        rc = api_patch(req, &ops, &p, dry);
    json_decref(p.tenant_spec);
    json_decref(p.tenant_obj);
    return rc;
}

int api_envs_delete(struct http_request *req)
{
    static const char *const q[] = {"dryRun", NULL};
    const char *tname, *ename;
    json_t *body = NULL;
    struct store_write w;
    bool dry;
    int rc;

    if ((rc = api_tenant_param(req, &tname)) != 0 || (rc = api_env_param(req, &ename)) != 0 ||
        (rc = http_query_only(req, q)) != 0 || (rc = api_flag(req, "dryRun", &dry)) != 0 ||
        (rc = api_write_init(req, &w)) != 0)
        return rc;
    if (dry) {
        json_t *e = NULL;
        if ((rc = store_env_get(capstan_app->pool, tname, ename, &e)) != 0)
            return rc;
        const char *state = cap_json_get_str(e, "state");
        if (strcmp(state, "deleting") == 0 || strcmp(state, "deleted") == 0 ||
            strcmp(state, "expired") == 0)
            rc = cap_error_set(CAP_ECONFLICT, "environment \"%s\" is %s", ename, state);
        json_decref(e);
        if (rc)
            return rc;
        char path[160];
        jobs_path_env(path, sizeof(path), tname, ename);
        return http_reply_json(req, HTTP_OK, json_pack("{s:[],s:[s]}", "files", "deleted", path));
    }
    if ((rc = store_env_delete(capstan_app->pool, tname, ename, &w, &body)) != 0)
        return rc;
    return api_write_reply(req, &w, body);
}

int api_envs_extend(struct http_request *req)
{
    const char *tname, *ename;
    json_t *errors = json_array(), *body = NULL;
    struct store_write w;
    long long ttl_ms = 0;
    int rc;

    static const char *const q[] = {"dryRun", NULL};
    bool dry;

    if ((rc = api_tenant_param(req, &tname)) != 0 || (rc = api_env_param(req, &ename)) != 0 ||
        (rc = http_query_only(req, q)) != 0 || (rc = api_flag(req, "dryRun", &dry)) != 0)
        goto cleanup;
    if (model_env_extend(&ttl_ms, req->json, errors) != 0) {
        rc = api_invalid(req, errors);
        errors = NULL;
        goto cleanup;
    }
    if (dry) {
        /* an extension changes no file in the fleet repository */
        json_t *e = NULL;
        if ((rc = store_env_get(capstan_app->pool, tname, ename, &e)) != 0)
            goto cleanup;
        const char *type = cap_json_get_str(e, "type");
        if (!type || strcmp(type, "ephemeral") != 0)
            rc = cap_error_set(CAP_ECONFLICT,
                               "environment \"%s\" is permanent; only ephemeral environments can "
                               "be extended",
                               ename);
        json_decref(e);
        if (rc == 0)
            rc = http_reply_json(req, HTTP_OK, json_pack("{s:[],s:[]}", "files", "deleted"));
        goto cleanup;
    }
    if ((rc = api_write_init(req, &w)) != 0)
        goto cleanup;
    if ((rc = store_env_extend(capstan_app->pool, tname, ename, ttl_ms, &w, &body)) != 0)
        goto cleanup;
    rc = api_write_reply(req, &w, body);
    body = NULL;
cleanup:
    json_decref(errors);
    json_decref(body);
    return rc;
}
