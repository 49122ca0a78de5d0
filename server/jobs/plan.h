/* capstan: what a job changes in the fleet repository, computed from the tenant and
 * environment (pure: rendering only). The render step stores a plan in the job; the git-push
 * step turns it into GitOps operations; ?dryRun shows it.
 *
 * A plan has files to write, folders or files to remove (the user-visible deletions), and
 * "clears": paths removed before the files are written so a folder ends up holding exactly
 * the rendered files (e.g. a file the tenant no longer needs). */
#ifndef CAPSTAN_JOBS_PLAN_H
#define CAPSTAN_JOBS_PLAN_H

#include "jobs/kinds.h"
#include "render/render.h"

#include <jansson.h>

struct jobs_plan {
    struct render_files files;
    json_t *removes; /* array of paths */
    json_t *clears;  /* array of paths */
};

/* Plans a job of kind for tenant (the API's Tenant object) and env (the API's Environment, or
 * NULL for tenant jobs). *out must be zeroed; free it with jobs_plan_free even on error.
 * Errors from rendering (CAP_EINVALID with the field). */
int jobs_plan_make(struct jobs_plan *out, enum job_kind kind, const json_t *tenant,
                   const json_t *env, const struct render_options *ro);
void jobs_plan_free(struct jobs_plan *p);

/* {"put": [{"path", "content"}], "delete": [...], "clear": [...]}: stored in jobs.rendered. */
json_t *jobs_plan_to_json(const struct jobs_plan *p);
/* The dry-run answer {"files": [{"path", "content"}], "deleted": [...]}. */
json_t *jobs_plan_dry_run(const struct jobs_plan *p);

/* Paths of the fleet layout. */
int jobs_path_tenant(char *buf, size_t size, const char *tenant);
int jobs_path_env(char *buf, size_t size, const char *tenant, const char *env);

#endif
