/* capstan: the steps of capstan's jobs (see steps.h). Every step is idempotent: running it
 * again (a retry, a crash in the middle) gives the same files and at most one commit. */
#include "jobs/steps.h"

#include "jobs/plan.h"
#include "log/log.h"
#include "store/resources.h"
#include "util/error.h"
#include "util/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int jobs_subjects(struct store_pool *pool, const struct store_job *job, json_t **tenant,
                  json_t **env)
{
    const json_t *spec = json_object_get(job->params, "spec");
    json_t *current = NULL;
    int rc;

    *tenant = NULL;
    *env = NULL;
    if ((rc = store_tenant_get(pool, job->tenant, &current)) != 0)
        return rc;
    if (jobs_kind_is_env(job->kind)) {
        *tenant = current;
        *env = json_deep_copy(spec);
        json_object_set_new(*env, "tenant", json_string(job->tenant));
    } else {
        /* the snapshot says what the user asked for at this generation */
        *tenant = json_deep_copy(spec);
        json_object_set(*tenant, "platformRepository",
                        json_object_get(current, "platformRepository"));
        json_decref(current);
    }
    if (!*tenant || (jobs_kind_is_env(job->kind) && !*env)) {
        json_decref(*tenant);
        json_decref(*env);
        *tenant = *env = NULL;
        return cap_error_set(CAP_ERROR, "the job's snapshot cannot be read");
    }
    return 0;
}

static int step_render(struct jobs_runtime *rt, struct store_job *job, struct jobs_step_out *out)
{
    struct jobs_plan plan = {0};
    json_t *tenant = NULL, *env = NULL, *rendered = NULL;
    int rc;

    if ((rc = jobs_subjects(rt->pool, job, &tenant, &env)) != 0)
        goto cleanup;
    if ((rc = jobs_plan_make(&plan, job->kind, tenant, env, rt->render)) != 0) {
        /* invalid input or templates: retrying cannot help */
        rc = CAP_EINVALID;
        goto cleanup;
    }
    rendered = jobs_plan_to_json(&plan);
    if ((rc = store_job_set_rendered(rt->pool, job, rt->instance, rendered)) != 0)
        goto cleanup;
    json_decref(job->rendered);
    job->rendered = json_incref(rendered);
    snprintf(out->message, sizeof(out->message), "%zu files to write, %zu paths to remove",
             plan.files.n, json_array_size(plan.removes));
cleanup:
    json_decref(rendered);
    json_decref(tenant);
    json_decref(env);
    jobs_plan_free(&plan);
    return rc;
}

/* Turns a stored plan into GitOps operations (borrowing strings from rendered). */
static int plan_ops(const json_t *rendered, struct gitops_op **out, size_t *n)
{
    json_t *put = json_object_get(rendered, "put");
    json_t *del = json_object_get(rendered, "delete");
    json_t *clear = json_object_get(rendered, "clear");
    size_t total = json_array_size(put) + json_array_size(del) + json_array_size(clear), i;
    json_t *v;
    struct gitops_op *ops;

    *n = 0;
    if (!json_is_array(put) || !json_is_array(del) || !json_is_array(clear))
        return cap_error_set(CAP_ERROR, "the job's rendered files are missing");
    ops = calloc(total ? total : 1, sizeof(*ops));
    if (!ops)
        return cap_error_set(CAP_ERROR, "out of memory");
    json_array_foreach(clear, i, v) ops[(*n)++] =
        (struct gitops_op){GITOPS_DELETE, json_string_value(v), NULL, 0};
    json_array_foreach(del, i, v) ops[(*n)++] =
        (struct gitops_op){GITOPS_DELETE, json_string_value(v), NULL, 0};
    json_array_foreach(put, i, v)
    {
        json_t *content = json_object_get(v, "content");
        ops[(*n)++] = (struct gitops_op){GITOPS_PUT, cap_json_get_str(v, "path"),
                                         json_string_value(content), json_string_length(content)};
    }
    *out = ops;
    return 0;
}

