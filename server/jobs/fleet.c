/* capstan: the fleet repository's derived files (see fleet.h). */
#include "jobs/fleet.h"

#include "log/log.h"
#include "util/error.h"
#include "util/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_yaml_file(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".yaml") == 0 && strcmp(name, "kustomization.yaml") != 0;
}

static int put_text(struct gitops_tree *t, const char *path, char *text)
{
    int rc = gitops_tree_put(t, path, text, strlen(text));
    free(text);
    return rc;
}

/* Rewrites tenants/<name>/kustomization.yaml from the folder. */
static int tenant_kustomization(struct gitops_tree *t, const char *name)
{
    char dir[128], envdir[160], path[160];
    char **entries = NULL, **envs = NULL;
    size_t nentries = 0, nenvs = 0, nfiles = 0;
    const char **files = NULL;
    char *text = NULL;
    int rc;

    snprintf(dir, sizeof(dir), "tenants/%s", name);
    snprintf(envdir, sizeof(envdir), "tenants/%s/environments", name);
    snprintf(path, sizeof(path), "tenants/%s/kustomization.yaml", name);
    if ((rc = gitops_tree_list(t, dir, &entries, &nentries, false)) != 0)
        goto cleanup;
    if ((rc = gitops_tree_list(t, envdir, &envs, &nenvs, true)) != 0)
        goto cleanup;
    files = calloc(nentries + 1, sizeof(*files));
    if (!files) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < nentries; i++)
        if (is_yaml_file(entries[i]))
            files[nfiles++] = entries[i];
    if (nfiles == 0 && nenvs == 0) {
        /* nothing left of the tenant: no list either */
        rc = gitops_tree_delete(t, path);
        goto cleanup;
    }
    if ((rc = render_tenant_kustomization(&text, files, nfiles, (const char *const *)envs,
                                          nenvs)) != 0)
        goto cleanup;
    rc = put_text(t, path, text);
cleanup:
    free(files);
    gitops_names_free(entries, nentries);
    gitops_names_free(envs, nenvs);
    return rc;
}

/* The tenant a path belongs to ("tenants/<t>/..."), copied into out; false otherwise. */
static bool tenant_of(const char *path, char *out, size_t size)
{
    const char *p, *slash;
    if (strncmp(path, "tenants/", 8) != 0)
        return false;
    p = path + 8;
    slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= size)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return cap_is_dns_label(out, RENDER_TENANT_NAME_MAX);
}

/* True if tenant already appears among the first i ops of c (done once per tenant). */
static bool seen_before(const struct gitops_change *c, size_t i, const char *tenant)
{
    char other[64];
    for (size_t k = 0; k < i; k++)
        if (tenant_of(c->ops[k].path, other, sizeof(other)) && strcmp(other, tenant) == 0)
            return true;
    return false;
}

int jobs_fleet_finalize(void *ctx, struct gitops_tree *t, const struct gitops_change *change)
{
    const struct render_options *ro = ctx;
    const char *mgmt = ro && ro->mgmt_cluster ? ro->mgmt_cluster : RENDER_DEFAULT_MGMT_CLUSTER;
    char path[160];
    char **tenants = NULL;
    const char **valid = NULL;
    size_t ntenants = 0, nvalid = 0;
    char *text = NULL;
    int rc;

    snprintf(path, sizeof(path), "clusters/%s/tenants.yaml", mgmt);
    if ((rc = render_cluster_entry_source(
             &text, mgmt,
             ro && ro->fleet_source ? ro->fleet_source : RENDER_DEFAULT_FLEET_SOURCE)) != 0)
        return rc;
    if ((rc = put_text(t, path, text)) != 0)
        return rc;
    if ((rc = gitops_tree_list(t, "tenants", &tenants, &ntenants, true)) != 0)
        return rc;
    valid = calloc(ntenants + 1, sizeof(*valid));
    if (!valid) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    /* Only the tenants the change touched need their list rewritten (after the seed: all);
     * the index is cheap and always rewritten. */
    for (size_t i = 0; i < ntenants; i++) {
        if (!cap_is_dns_label(tenants[i], RENDER_TENANT_NAME_MAX)) {
            log_warn("fleet repository: ignoring folder tenants/%s (not a tenant name)",
                     tenants[i]);
            continue;
        }
        if (!change && (rc = tenant_kustomization(t, tenants[i])) != 0)
            goto cleanup;
        valid[nvalid++] = tenants[i];
    }
    for (size_t i = 0; change && i < change->nops; i++) {
        char tenant[64];
        if (!tenant_of(change->ops[i].path, tenant, sizeof(tenant)) ||
            seen_before(change, i, tenant))
            continue;
        if ((rc = tenant_kustomization(t, tenant)) != 0)
            goto cleanup;
    }
    if ((rc = render_tenants_index(&text, valid, nvalid)) != 0)
        goto cleanup;
    rc = put_text(t, "tenants/kustomization.yaml", text);
cleanup:
    free(valid);
    gitops_names_free(tenants, ntenants);
    return rc;
}

int jobs_fleet_seed(struct gitops_op out[2], char paths[2][128], const struct render_options *ro)
{
    const char *mgmt = ro && ro->mgmt_cluster ? ro->mgmt_cluster : RENDER_DEFAULT_MGMT_CLUSTER;
    char *entry = NULL, *index = NULL;
    int rc;

    if ((rc = render_cluster_entry_source(
             &entry, mgmt,
             ro && ro->fleet_source ? ro->fleet_source : RENDER_DEFAULT_FLEET_SOURCE)) != 0)
        return rc;
    if ((rc = render_tenants_index(&index, NULL, 0)) != 0) {
        free(entry);
        return rc;
    }
    snprintf(paths[0], 128, "clusters/%s/tenants.yaml", mgmt);
    snprintf(paths[1], 128, "tenants/kustomization.yaml");
    out[0] = (struct gitops_op){GITOPS_PUT, paths[0], entry, strlen(entry)};
    out[1] = (struct gitops_op){GITOPS_PUT, paths[1], index, strlen(index)};
    return 0;
}
