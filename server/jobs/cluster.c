/* capstan: job steps against the management cluster (see cluster.h).
 *
 * A wait step looks once and either finishes, or answers "wait" (out->wait_ms): the engine
 * puts the job back in the queue and a worker looks again later. The deadline counts from
 * when the step first started (its startedAt stays while it waits). */
#include "jobs/cluster.h"

#include "log/log.h"
#include "store/resources.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLUX_SOURCE_API    "source.toolkit.fluxcd.io/v1"
#define FLUX_KUSTOMIZE_API "kustomize.toolkit.fluxcd.io/v1"
#define CLUSTER_API        "cluster.x-k8s.io/v1beta2"

static const char *const known_steps[] = {"flux-reconcile",    "wait-applied",       "wait-cluster",
                                          "wait-cluster-gone", "wait-clusters-gone", NULL};

/* When the step first started (ms since the epoch), or now. */
static int64_t step_started(const struct store_job *job, const char *step)
{
    size_t i;
    json_t *s;
    json_array_foreach(job->steps, i, s)
    {
        int64_t t;
        if (strcmp(cap_json_get_str(s, "name") ? cap_json_get_str(s, "name") : "", step) == 0 &&
            cap_json_get_str(s, "state") && strcmp(cap_json_get_str(s, "state"), "running") == 0 &&
            cap_parse_rfc3339(&t, cap_json_get_str(s, "startedAt")) == 0)
            return t;
    }
    return cap_now_ms();
}

/* Finishes a look that found the thing not ready: wait again, or fail at the deadline. */
static int not_yet(const struct jobs_kube *k, const struct store_job *job, const char *step,
                   struct jobs_step_out *out, const char *what)
{
    int64_t deadline = step_started(job, step) + k->ready_timeout_ms;
    if (cap_now_ms() >= deadline) {
        out->fail_now = true;
        return cap_error_set(CAP_ETIMEOUT, "gave up after %lld s: %s", k->ready_timeout_ms / 1000,
                             what);
    }
    snprintf(out->message, sizeof(out->message), "%s", what);
    out->wait_ms = k->poll_ms;
    return 0;
}

static const char *condition(const json_t *obj, const char *type, const char **message)
{
    json_t *conds = json_object_get(json_object_get(obj, "status"), "conditions");
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c)
    {
        const char *t = cap_json_get_str(c, "type");
        if (t && strcmp(t, type) == 0) {
            if (message)
                *message = cap_json_get_str(c, "message");
            return cap_json_get_str(c, "status");
        }
    }
    return NULL;
}

/* The commit of a Flux revision ("main@sha1:<hex>", "sha1:<hex>" or "<hex>"), or NULL. */
static const char *revision_commit(const char *rev)
{
    const char *p;
    if (!rev)
        return NULL;
    p = strstr(rev, "sha1:");
    p = p ? p + 5 : rev;
    if (strlen(p) != 40 || strspn(p, "0123456789abcdef") != 40)
        return NULL;
    return p;
}

static int flux_reconcile(const struct jobs_kube *k, struct jobs_step_out *out)
{
    char path[KUBE_PATH_MAX], ts[32];
    json_t *patch, *res = NULL;
    int rc;

    cap_format_rfc3339(ts, cap_now_ms());
    patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", "reconcile.fluxcd.io/requestedAt",
                      ts);
    if ((rc = kube_path(path, sizeof(path), FLUX_SOURCE_API, "gitrepositories", k->flux_namespace,
                        k->flux_source)) == 0 &&
        (rc = kube_merge_patch(&res, k->client, path, patch, 0)) != 0)
        cap_error_wrap("asking Flux to fetch GitRepository %s/%s", k->flux_namespace,
                       k->flux_source);
    json_decref(res);
    res = NULL;
    if (rc == 0 &&
        (rc = kube_path(path, sizeof(path), FLUX_KUSTOMIZE_API, "kustomizations", k->flux_namespace,
                        k->flux_kustomization)) == 0 &&
        (rc = kube_merge_patch(&res, k->client, path, patch, 0)) != 0)
        cap_error_wrap("asking Flux to apply Kustomization %s/%s", k->flux_namespace,
                       k->flux_kustomization);
    json_decref(res);
    json_decref(patch);
    if (rc == 0)
        snprintf(out->message, sizeof(out->message),
                 "asked Flux to fetch and apply the fleet repository now (requestedAt %s)", ts);
    return rc;
}

