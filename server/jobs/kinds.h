/* capstan: job kinds and their steps. Pure data; thread-safe.
 *
 * Every job kind is an ordered list of named steps; each step is idempotent, so a job taken
 * up again (after a crash, a retry or a lost lease) resumes at the first step not yet
 * succeeded. */
#ifndef CAPSTAN_JOBS_KINDS_H
#define CAPSTAN_JOBS_KINDS_H

#include <jansson.h>
#include <stdbool.h>

#define JOB_MAX_STEPS 8

enum job_kind {
    JOB_TENANT_CREATE,
    JOB_TENANT_UPDATE,
    JOB_TENANT_DELETE,
    JOB_ENV_CREATE,
    JOB_ENV_UPDATE,
    JOB_ENV_DELETE,
    JOB_ENV_EXPIRE,
    JOB_KIND_COUNT
};

/* "tenant.create" ... ; NULL for an unknown kind */
const char *jobs_kind_name(enum job_kind k);
/* -1 for an unknown name */
int jobs_kind_parse(const char *name);
bool jobs_kind_is_env(enum job_kind k);

/* The step names of a kind, ended by NULL. */
const char *const *jobs_kind_steps(enum job_kind k);

/* The initial steps array of a job: [{"name", "state": "pending", "startedAt": null,
 * "finishedAt": null, "message": null}, ...]. New reference. */
json_t *jobs_initial_steps(enum job_kind k);

#endif
