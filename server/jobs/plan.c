/* capstan: job plans (see plan.h). */
#include "jobs/plan.h"

#include "util/error.h"
#include "util/json.h"

#include <stdio.h>
#include <string.h>

/* Files of the tenant folder that rendering may produce; the ones a render leaves out are
 * cleared, so the folder holds exactly what the tenant needs now. */
static const char *const tenant_files[] = {"namespace.yaml",       "rbac.yaml",
                                           "quota.yaml",           "network-policy.yaml",
                                           "platform-source.yaml", NULL};

int jobs_path_tenant(char *buf, size_t size, const char *tenant)
{
    int n = snprintf(buf, size, "tenants/%s", tenant);
    return n > 0 && (size_t)n < size ? 0 : cap_error_set(CAP_EINVALID, "path too long");
}

int jobs_path_env(char *buf, size_t size, const char *tenant, const char *env)
{
    int n = snprintf(buf, size, "tenants/%s/environments/%s", tenant, env);
    return n > 0 && (size_t)n < size ? 0 : cap_error_set(CAP_EINVALID, "path too long");
}

int jobs_plan_make(struct jobs_plan *out, enum job_kind kind, const json_t *tenant,
                   const json_t *env, const struct render_options *ro)
{
    const char *t = cap_json_get_str(tenant, "name");
    const char *e = env ? cap_json_get_str(env, "name") : NULL;
    char path[256];
    int rc = 0;

    out->removes = json_array();
    out->clears = json_array();
    if (!t || (jobs_kind_is_env(kind) && !e))
        return cap_error_set(CAP_EINVALID, "the job names no tenant or environment");
    switch (kind) {
    case JOB_TENANT_CREATE:
    case JOB_TENANT_UPDATE:
        if ((rc = render_tenant(&out->files, ro, tenant)) != 0)
            return rc;
        for (const char *const *f = tenant_files; *f; f++) {
            snprintf(path, sizeof(path), "tenants/%s/%s", t, *f);
            if (!render_files_find(&out->files, path))
                json_array_append_new(out->clears, json_string(path));
        }
        return 0;
    case JOB_TENANT_DELETE:
        if ((rc = jobs_path_tenant(path, sizeof(path), t)) != 0)
            return rc;
        json_array_append_new(out->removes, json_string(path));
        return 0;
    case JOB_ENV_CREATE:
    case JOB_ENV_UPDATE:
        if ((rc = render_environment(&out->files, ro, tenant, env)) != 0)
            return rc;
        if ((rc = jobs_path_env(path, sizeof(path), t, e)) != 0)
            return rc;
        json_array_append_new(out->clears, json_string(path));
        return 0;
    case JOB_ENV_DELETE:
    case JOB_ENV_EXPIRE:
        if ((rc = jobs_path_env(path, sizeof(path), t, e)) != 0)
            return rc;
        json_array_append_new(out->removes, json_string(path));
        return 0;
    default:
        return cap_error_set(CAP_EINVALID, "unknown job kind");
    }
}

void jobs_plan_free(struct jobs_plan *p)
{
    if (!p)
        return;
    render_files_free(&p->files);
    json_decref(p->removes);
    json_decref(p->clears);
    p->removes = NULL;
    p->clears = NULL;
}

static json_t *files_json(const struct render_files *f)
{
    json_t *a = json_array();
    for (size_t i = 0; i < f->n; i++)
        json_array_append_new(a, json_pack("{s:s,s:s%}", "path", f->items[i].path, "content",
                                           f->items[i].content, f->items[i].len));
    return a;
}

json_t *jobs_plan_to_json(const struct jobs_plan *p)
{
    return json_pack("{s:o,s:O,s:O}", "put", files_json(&p->files), "delete", p->removes, "clear",
                     p->clears);
}

json_t *jobs_plan_dry_run(const struct jobs_plan *p)
{
    return json_pack("{s:o,s:O}", "files", files_json(&p->files), "deleted", p->removes);
}