/* Has Flux applied a revision that carries commit? *why says what it sees otherwise. */
static int flux_applied(const struct jobs_kube *k, struct gitops_repo *fleet, const char *commit,
                        bool *applied, char *why, size_t why_size)
{
    char path[KUBE_PATH_MAX];
    json_t *ks = NULL;
    const char *ready_msg = NULL, *ready, *rev;
    int rc;

    *applied = false;
    if ((rc = kube_path(path, sizeof(path), FLUX_KUSTOMIZE_API, "kustomizations", k->flux_namespace,
                        k->flux_kustomization)) != 0)
        return rc;
    if ((rc = kube_get(&ks, k->client, path, 0)) != 0)
        return cap_error_wrap("reading Kustomization %s/%s", k->flux_namespace,
                              k->flux_kustomization);
    rev = revision_commit(cap_json_get_str(json_object_get(ks, "status"), "lastAppliedRevision"));
    ready = condition(ks, "Ready", &ready_msg);
    if (rev && fleet && strcmp(rev, commit) != 0) {
        bool contains = false;
        if (gitops_contains(fleet, rev, commit, &contains) == 0)
            *applied = contains;
    } else if (rev) {
        *applied = strcmp(rev, commit) == 0;
    }
    if (*applied && (!ready || strcmp(ready, "True") != 0))
        *applied = false;
    if (!*applied)
        snprintf(why, why_size,
                 "waiting for Flux to apply commit %.12s (Kustomization %s/%s at %.12s%s%.160s)",
                 commit, k->flux_namespace, k->flux_kustomization, rev ? rev : "nothing yet",
                 ready_msg ? ": " : "", ready_msg ? ready_msg : "");
    json_decref(ks);
    return 0;
}

/* Is a later request already at work on this environment? */
static bool superseded(struct store_pool *pool, const struct store_job *job, bool deleting_job)
{
    char state[16];
    long long gen = 0;
    long long mine = json_integer_value(json_object_get(job->params, "generation"));
    if (store_env_status(pool, job->env_id, state, &gen) != 0)
        return false;
    if (deleting_job)
        return false;
    return gen > mine || strcmp(state, "deleting") == 0 || strcmp(state, "deleted") == 0 ||
           strcmp(state, "expired") == 0;
}

static bool control_plane_ready(const json_t *cluster)
{
    json_t *status = json_object_get(cluster, "status");
    const char *c = condition(cluster, "ControlPlaneAvailable", NULL);
    json_t *init =
        json_object_get(json_object_get(status, "initialization"), "controlPlaneInitialized");
    return (c && strcmp(c, "True") == 0) || json_is_true(init) ||
           json_is_true(json_object_get(status, "controlPlaneReady"));
}

static int cluster_path(char *path, size_t size, const struct store_job *job, bool collection)
{
    char ns[96], name[96];
    snprintf(ns, sizeof(ns), "tenant-%s", job->tenant);
    snprintf(name, sizeof(name), "%s-%s", job->tenant, job->env);
    return kube_path(path, size, CLUSTER_API, "clusters", ns, collection ? NULL : name);
}

static int wait_cluster(const struct jobs_kube *k, struct store_pool *pool,
                        struct gitops_repo *fleet, struct store_job *job, const char *step,
                        struct jobs_step_out *out, bool gone)
{
    const char *commit = cap_json_get_str(job->result, "commit");
    char path[KUBE_PATH_MAX], why[400];
    json_t *cluster = NULL;
    bool applied = false;
    int rc;

    if (!commit)
        return cap_error_set(CAP_ERROR, "the job has no commit to wait for");
    if (!gone && superseded(pool, job, false)) {
        snprintf(out->message, sizeof(out->message),
                 "superseded: a later request changes this environment");
        return 0;
    }
    if ((rc = flux_applied(k, fleet, commit, &applied, why, sizeof(why))) != 0)
        return rc;
    if (!applied)
        return not_yet(k, job, step, out, why);
    if ((rc = cluster_path(path, sizeof(path), job, false)) != 0)
        return rc;
    rc = kube_get(&cluster, k->client, path, 0);
    if (rc == CAP_ENOTFOUND) {
        if (gone) {
            store_env_set_phase(pool, job->env_id, NULL);
            snprintf(out->message, sizeof(out->message), "cluster %s-%s is gone", job->tenant,
                     job->env);
            return 0;
        }
        snprintf(why, sizeof(why), "waiting for cluster %s-%s to be created", job->tenant,
                 job->env);
        return not_yet(k, job, step, out, why);
    }
    if (rc)
        return cap_error_wrap("reading cluster %s-%s", job->tenant, job->env);
    const char *phase = cap_json_get_str(json_object_get(cluster, "status"), "phase");
    store_env_set_phase(pool, job->env_id, phase);
    if (!gone && phase && strcmp(phase, "Provisioned") == 0 && control_plane_ready(cluster)) {
        snprintf(out->message, sizeof(out->message),
                 "cluster %s-%s is Provisioned and its control plane is ready", job->tenant,
                 job->env);
        json_decref(cluster);
        return 0;
    }
    if (gone)
        snprintf(why, sizeof(why), "waiting for cluster %s-%s to be deleted (phase %s)",
                 job->tenant, job->env, phase ? phase : "unknown");
    else if (phase && strcmp(phase, "Failed") == 0)
        snprintf(why, sizeof(why), "cluster %s-%s is Failed; waiting for Cluster API to recover it",
                 job->tenant, job->env);
    else
        snprintf(why, sizeof(why), "waiting for cluster %s-%s to be Provisioned (phase %s%s)",
                 job->tenant, job->env, phase ? phase : "none yet",
                 phase && strcmp(phase, "Provisioned") == 0 ? ", control plane not ready" : "");
    json_decref(cluster);
    return not_yet(k, job, step, out, why);
}