int jobs_runtime_fleet(struct jobs_runtime *rt, struct gitops_repo **out)
{
    int rc = 0;
    pthread_mutex_lock(&rt->lock);
    if (!rt->fleet && !rt->fleet_options)
        rc = cap_error_set(CAP_EUNAVAILABLE,
                           "no fleet repository is configured (set CAPSTAN_FLEET_REPO)");
    else if (!rt->fleet && (rc = gitops_open(&rt->fleet, rt->fleet_options)) != 0)
        cap_error_wrap("opening the fleet repository");
    *out = rt->fleet;
    pthread_mutex_unlock(&rt->lock);
    return rc;
}

static int step_git_push(struct jobs_runtime *rt, struct store_job *job, struct jobs_step_out *out)
{
    struct gitops_repo *fleet = NULL;
    struct gitops_op *ops = NULL;
    struct gitops_result res;
    char summary[160];
    size_t nops = 0;
    int rc;

    if ((rc = jobs_runtime_fleet(rt, &fleet)) != 0)
        return rc;
    if ((rc = plan_ops(job->rendered, &ops, &nops)) != 0)
        return rc;
    snprintf(summary, sizeof(summary), "%s %s%s%s", jobs_kind_name(job->kind), job->tenant,
             job->env[0] ? "/" : "", job->env);
    struct gitops_change change = {job->id, summary, job->requested_by, ops, nops};
    memset(&res, 0, sizeof(res));
    rc = gitops_submit(fleet, &change, &res);
    free(ops);
    if (rc)
        return cap_error_wrap("pushing to the fleet repository");
    if (res.changed)
        snprintf(out->message, sizeof(out->message),
                 "pushed commit %.12s (%u change%s, %u push "
                 "attempt%s)",
                 res.commit, res.batch, res.batch == 1 ? "" : "s", res.attempts,
                 res.attempts == 1 ? "" : "s");
    else
        snprintf(out->message, sizeof(out->message),
                 "already on the branch in commit %.12s; nothing to commit", res.commit);
    out->result = json_pack("{s:s}", "commit", res.commit);
    return 0;
}

/* Makes (or finds again) the tenant's platform repository from the blueprint and records its
 * URL, which render puts into the tenant's Flux GitRepository. */
static int step_platform_repository(struct jobs_runtime *rt, struct store_job *job,
                                    struct jobs_step_out *out)
{
    char url[PLATFORM_URL_MAX];
    int rc;

    if (!rt->platform || rt->platform->provider == PLATFORM_NONE) {
        out->skipped = true;
        snprintf(out->message, sizeof(out->message),
                 "skipped: no platform repository provider is configured");
        return 0;
    }
    if ((rc = platform_repo_ensure(rt->platform, job->tenant, url, sizeof(url))) != 0)
        return cap_error_wrap("making the platform repository of tenant %s", job->tenant);
    if ((rc = store_tenant_set_platform_repo(rt->pool, job->tenant_id, url)) != 0)
        return rc;
    snprintf(out->message, sizeof(out->message), "platform repository %.200s", url);
    out->result = json_pack("{s:s}", "platformRepository", url);
    return 0;
}

int jobs_run_step(void *ctx, struct store_job *job, const char *step, struct jobs_step_out *out)
{
    struct jobs_runtime *rt = ctx;
    struct gitops_repo *fleet = NULL;
    int rc;

    if (strcmp(step, "render") == 0)
        return step_render(rt, job, out);
    if (strcmp(step, "git-push") == 0)
        return step_git_push(rt, job, out);
    if (strcmp(step, "platform-repository") == 0)
        return step_platform_repository(rt, job, out);
    if (rt->kube && rt->kube->client && jobs_runtime_fleet(rt, &fleet) != 0)
        fleet = NULL; /* "applied" then means Flux reports exactly the job's commit */
    rc = jobs_cluster_step(rt->kube, rt->pool, fleet, job, step, out);
    if (rc != 1)
        return rc;
    return cap_error_set(CAP_EINVALID, "unknown step \"%s\"", step);
}

int jobs_noop_step(void *ctx, struct store_job *job, const char *step, struct jobs_step_out *out)
{
    (void)ctx;
    (void)job;
    (void)step;
    (void)out;
    return 0;
}
