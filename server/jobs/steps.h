/* capstan: the steps of capstan's jobs (the executor the engine calls). */
#ifndef CAPSTAN_JOBS_STEPS_H
#define CAPSTAN_JOBS_STEPS_H

#include "cloud/platform.h"
#include "gitops/gitops.h"
#include "jobs/cluster.h"
#include "jobs/engine.h"
#include "render/render.h"
#include "store/store.h"

#include <pthread.h>

struct jobs_runtime {
    struct store_pool *pool;
    const char *instance;
    const struct render_options *render;
    const struct gitops_options *fleet_options; /* NULL: no fleet repository configured */
    const struct jobs_kube *kube;            /* the management cluster (client NULL: GitOps only) */
    const struct platform_options *platform; /* provider PLATFORM_NONE: no platform repos */
    /* the fleet repository, opened at start or by the first step that needs it */
    pthread_mutex_t lock;
    struct gitops_repo *fleet;
};

/* Opens the fleet repository if it is not open yet. */
int jobs_runtime_fleet(struct jobs_runtime *rt, struct gitops_repo **out);

/* jobs_step_fn over a struct jobs_runtime. Steps: "render" (plans the job's files from the
 * job's snapshot and stores the plan in the job) and "git-push" (one commit on the fleet
 * branch, or none when the change is already there; result {"commit"}). */
int jobs_run_step(void *ctx, struct store_job *job, const char *step, struct jobs_step_out *out);

/* jobs_step_fn that does nothing and succeeds (CAPSTAN_JOB_EXECUTOR=noop: measures the engine
 * alone). */
int jobs_noop_step(void *ctx, struct store_job *job, const char *step, struct jobs_step_out *out);

/* The tenant and environment objects a job renders from: the job's snapshot of the spec,
 * completed by what the store holds now (platformRepository, the tenant of an environment).
 * New references; *env is NULL for tenant jobs. */
int jobs_subjects(struct store_pool *pool, const struct store_job *job, json_t **tenant,
                  json_t **env);

#endif
