/* capstan: rendering, the pure functions that turn a tenant and its environments (the API's
 * JSON model) into the files capstan commits to the fleet repository (see
 * ../shared/design/GITOPS.md for the layout and server/render/README.md for the design).
 *
 * Invariants: the same input renders byte-identical files; every string taken from the input
 * lands in YAML as one quoted scalar (tenant files through render/yaml.h, cluster.yaml through
 * the typed templates of render/template.h), so no input can add or change a key; names that
 * become paths or object names are checked to be DNS-1123 labels first. No I/O happens except
 * reading templates from opt->templates_dir (and in render_cli_main). All functions are
 * thread-safe; errors are returned as negative CAP_E* codes with the thread's last error set
 * (CAP_EINVALID for bad input, with the offending field where there is one). */
#ifndef CAPSTAN_RENDER_RENDER_H
#define CAPSTAN_RENDER_RENDER_H

#include <jansson.h>
#include <stddef.h>

#define RENDER_TENANT_NAME_MAX      30
#define RENDER_ENVIRONMENT_NAME_MAX 20
#define RENDER_MAX_ENVIRONMENTS     256
#define RENDER_MAX_OWNERS           100
#define RENDER_MAX_LABELS           64

struct render_file {
    char *path;    /* relative to the repository root, e.g. "tenants/team-a/namespace.yaml" */
    char *content; /* NUL-terminated */
    size_t len;    /* bytes of content without the NUL */
};

/* A list of files; zero-initialise. Functions that add files leave it sorted by path; on
 * failure they leave it as it was. */
struct render_files {
    struct render_file *items;
    size_t n, cap;
};

/* Frees every file and the array; accepts NULL; leaves f empty and reusable. */
void render_files_free(struct render_files *f);

/* Borrowed file of f with this path, or NULL. */
const struct render_file *render_files_find(const struct render_files *f, const char *path);

/* Settings that are not part of a request. Every pointer may be NULL, meaning the default
 * written after it. Strings are borrowed for the duration of a call. */
struct render_options {
    const char *mgmt_cluster;     /* "mgmt": management cluster, folder clusters/<name> */
    const char *templates_dir;    /* NULL: the templates built into the binary; otherwise a folder
                                     whose cluster-<flavour>.yaml files replace the built-in ones
                                     (a flavour missing there falls back to the built-in file) */
    const char *gcp_project;      /* no default: rendering a gcp environment needs it */
    const char *gcp_network;      /* "default": GCP VPC network name */
    const char *aws_ssh_key_name; /* "": no SSH key on AWS machines */
    const char *vcluster_chart_name;    /* "vcluster" */
    const char *vcluster_chart_repo;    /* "https://charts.loft.sh" */
    const char *vcluster_chart_version; /* "0.30.2" */
    const char *pod_cidr;               /* "192.168.0.0/16": pod network of dedicated clusters */
    const char *service_cidr;           /* "10.96.0.0/12": service network of dedicated clusters */
    const char *platform_branch;        /* "main": branch of tenant platform repositories */
    const char *platform_secret;        /* none: name of a Secret in tenant-<t> with Git
                                           credentials for the platform repository */
    const char *kubeconfig_reader;      /* none: "namespace/serviceaccount" of capstan, bound in
                                           each tenant namespace to read kubeconfig Secrets */
    const char *network_policy_allow;   /* none: namespaces (comma-separated) that may reach
                                           the tenant namespace besides itself */
    const char *fleet_source;           /* "flux-system": the GitRepository (in namespace
                                           flux-system) that Flux reads the fleet repository
                                           through */
};

/* The defaults above, for --help and documentation. */
#define RENDER_DEFAULT_MGMT_CLUSTER           "mgmt"
#define RENDER_DEFAULT_GCP_NETWORK            "default"
#define RENDER_DEFAULT_AWS_SSH_KEY_NAME       ""
#define RENDER_DEFAULT_VCLUSTER_CHART_NAME    "vcluster"
#define RENDER_DEFAULT_VCLUSTER_CHART_REPO    "https://charts.loft.sh"
#define RENDER_DEFAULT_VCLUSTER_CHART_VERSION "0.30.2"
#define RENDER_DEFAULT_POD_CIDR               "192.168.0.0/16"
#define RENDER_DEFAULT_SERVICE_CIDR           "10.96.0.0/12"
#define RENDER_DEFAULT_PLATFORM_BRANCH        "main"
#define RENDER_DEFAULT_FLEET_SOURCE           "flux-system"

/* Adds the files of the tenant folder, without environments and without
 * tenants/<t>/kustomization.yaml: tenants/<t>/namespace.yaml, rbac.yaml, quota.yaml,
 * network-policy.yaml and platform-source.yaml (only when platformRepository is a string).
 * tenant is the API's Tenant object (borrowed; unknown keys ignored). opt may be NULL.
 * Errors: CAP_EINVALID (bad or missing field; field recorded), CAP_ETOOBIG, CAP_ERROR. */
int render_tenant(struct render_files *out, const struct render_options *opt, const json_t *tenant);

/* Adds the files of one environment folder: tenants/<t>/environments/<e>/kustomization.yaml,
 * cluster.yaml (from the template of the tenant's provider flavour) and platform-sync.yaml (only
 * when the tenant has a platform repository). env is the API's Environment object; its "tenant"
 * member, when present, must name the tenant. Errors as render_tenant; also CAP_EINVALID for a
 * template that fails to expand or does not give every object the namespace tenant-<t> and the
 * capstan labels, and CAP_ERROR when a file of templates_dir cannot be read. */
int render_environment(struct render_files *out, const struct render_options *opt,
                       const json_t *tenant, const json_t *env);

/* tenants/kustomization.yaml listing the folders of tenant_names (sorted, duplicates dropped;
 * each must be a tenant name). *out is the caller's to free. CAP_EINVALID for a bad name. */
int render_tenants_index(char **out, const char *const *tenant_names, size_t n);

/* tenants/<t>/kustomization.yaml: files are the YAML file names of the tenant folder (plain
 * names ending in .yaml, not kustomization.yaml), envs the environment names; both are sorted
 * and deduplicated, files first, then environments/<e>. *out is the caller's to free. */
int render_tenant_kustomization(char **out, const char *const *files, size_t nfiles,
                                const char *const *envs, size_t nenvs);

/* clusters/<mgmt>/tenants.yaml: the Flux Kustomization (namespace flux-system) that applies
 * ./tenants of the fleet repository with prune. mgmt_cluster NULL means "mgmt". The fleet
 * GitRepository is "flux-system"; use render_cluster_entry_source to name another. */
int render_cluster_entry(char **out, const char *mgmt_cluster);
int render_cluster_entry_source(char **out, const char *mgmt_cluster, const char *fleet_source);

/* The repository tree as the server commits it for one tenant and its environments:
 * render_tenant, render_environment for each of envs (names must differ), the tenant's
 * kustomization.yaml, tenants/kustomization.yaml listing this tenant and
 * clusters/<mgmt>/tenants.yaml. Used by `capstan render` and by ?dryRun. */
int render_tree(struct render_files *out, const struct render_options *opt, const json_t *tenant,
                const json_t *const *envs, size_t nenvs);

/* `capstan render ...` (argv[0] is "render"; argv holds --tenant, --environment, --out and
 * --help; the configuration flags were taken out into opt by the caller): reads the tenant and
 * environment JSON files, renders the tree and writes it below --out. Returns the process exit
 * status: 0, 1 for invalid input or a failed write (one line on stderr), 2 for usage errors. */
int render_cli_main(int argc, char **argv, const struct render_options *opt);

#endif