/* Waits until Flux applied the job's commit (tenant jobs). */
static int wait_applied(const struct jobs_kube *k, struct gitops_repo *fleet, struct store_job *job,
                        const char *step, struct jobs_step_out *out)
{
    const char *commit = cap_json_get_str(job->result, "commit");
    char why[400];
    bool applied = false;
    int rc;

    if (!commit)
        return cap_error_set(CAP_ERROR, "the job has no commit to wait for");
    if ((rc = flux_applied(k, fleet, commit, &applied, why, sizeof(why))) != 0)
        return rc;
    if (!applied)
        return not_yet(k, job, step, out, why);
    snprintf(out->message, sizeof(out->message), "Flux applied commit %.12s", commit);
    return 0;
}

/* Waits until no Cluster is left in the tenant's namespace (offboarding). */
static int wait_clusters_gone(const struct jobs_kube *k, struct gitops_repo *fleet,
                              struct store_job *job, const char *step, struct jobs_step_out *out)
{
    const char *commit = cap_json_get_str(job->result, "commit");
    char path[KUBE_PATH_MAX], why[400];
    struct kube_list_options lo = {0};
    json_t *list = NULL;
    bool applied = false;
    int rc;

    if (!commit)
        return cap_error_set(CAP_ERROR, "the job has no commit to wait for");
    if ((rc = flux_applied(k, fleet, commit, &applied, why, sizeof(why))) != 0)
        return rc;
    if (!applied)
        return not_yet(k, job, step, out, why);
    if ((rc = cluster_path(path, sizeof(path), job, true)) != 0)
        return rc;
    if ((rc = kube_list(&list, k->client, path, &lo)) != 0)
        return cap_error_wrap("listing the clusters of tenant-%s", job->tenant);
    size_t n = json_array_size(json_object_get(list, "items"));
    json_decref(list);
    if (n == 0) {
        snprintf(out->message, sizeof(out->message), "no cluster is left in tenant-%s",
                 job->tenant);
        return 0;
    }
    snprintf(why, sizeof(why), "waiting for %zu cluster%s of tenant-%s to be deleted", n,
             n == 1 ? "" : "s", job->tenant);
    return not_yet(k, job, step, out, why);
}

int jobs_cluster_step(const struct jobs_kube *k, struct store_pool *pool, struct gitops_repo *fleet,
                      struct store_job *job, const char *step, struct jobs_step_out *out)
{
    bool known = false;
    for (const char *const *s = known_steps; *s; s++)
        known |= strcmp(*s, step) == 0;
    if (!known)
        return 1;
    if (!k || !k->client) {
        out->skipped = true;
        snprintf(out->message, sizeof(out->message),
                 "skipped: GitOps only (no Kubernetes API configured; see CAPSTAN_KUBECONFIG)");
        return 0;
    }
    if (strcmp(step, "flux-reconcile") == 0)
        return flux_reconcile(k, out);
    if (strcmp(step, "wait-applied") == 0)
        return wait_applied(k, fleet, job, step, out);
    if (strcmp(step, "wait-cluster") == 0)
        return wait_cluster(k, pool, fleet, job, step, out, false);
    if (strcmp(step, "wait-cluster-gone") == 0)
        return wait_cluster(k, pool, fleet, job, step, out, true);
    return wait_clusters_gone(k, fleet, job, step, out);
}

int jobs_cluster_kubeconfig(const struct jobs_kube *k, const char *tenant, const char *env,
                            char **out, size_t *len)
{
    char path[KUBE_PATH_MAX], ns[96], name[128];
    json_t *secret = NULL;
    unsigned char *raw = NULL;
    size_t n = 0;
    int rc;

    *out = NULL;
    if (!k || !k->client)
        return cap_error_set(CAP_ECONFLICT, "capstan runs GitOps only (no Kubernetes API is "
                                            "configured), so it cannot read kubeconfigs");
    snprintf(ns, sizeof(ns), "tenant-%s", tenant);
    snprintf(name, sizeof(name), "%s-%s-kubeconfig", tenant, env);
    if ((rc = kube_path(path, sizeof(path), "v1", "secrets", ns, name)) != 0)
        return rc;
    rc = kube_get(&secret, k->client, path, 0);
    if (rc == CAP_ENOTFOUND)
        return cap_error_set(CAP_ECONFLICT, "the kubeconfig of cluster %s-%s is not there yet",
                             tenant, env);
    if (rc)
        return cap_error_wrap("reading the kubeconfig of cluster %s-%s", tenant, env);
    const char *b64 = cap_json_get_str(json_object_get(secret, "data"), "value");
    if (!b64 || cap_base64_decode(&raw, &n, b64, strlen(b64)) != 0 || n == 0 ||
        memchr(raw, '\0', n)) {
        json_decref(secret);
        free(raw);
        return cap_error_set(CAP_ECONFLICT,
                             "the kubeconfig Secret of cluster %s-%s has no usable key \"value\"",
                             tenant, env);
    }
    json_decref(secret);
    *out = (char *)raw;
    *len = n;
    return 0;
}
