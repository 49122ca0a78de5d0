/* capstan: job kinds and their steps (see kinds.h). */
#include "jobs/kinds.h"

#include <string.h>

static const char *const names[JOB_KIND_COUNT] = {
    "tenant.create",      "tenant.update",      "tenant.delete",      "environment.create",
    "environment.update", "environment.delete", "environment.expire",
};

/* platform-repository: the tenant's platform repository from the blueprint;
 * render: the job's files from its snapshot; git-push: one commit on the fleet branch;
 * flux-reconcile: ask Flux to fetch and apply now; wait-*: until Flux applied the commit and
 * the Cluster is there (or gone). Steps that need the Kubernetes API are skipped without. */
static const char *const steps_tenant_create[] = {"platform-repository", "render",       "git-push",
                                                  "flux-reconcile",      "wait-applied", NULL};
static const char *const steps_tenant_update[] = {"render", "git-push", "flux-reconcile",
                                                  "wait-applied", NULL};
static const char *const steps_tenant_delete[] = {"render", "git-push", "flux-reconcile",
                                                  "wait-clusters-gone", NULL};
static const char *const steps_env_apply[] = {"render", "git-push", "flux-reconcile",
                                              "wait-cluster", NULL};
static const char *const steps_env_delete[] = {"render", "git-push", "flux-reconcile",
                                               "wait-cluster-gone", NULL};

const char *jobs_kind_name(enum job_kind k)
{
    return (unsigned)k < JOB_KIND_COUNT ? names[k] : NULL;
}

int jobs_kind_parse(const char *name)
{
    for (int i = 0; name && i < JOB_KIND_COUNT; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

bool jobs_kind_is_env(enum job_kind k)
{
    return k >= JOB_ENV_CREATE;
}

const char *const *jobs_kind_steps(enum job_kind k)
{
    switch (k) {
    case JOB_TENANT_CREATE:
        return steps_tenant_create;
    case JOB_TENANT_UPDATE:
        return steps_tenant_update;
    case JOB_TENANT_DELETE:
        return steps_tenant_delete;
    case JOB_ENV_CREATE:
    case JOB_ENV_UPDATE:
        return steps_env_apply;
    default:
        return steps_env_delete;
    }
}

json_t *jobs_initial_steps(enum job_kind k)
{
    json_t *a = json_array();
    for (const char *const *s = jobs_kind_steps(k); *s; s++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:n,s:n,s:n}", "name", *s, "state", "pending",
                                           "startedAt", "finishedAt", "message"));
    return a;
}
