/* capstan: /api/v1/tenants: create, list, read, change and delete tenants. */
#include "api/api.h"
#include "api/auth.h"
#include "api/common.h"
#include "app.h"
#include "model/model.h"
#include "render/render.h"
#include "store/resources.h"
#include "util/error.h"
#include "util/json.h"

#include <stdlib.h>
#include <string.h>

static const char *const tenant_states[] = {"pending",  "provisioning", "ready", "failed",
                                            "deleting", "deleted",      NULL};

/* Answers a dry run: the tree as it would be committed for tenant and its environments. */
static int dry_run_tree(struct http_request *req, const json_t *spec, const json_t *envs)
{
    struct render_files files = {0};
    const json_t *list[RENDER_MAX_ENVIRONMENTS];
    json_t *tenant = json_deep_copy(spec);
    size_t n = 0, i;
    json_t *e;
    int rc;

    if (!json_object_get(tenant, "platformRepository"))
        json_object_set_new(tenant, "platformRepository", json_null());
    json_array_foreach(envs, i, e) if (n < RENDER_MAX_ENVIRONMENTS) list[n++] = e;
    rc = render_tree(&files, &capstan_app->render, tenant, list, n);
    json_decref(tenant);
    if (rc) {
        render_files_free(&files);
        return rc == CAP_EINVALID ? cap_error_wrap("cannot render") : rc;
    }
    json_t *arr = json_array();
    for (i = 0; i < files.n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s%}", "path", files.items[i].path, "content",
                                             files.items[i].content, files.items[i].len));
    render_files_free(&files);
    return http_reply_json(req, HTTP_OK, json_pack("{s:o,s:[]}", "files", arr, "deleted"));
}

int api_tenants_create(struct http_request *req)
{
    static const char *const q[] = {"dryRun", NULL};
    json_t *errors = json_array(), *spec = NULL, *body = NULL;
    struct store_write w;
    bool dry;
    int rc;

    if ((rc = http_query_only(req, q)) != 0 || (rc = api_flag(req, "dryRun", &dry)) != 0)
        goto cleanup;
    if (model_tenant_create(&spec, req->json, errors) != 0) {
        rc = api_invalid(req, errors);
        errors = NULL;
        goto cleanup;
    }
    if (dry) {
        json_t *none = json_array();
        rc = dry_run_tree(req, spec, none);
        json_decref(none);
        goto cleanup;
    }
    if ((rc = api_write_init(req, &w)) != 0)
        goto cleanup;
    if ((rc = store_tenant_create(capstan_app->pool, spec, &w, &body)) != 0)
        goto cleanup;
    rc = api_write_reply(req, &w, body);
    body = NULL;
cleanup:
    json_decref(errors);
    json_decref(spec);
    json_decref(body);
    return rc;
}

struct label_filter {
    json_t *labels;
    int count;
};

static int collect_label(void *ctx, const char *key, const char *value)
{
    struct label_filter *f = ctx;
    char k[320];
    const char *eq;
    if (strcmp(key, "label") != 0)
        return 0;
    eq = strchr(value, '=');
    if (!eq || (size_t)(eq - value) >= sizeof(k) || ++f->count > 16)
        return cap_error_set_field(CAP_EMALFORMED, "label",
                                   "label filters are key=value (at most 16)");
    memcpy(k, value, (size_t)(eq - value));
    k[eq - value] = '\0';
    if (!model_is_label_key(k) || !model_is_label_value(eq + 1))
        return cap_error_set_field(CAP_EMALFORMED, "label", "\"%.100s\" is not a label key=value",
                                   value);
    json_object_set_new(f->labels, k, json_string(eq + 1));
    return 0;
}

/* The list a tenant role sees: its own tenant, if it passes the filters. */
static int own_tenant_list(struct http_request *req, const char *own, const char *state,
                           const json_t *labels, struct store_page *page)
{
    json_t *t = NULL, *items = json_array();
    const char *key;
    json_t *v;
    int rc = page->after ? 0 : store_tenant_get(capstan_app->pool, own, &t);

    if (rc == CAP_ENOTFOUND)
        rc = 0;
    if (rc) {
        json_decref(items);
        return rc;
    }
    bool match = t && (!state || strcmp(cap_json_get_str(t, "state"), state) == 0);
    json_object_foreach((json_t *)labels, key, v)
    {
        match = match && json_equal(json_object_get(json_object_get(t, "labels"), key), v);
    }
    if (match)
        json_array_append(items, t);
    json_decref(t);
    page->next = 0;
    char *text = json_dumps(items, JSON_COMPACT);
    json_decref(items);
    if (!text)
        return cap_error_set(CAP_ERROR, "out of memory");
    rc = api_list_reply(req, 't', page, text);
    free(text);
    return rc;
}

