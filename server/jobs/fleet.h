/* capstan: the fleet repository's derived files. After every change the GitOps engine calls
 * jobs_fleet_finalize, which rewrites clusters/<mgmt>/tenants.yaml, tenants/kustomization.yaml
 * (every tenant folder, sorted) and each tenants/<t>/kustomization.yaml (its files and
 * environment folders) from what the tree holds, so the lists are always exactly the folders,
 * whoever committed what. */
#ifndef CAPSTAN_JOBS_FLEET_H
#define CAPSTAN_JOBS_FLEET_H

#include "gitops/gitops.h"
#include "render/render.h"

/* ctx: const struct render_options * (mgmt_cluster, fleet_source). After a change only the
 * tenants its ops touch get their list rewritten (a tenant folder removed as a whole has no
 * list left to write); after the seed (change NULL) every tenant does. */
int jobs_fleet_finalize(void *ctx, struct gitops_tree *t, const struct gitops_change *change);

/* The files of the very first commit of an empty fleet repository (ops into out[0..2), with
 * contents the caller frees: free(out[i].content)). */
int jobs_fleet_seed(struct gitops_op out[2], char paths[2][128], const struct render_options *ro);

#endif
