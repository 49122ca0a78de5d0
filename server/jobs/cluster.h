/* capstan: the job steps that talk to the management cluster's Kubernetes API: ask Flux to
 * reconcile at once, then wait (without holding a worker) until Flux has applied the job's
 * commit and the environment's Cluster is Provisioned, or is gone. Without a Kubernetes API
 * (GitOps only) these steps are skipped and say so. */
#ifndef CAPSTAN_JOBS_CLUSTER_H
#define CAPSTAN_JOBS_CLUSTER_H

#include "gitops/gitops.h"
#include "jobs/engine.h"
#include "kube/kube.h"
#include "store/jobs.h"

struct jobs_kube {
    struct kube_client *client;     /* NULL: GitOps only */
    const char *flux_namespace;     /* "flux-system" */
    const char *flux_source;        /* the fleet GitRepository ("flux-system") */
    const char *flux_kustomization; /* the Kustomization that applies ./tenants ("tenants") */
    long long ready_timeout_ms;     /* how long a wait step waits before it fails */
    long long poll_ms;              /* between two looks */
};

/* Steps "flux-reconcile", "wait-applied", "wait-cluster", "wait-cluster-gone",
 * "wait-clusters-gone". fleet may be NULL (then "applied" means the exact commit). Returns 1
 * when step is not one of these (out untouched), else 0 or a CAP_E* code as jobs_step_fn. */
int jobs_cluster_step(const struct jobs_kube *k, struct store_pool *pool, struct gitops_repo *fleet,
                      struct store_job *job, const char *step, struct jobs_step_out *out);

/* The kubeconfig of an environment's cluster (the <cluster>-kubeconfig Secret, key "value"),
 * into *out (caller frees, NUL-terminated). CAP_ECONFLICT when not available (yet); never
 * logged. */
int jobs_cluster_kubeconfig(const struct jobs_kube *k, const char *tenant, const char *env,
                            char **out, size_t *len);

#endif