int api_tenants_list(struct http_request *req)
{
    static const char *const q[] = {"state", "label", "limit", "cursor", NULL};
    struct label_filter f = {json_object(), 0};
    struct store_page page;
    const char *state;
    char *items = NULL;
    int rc;

    if ((rc = http_query_only(req, q)) != 0 ||
        (rc = api_enum_query(req, "state", tenant_states, &state)) != 0 ||
        (rc = api_page(req, 't', &page)) != 0 || (rc = http_query_each(req, collect_label, &f)))
        goto cleanup;
    if (api_auth_list_scope(req)) {
        rc = own_tenant_list(req, api_auth_list_scope(req), state, f.labels, &page);
        goto cleanup;
    }
    if ((rc = store_tenant_list(capstan_app->pool, state, f.labels, &page, &items)) != 0)
        goto cleanup;
    rc = api_list_reply(req, 't', &page, items);
cleanup:
    free(items);
    json_decref(f.labels);
    return rc;
}

int api_tenants_get(struct http_request *req)
{
    const char *name;
    json_t *t = NULL;
    int rc;

    if ((rc = api_tenant_param(req, &name)) != 0)
        return rc;
    if ((rc = store_tenant_get(capstan_app->pool, name, &t)) != 0)
        return rc;
    api_etag(req, t);
    return http_reply_json(req, HTTP_OK, t);
}

static int tenant_load(void *ctx, json_t **spec, long long *generation)
{
    return store_tenant_spec(capstan_app->pool, ctx, spec, generation);
}

static int tenant_apply(void *ctx, const json_t *spec, const json_t *patch, json_t **new_spec,
                        json_t *errors)
{
    (void)ctx;
    return model_tenant_patch(new_spec, spec, patch, errors);
}

static int tenant_dry_run(void *ctx, struct http_request *req, json_t *new_spec)
{
    json_t *envs = NULL;
    int rc = store_env_specs(capstan_app->pool, ctx, &envs);
    if (rc == 0)
        rc = dry_run_tree(req, new_spec, envs);
    json_decref(envs);
    return rc;
}

static int tenant_store(void *ctx, long long generation, const json_t *new_spec,
                        struct store_write *w, json_t **body)
{
    return store_tenant_update(capstan_app->pool, ctx, generation, new_spec, w, body);
}

int api_tenants_patch(struct http_request *req)
{
    static const char *const q[] = {"dryRun", NULL};
    static const struct api_patch_ops ops = {"tenant", tenant_load, tenant_apply, tenant_dry_run,
                                             tenant_store};
    const char *name;
    bool dry;
    int rc;

    if ((rc = api_tenant_param(req, &name)) != 0 || (rc = http_query_only(req, q)) != 0 ||
        (rc = api_flag(req, "dryRun", &dry)) != 0)
        return rc;
    return api_patch(req, &ops, (void *)name, dry);
}

int api_tenants_delete(struct http_request *req)
{
    static const char *const q[] = {"cascade", "dryRun", NULL};
    const char *name;
    json_t *body = NULL, *t = NULL;
    struct store_write w;
    bool cascade, dry;
    int rc;

    if ((rc = api_tenant_param(req, &name)) != 0 || (rc = http_query_only(req, q)) != 0 ||
        (rc = api_flag(req, "cascade", &cascade)) != 0 ||
        (rc = api_flag(req, "dryRun", &dry)) != 0 || (rc = api_write_init(req, &w)) != 0)
        return rc;
    if (dry) {
        json_t *envs = NULL;
        if ((rc = store_tenant_get(capstan_app->pool, name, &t)) != 0)
            return rc;
        const char *state = cap_json_get_str(t, "state");
        bool gone = strcmp(state, "deleting") == 0 || strcmp(state, "deleted") == 0;
        rc = gone ? cap_error_set(CAP_ECONFLICT, "tenant \"%s\" is already %s", name, state)
                  : store_env_specs(capstan_app->pool, name, &envs);
        json_decref(t);
        if (rc == 0 && json_array_size(envs) > 0 && !cascade)
            rc = cap_error_set(CAP_ECONFLICT,
                               "tenant \"%s\" still has %zu environments; delete them first or "
                               "add ?cascade=true",
                               name, json_array_size(envs));
        json_decref(envs);
        if (rc)
            return rc;
        char path[128];
        snprintf(path, sizeof(path), "tenants/%s", name);
        return http_reply_json(req, HTTP_OK, json_pack("{s:[],s:[s]}", "files", "deleted", path));
    }
    if ((rc = store_tenant_delete(capstan_app->pool, name, cascade, &w, &body)) != 0)
        return rc;
    return api_write_reply(req, &w, body);
}
