/* capstan: the configuration table and its loader (see config.h). */
#include "config/config.h"

#include "log/log.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/str.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define OFF(f) offsetof(struct cap_config, f)

static int check_listen(const char *v);
static int check_dns_label(const char *v);
static int check_branch(const char *v);
static int check_version(const char *v);
static int check_namespace_list(const char *v);

const struct cfg_setting cap_settings[] = {
    {"CAPSTAN_DATABASE_URL", "--database-url", CFG_STRING, NULL, 0, 0, NULL, true,
     OFF(database_url), NULL,
     "PostgreSQL connection string (URI or key=value); required for serve and migrate"},
    {"CAPSTAN_LISTEN", "--listen", CFG_STRING, "127.0.0.1:8080", 0, 0, NULL, false, OFF(listen),
     check_listen, "address and port to serve HTTP on (host:port, [v6]:port or :port)"},
    {"CAPSTAN_HTTP_THREADS", "--http-threads", CFG_INT, "8", 1, 256, NULL, false, OFF(http_threads),
     NULL, "threads serving HTTP requests"},
    {"CAPSTAN_WORKERS", "--workers", CFG_INT, "4", 0, 256, NULL, false, OFF(workers), NULL,
     "job worker threads in this process (0: serve the API only)"},
    {"CAPSTAN_DB_POOL", "--db-pool", CFG_INT, "16", 1, 1024, NULL, false, OFF(db_pool), NULL,
     "most PostgreSQL connections this process opens"},
    {"CAPSTAN_DB_TIMEOUT", "--db-timeout", CFG_DURATION, "5s", 100, 600000, NULL, false,
     OFF(db_timeout_ms), NULL, "how long a request waits for a database connection"},
    {"CAPSTAN_FLEET_REPO", "--fleet-repo", CFG_STRING, NULL, 0, 0, NULL, false, OFF(fleet_repo),
     NULL, "URL or local path of the fleet Git repository that Flux applies"},
    {"CAPSTAN_FLEET_BRANCH", "--fleet-branch", CFG_STRING, "main", 0, 0, NULL, false,
     OFF(fleet_branch), check_branch, "branch of the fleet repository"},
    {"CAPSTAN_MGMT_CLUSTER", "--mgmt-cluster", CFG_STRING, "mgmt", 0, 0, NULL, false,
     OFF(mgmt_cluster), check_dns_label,
     "name of the management cluster (its folder in the fleet repository is clusters/NAME)"},
    {"CAPSTAN_ADMIN_TOKEN", "--admin-token", CFG_STRING, NULL, 0, 0, NULL, true, OFF(admin_token),
     NULL, "bootstrap admin token (at least 16 characters)"},
    {"CAPSTAN_KUBECONFIG", "--kubeconfig", CFG_STRING, NULL, 0, 0, NULL, false, OFF(kubeconfig),
     NULL, "kubeconfig of the management cluster; unset: GitOps only"},
    {"CAPSTAN_KUBE_CONTEXT", "--kube-context", CFG_STRING, NULL, 0, 0, NULL, false,
     OFF(kube_context), NULL, "kubeconfig context to use (default: its current-context)"},
    {"CAPSTAN_KUBE_IN_CLUSTER", "--kube-in-cluster", CFG_BOOL, "false", 0, 0, NULL, false,
     OFF(kube_in_cluster), NULL,
     "use the pod's service account to reach the management cluster (instead of a kubeconfig)"},
    {"CAPSTAN_KUBE_INSECURE", "--kube-insecure", CFG_BOOL, "false", 0, 0, NULL, false,
     OFF(kube_insecure), NULL,
     "accept a kubeconfig with insecure-skip-tls-verify (refused otherwise; never in production)"},
    {"CAPSTAN_KUBE_TIMEOUT", "--kube-timeout", CFG_DURATION, "30s", 1000, 600000, NULL, false,
     OFF(kube_timeout_ms), NULL, "bound of each Kubernetes API call"},
    {"CAPSTAN_FLUX_NAMESPACE", "--flux-namespace", CFG_STRING, "flux-system", 0, 0, NULL, false,
     OFF(flux_namespace), check_dns_label,
     "namespace of the Flux objects that apply the fleet repository"},
    {"CAPSTAN_READY_TIMEOUT", "--ready-timeout", CFG_DURATION, "30m", 1000, 86400000, NULL, false,
     OFF(ready_timeout_ms), NULL,
     "how long a job waits for Flux to apply its commit and for its cluster to be ready or gone"},
    {"CAPSTAN_READY_POLL", "--ready-poll", CFG_DURATION, "5s", 100, 600000, NULL, false,
     OFF(ready_poll_ms), NULL, "how often a waiting job looks at the management cluster"},
    {"CAPSTAN_LOG_LEVEL", "--log-level", CFG_ENUM, "info", 0, 0, "debug|info|warn|error", false,
     OFF(log_level), NULL, "least severe level that is logged"},
    {"CAPSTAN_LOG_FORMAT", "--log-format", CFG_ENUM, "auto", 0, 0, "auto|json|text", false,
     OFF(log_format), NULL, "log lines as JSON, as text, or text on a terminal and JSON otherwise"},
    {"CAPSTAN_MAX_BODY", "--max-body", CFG_SIZE, "1MiB", 1024, 64LL << 20, NULL, false,
     OFF(max_body), NULL, "largest request body accepted (bigger: 413)"},
    {"CAPSTAN_AUTO_MIGRATE", "--auto-migrate", CFG_BOOL, "true", 0, 0, NULL, false,
     OFF(auto_migrate), NULL, "apply pending migrations when serve starts"},
    {"CAPSTAN_SHUTDOWN_TIMEOUT", "--shutdown-timeout", CFG_DURATION, "10s", 0, 600000, NULL, false,
     OFF(shutdown_timeout_ms), NULL,
     "how long requests in flight may take to finish after SIGTERM"},
    {"CAPSTAN_DATA_DIR", "--data-dir", CFG_STRING, "./var/capstan", 0, 0, NULL, false,
     OFF(data_dir), NULL, "folder for local state (the fleet repository cache)"},
    {"CAPSTAN_TEMPLATES_DIR", "--templates-dir", CFG_STRING, NULL, 0, 0, NULL, false,
     OFF(templates_dir), NULL, "folder of cluster templates replacing the built-in ones"},
    {"CAPSTAN_DEFAULT_K8S_VERSION", "--default-k8s-version", CFG_STRING, "v1.30.4", 0, 0, NULL,
     false, OFF(default_k8s_version), check_version,
     "Kubernetes version of environments that do not name one"},
    {"CAPSTAN_GIT_USERNAME", "--git-username", CFG_STRING, NULL, 0, 0, NULL, false,
     OFF(git_username), NULL,
     "user for HTTPS (with CAPSTAN_GIT_PASSWORD or _TOKEN) or SSH to the fleet repository"},
    {"CAPSTAN_GIT_PASSWORD", "--git-password", CFG_STRING, NULL, 0, 0, NULL, true,
     OFF(git_password), NULL, "password for HTTPS to the fleet repository"},
    {"CAPSTAN_GIT_TOKEN", "--git-token", CFG_STRING, NULL, 0, 0, NULL, true, OFF(git_token), NULL,
     "access token for HTTPS to the fleet repository"},
    {"CAPSTAN_GIT_SSH_KEY", "--git-ssh-key", CFG_STRING, NULL, 0, 0, NULL, false, OFF(git_ssh_key),
     NULL, "private key file for SSH to the fleet repository"},
    {"CAPSTAN_GIT_SSH_PASSPHRASE", "--git-ssh-passphrase", CFG_STRING, NULL, 0, 0, NULL, true,
     OFF(git_ssh_passphrase), NULL, "passphrase of CAPSTAN_GIT_SSH_KEY"},
    {"CAPSTAN_GIT_CA_FILE", "--git-ca-file", CFG_STRING, NULL, 0, 0, NULL, false, OFF(git_ca_file),
     NULL, "extra CA certificates (PEM) for HTTPS to Git servers; verification always stays on"},
    {"CAPSTAN_GIT_KNOWN_HOSTS", "--git-known-hosts", CFG_STRING, NULL, 0, 0, NULL, false,
     OFF(git_known_hosts), NULL, "known_hosts file for SSH (default ~/.ssh/known_hosts)"},
    {"CAPSTAN_GIT_AUTHOR_NAME", "--git-author-name", CFG_STRING, "capstan", 0, 0, NULL, false,
     OFF(git_author_name), NULL, "author of fleet repository commits"},
    {"CAPSTAN_GIT_AUTHOR_EMAIL", "--git-author-email", CFG_STRING, "capstan@localhost", 0, 0, NULL,
     false, OFF(git_author_email), NULL, "author email of fleet repository commits"},
    {"CAPSTAN_GIT_TIMEOUT", "--git-timeout", CFG_DURATION, "60s", 1000, 600000, NULL, false,
     OFF(git_timeout_ms), NULL, "bound of each fetch and push"},
    {"CAPSTAN_GIT_PUSH_ATTEMPTS", "--git-push-attempts", CFG_INT, "8", 1, 100, NULL, false,
     OFF(git_push_attempts), NULL, "push attempts when other writers move the branch"},
    {"CAPSTAN_JOB_LEASE", "--job-lease", CFG_DURATION, "30s", 1000, 600000, NULL, false,
     OFF(job_lease_ms), NULL,
     "how long a running job stays claimed without renewal (then another process takes it)"},
    {"CAPSTAN_JOB_POLL", "--job-poll", CFG_DURATION, "2s", 50, 60000, NULL, false, OFF(job_poll_ms),
     NULL, "how often idle workers look for due jobs besides notifications"},
    {"CAPSTAN_JOB_BACKOFF", "--job-backoff", CFG_DURATION, "2s", 10, 600000, NULL, false,
     OFF(job_backoff_ms), NULL, "first retry delay of a failed step (doubles, with jitter)"},
    {"CAPSTAN_JOB_BACKOFF_MAX", "--job-backoff-max", CFG_DURATION, "5m", 10, 3600000, NULL, false,
     OFF(job_backoff_max_ms), NULL, "longest retry delay"},
    {"CAPSTAN_JOB_MAX_ATTEMPTS", "--job-max-attempts", CFG_INT, "5", 1, 100, NULL, false,
     OFF(job_max_attempts), NULL, "attempts of a job before it fails"},
    {"CAPSTAN_JOB_EXECUTOR", "--job-executor", CFG_ENUM, "real", 0, 0, "real|noop", false,
     OFF(job_executor), NULL,
     "noop: every step succeeds at once and does nothing (measuring the job engine: "
     "bench/jobs); never in production"},
    {"CAPSTAN_EXPIRY_INTERVAL", "--expiry-interval", CFG_DURATION, "10s", 100, 3600000, NULL, false,
     OFF(expiry_interval_ms), NULL, "how often expired ephemeral environments are looked for"},
    {"CAPSTAN_GCP_PROJECT", "--gcp-project", CFG_STRING, NULL, 0, 0, NULL, false, OFF(gcp_project),
     NULL, "GCP project of dedicated GCP clusters (needed for provider gcp)"},
    {"CAPSTAN_GCP_NETWORK", "--gcp-network", CFG_STRING, "default", 0, 0, NULL, false,
     OFF(gcp_network), NULL, "VPC network of dedicated GCP clusters"},
    {"CAPSTAN_AWS_SSH_KEY_NAME", "--aws-ssh-key-name", CFG_STRING, NULL, 0, 0, NULL, false,
     OFF(aws_ssh_key_name), NULL, "EC2 key pair for the machines of dedicated AWS clusters"},
    {"CAPSTAN_VCLUSTER_CHART_VERSION", "--vcluster-chart-version", CFG_STRING, "0.30.2", 0, 0, NULL,
     false, OFF(vcluster_chart_version), NULL, "vCluster Helm chart version"},
    {"CAPSTAN_VCLUSTER_CHART_NAME", "--vcluster-chart-name", CFG_STRING, "vcluster", 0, 0, NULL,
     false, OFF(vcluster_chart_name), NULL, "vCluster Helm chart name"},
    {"CAPSTAN_VCLUSTER_CHART_REPO", "--vcluster-chart-repo", CFG_STRING, "https://charts.loft.sh",
     0, 0, NULL, false, OFF(vcluster_chart_repo), NULL, "vCluster Helm chart repository"},
    {"CAPSTAN_POD_CIDR", "--pod-cidr", CFG_STRING, "192.168.0.0/16", 0, 0, NULL, false,
     OFF(pod_cidr), NULL, "pod network of dedicated clusters"},
    {"CAPSTAN_SERVICE_CIDR", "--service-cidr", CFG_STRING, "10.96.0.0/12", 0, 0, NULL, false,
     OFF(service_cidr), NULL, "service network of dedicated clusters"},
    {"CAPSTAN_PLATFORM_SECRET", "--platform-secret", CFG_STRING, NULL, 0, 0, NULL, false,
     OFF(platform_secret), check_dns_label,
     "Secret (in each tenant namespace) with Git credentials for platform repositories"},
    {"CAPSTAN_KUBECONFIG_READER", "--kubeconfig-reader", CFG_STRING, NULL, 0, 0, NULL, false,
     OFF(kubeconfig_reader), NULL,
     "capstan's ServiceAccount (namespace/name): each tenant namespace gets a RoleBinding that "
     "lets it read the tenant's kubeconfig Secrets (see deploy/kubernetes/rbac.yaml)"},
    {"CAPSTAN_NETWORK_POLICY_ALLOW", "--network-policy-allow", CFG_STRING, NULL, 0, 0, NULL, false,
     OFF(network_policy_allow), check_namespace_list,
     "namespaces (comma-separated) whose pods may reach tenant namespaces besides the tenant's "
     "own, e.g. flux-system for vCluster platform syncs; none by default"},
    {"CAPSTAN_PLATFORM_BRANCH", "--platform-branch", CFG_STRING, "main", 0, 0, NULL, false,
     OFF(platform_branch), check_branch, "branch of tenant platform repositories"},
    {"CAPSTAN_PLATFORM_PROVIDER", "--platform-provider", CFG_ENUM, "none", 0, 0, "none|github|git",
     false, OFF(platform_provider), NULL,
     "how tenant platform repositories are made from the blueprint (none: not at all)"},
    {"CAPSTAN_PLATFORM_NAME_PATTERN", "--platform-name-pattern", CFG_STRING, "tenant-{tenant}", 0,
     0, NULL, false, OFF(platform_name_pattern), NULL,
     "name of a tenant's repository on GitHub ({tenant} is replaced)"},
    {"CAPSTAN_GITHUB_API_URL", "--github-api-url", CFG_STRING, "https://api.github.com", 0, 0, NULL,
     false, OFF(github_api_url), NULL, "GitHub REST API (GitHub Enterprise: https://HOST/api/v3)"},
    {"CAPSTAN_GITHUB_TOKEN", "--github-token", CFG_STRING, NULL, 0, 0, NULL, true,
     OFF(github_token), NULL, "GitHub token that may create repositories in the owner"},
    {"CAPSTAN_GITHUB_OWNER", "--github-owner", CFG_STRING, NULL, 0, 0, NULL, false,
     OFF(github_owner), NULL, "GitHub organization (or user) that owns tenant repositories"},
    {"CAPSTAN_GITHUB_TEMPLATE_REPO", "--github-template-repo", CFG_STRING, NULL, 0, 0, NULL, false,
     OFF(github_template_repo), NULL, "the blueprint as a template repository (owner/name)"},
    {"CAPSTAN_GITHUB_FORK_REPO", "--github-fork-repo", CFG_STRING, NULL, 0, 0, NULL, false,
     OFF(github_fork_repo), NULL, "or the blueprint to fork (owner/name); set one of the two"},
    {"CAPSTAN_GITHUB_PUBLIC", "--github-public", CFG_BOOL, "false", 0, 0, NULL, false,
     OFF(github_public), NULL, "make tenant repositories public (private by default)"},
    {"CAPSTAN_PLATFORM_BLUEPRINT_URL", "--platform-blueprint-url", CFG_STRING, NULL, 0, 0, NULL,
     false, OFF(platform_blueprint_url), NULL,
     "the blueprint repository for the git provider (https URL or path)"},
    {"CAPSTAN_PLATFORM_URL_PATTERN", "--platform-url-pattern", CFG_STRING, NULL, 0, 0, NULL, false,
     OFF(platform_url_pattern), NULL,
     "a tenant's repository for the git provider, e.g. "
     "https://git.example.com/p/tenant-{tenant}.git"},
    {"CAPSTAN_PLATFORM_GIT_USERNAME", "--platform-git-username", CFG_STRING, NULL, 0, 0, NULL,
     false, OFF(platform_git_username), NULL, "HTTPS user for the git provider"},
    {"CAPSTAN_PLATFORM_GIT_PASSWORD", "--platform-git-password", CFG_STRING, NULL, 0, 0, NULL, true,
     OFF(platform_git_password), NULL, "its password"},
    {"CAPSTAN_PLATFORM_CA_FILE", "--platform-ca-file", CFG_STRING, NULL, 0, 0, NULL, false,
     OFF(platform_ca_file), NULL, "extra CA certificates (PEM) for the platform providers"},
    {"CAPSTAN_PLATFORM_TIMEOUT", "--platform-timeout", CFG_DURATION, "60s", 1000, 3600000, NULL,
     false, OFF(platform_timeout_ms), NULL,
     "bound of making one platform repository (rate-limit waits included)"},
    {"CAPSTAN_FLEET_SOURCE", "--fleet-source", CFG_STRING, "flux-system", 0, 0, NULL, false,
     OFF(fleet_source), check_dns_label,
     "the Flux GitRepository (in flux-system) through which Flux reads the fleet repository"},
    {"CAPSTAN_TLS_CERT", "--tls-cert", CFG_STRING, NULL, 0, 0, NULL, false, OFF(tls_cert), NULL,
     "certificate chain (PEM file) to serve HTTPS with; unset: plain HTTP"},
    {"CAPSTAN_TLS_KEY", "--tls-key", CFG_STRING, NULL, 0, 0, NULL, false, OFF(tls_key), NULL,
     "private key (PEM file) of CAPSTAN_TLS_CERT"},
    {"CAPSTAN_TLS_KEY_PASSWORD", "--tls-key-password", CFG_STRING, NULL, 0, 0, NULL, true,
     OFF(tls_key_password), NULL, "password of an encrypted CAPSTAN_TLS_KEY"},
    {"CAPSTAN_MAX_HEADERS", "--max-headers", CFG_SIZE, "32KiB", 8192, 1LL << 20, NULL, false,
     OFF(max_headers), NULL,
     "memory per connection for the request line and headers (about half of it holds them; "
     "bigger requests: 431)"},
    {"CAPSTAN_REQUEST_TIMEOUT", "--request-timeout", CFG_DURATION, "60s", 1000, 3600000, NULL,
     false, OFF(request_timeout_ms), NULL,
     "a connection that sends or receives nothing for this long is closed"},
    {"CAPSTAN_MAX_CLIENT_CONNECTIONS", "--max-client-connections", CFG_INT, "64", 0, 100000, NULL,
     false, OFF(max_client_connections), NULL,
     "open connections per client address (0: no limit; raise it behind a proxy)"},
    {"CAPSTAN_RATE_LIMIT", "--rate-limit", CFG_INT, "20", 0, 1000000, NULL, false, OFF(rate_limit),
     NULL, "API requests per second per token, in this process (0: no limit; beyond: 429)"},
    {"CAPSTAN_RATE_BURST", "--rate-burst", CFG_INT, "40", 1, 1000000, NULL, false, OFF(rate_burst),
     NULL, "requests a token may make at once before CAPSTAN_RATE_LIMIT applies"},
    {"CAPSTAN_ANON_RATE_LIMIT", "--anon-rate-limit", CFG_INT, "10", 0, 1000000, NULL, false,
     OFF(anon_rate_limit), NULL,
     "API requests per second per client address without valid credentials, bursts of twice "
     "as many (0: no limit)"},
    {"CAPSTAN_AUDIT_RETENTION", "--audit-retention", CFG_DURATION, "2160h", 0, 87600LL * 3600000,
     NULL, false, OFF(audit_retention_ms), NULL, "how long audit entries are kept (0: forever)"},
    {NULL, NULL, CFG_STRING, NULL, 0, 0, NULL, false, 0, NULL, NULL},
};

static int check_listen(const char *v)
{
    const char *colon = strrchr(v, ':');
    long long port;
    if (!colon)
        return cap_error_set(CAP_EINVALID, "\"%s\" has no port (use host:port)", v);
    if (v[0] == '[' && (colon == v || colon[-1] != ']'))
        return cap_error_set(CAP_EINVALID, "\"%s\" is not [address]:port", v);
    if (cap_parse_long(&port, colon + 1, 0, 65535))
        return cap_error_set(CAP_EINVALID, "\"%s\" has no valid port (0..65535)", v);
    return 0;
}

static int check_dns_label(const char *v)
{
    if (!cap_is_dns_label(v, 63))
        return cap_error_set(CAP_EINVALID, "\"%s\" is not a DNS label", v);
    return 0;
}

static int check_branch(const char *v)
{
    if (!*v || v[0] == '-' || v[0] == '/' || strstr(v, "..") || strstr(v, "//") ||
        v[strlen(v) - 1] == '/' || strpbrk(v, " ~^:?*[\\") || !cap_str_is_clean_utf8(v))
        return cap_error_set(CAP_EINVALID, "\"%s\" is not a valid branch name", v);
    return 0;
}

static int check_version(const char *v)
{
    const char *p = v;
    if (*p++ != 'v')
        return cap_error_set(CAP_EINVALID, "\"%s\" is not a version such as v1.30.4", v);
    for (int i = 0; i < 3; i++) {
        if (!(*p >= '0' && *p <= '9'))
            return cap_error_set(CAP_EINVALID, "\"%s\" is not a version such as v1.30.4", v);
        while (*p >= '0' && *p <= '9')
            p++;
        if (i < 2 && *p++ != '.')
            return cap_error_set(CAP_EINVALID, "\"%s\" is not a version such as v1.30.4", v);
    }
    return *p ? cap_error_set(CAP_EINVALID, "\"%s\" is not a version such as v1.30.4", v) : 0;
}

static int check_namespace_list(const char *v)
{
    char ns[64];
    for (const char *p = v; *p;) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof(ns))
            return cap_error_set(CAP_EINVALID,
                                 "\"%s\" is not a comma-separated list of "
                                 "namespaces",
                                 v);
        memcpy(ns, p, n);
        ns[n] = '\0';
        if (check_dns_label(ns))
            return CAP_EINVALID;
        p += n + (p[n] == ',');
    }
    return 0;
}

static int choice_index(const char *choices, const char *v)
{
    size_t vl;
    if (!v)
        return -1;
    vl = strlen(v);
    int i = 0;
    for (const char *p = choices; p; i++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vl && strncmp(p, v, n) == 0)
            return i;
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

static int read_secret_file(const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    struct cap_buf b = CAP_BUF_INIT(64 * 1024);
    char chunk[4096];
    size_t n;
    int rc = 0;

    if (!f)
        return cap_error_set(CAP_EINVALID, "cannot read \"%s\"", path);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if ((rc = cap_buf_append(&b, chunk, n)) != 0) {
            rc = cap_error_set(CAP_EINVALID, "\"%s\" is larger than 64 KiB", path);
            break;
        }
    }
    fclose(f);
    if (rc) {
        cap_buf_free(&b);
        return rc;
    }
    while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
        b.data[--b.len] = '\0';
    *out = cap_buf_detach(&b);
    return 0;
}

/* Stores text value v (borrowed) of setting s into cfg. */
static int set_value(struct cap_config *cfg, const struct cfg_setting *s, const char *v)
{
    char *base = (char *)cfg + s->offset;
    if (!v)
        return cap_error_set(CAP_EINVALID, "has no value");
    long long n;
    size_t sz;
    bool bv;
    int idx;

    switch (s->type) {
    case CFG_STRING: {
        char **slot = (char **)(void *)base;
        if (s->check && s->check(v))
            return CAP_EINVALID;
        if (!cap_str_is_clean_utf8(v))
            return cap_error_set(CAP_EINVALID, "holds control characters");
        free(*slot);
        *slot = strdup(v);
        return *slot ? 0 : cap_error_set(CAP_ERROR, "out of memory");
    }
    case CFG_INT:
        if (cap_parse_long(&n, v, s->min, s->max))
            return CAP_EINVALID;
        *(int *)(void *)base = (int)n;
        return 0;
    case CFG_BOOL:
        if (cap_parse_bool(&bv, v))
            return CAP_EINVALID;
        *(bool *)(void *)base = bv;
        return 0;
    case CFG_SIZE:
        if (cap_parse_size(&sz, v))
            return CAP_EINVALID;
        if ((long long)sz < s->min || (long long)sz > s->max)
            return cap_error_set(CAP_EINVALID, "%zu bytes is out of range %lld..%lld", sz, s->min,
                                 s->max);
        *(size_t *)(void *)base = sz;
        return 0;
    case CFG_DURATION:
        if (cap_parse_duration_ms(&n, v))
            return CAP_EINVALID;
        if (n < s->min || n > s->max)
            return cap_error_set(CAP_EINVALID, "\"%s\" is out of range %lldms..%lldms", v, s->min,
                                 s->max);
        *(long long *)(void *)base = n;
        return 0;
    case CFG_ENUM:
        idx = choice_index(s->choices, v);
        if (idx < 0)
            return cap_error_set(CAP_EINVALID, "\"%s\" is not one of %s", v, s->choices);
        *(int *)(void *)base = idx;
        return 0;
    }
    return cap_error_set(CAP_ERROR, "unknown setting type");
}

static int apply(struct cap_config *cfg, const struct cfg_setting *s, const char *v,
                 const char *source)
{
    if (set_value(cfg, s, v) == 0)
        return 0;
    if (s->secret)
        return cap_error_set(CAP_EINVALID, "invalid %s: %s", source, cap_error_message());
    return cap_error_wrap("invalid %s", source);
}

static int load_env(struct cap_config *cfg, const struct cfg_setting *s)
{
    const char *v = getenv(s->env);
    if (s->secret) {
        char name[96];
        const char *path;
        snprintf(name, sizeof(name), "%s_FILE", s->env);
        path = getenv(name);
        if (path && *path) {
            char *content = NULL;
            int rc;
            if (v && *v)
                return cap_error_set(CAP_EINVALID, "set only one of %s and %s", s->env, name);
            if (read_secret_file(path, &content))
                return cap_error_wrap("invalid %s", name);
            rc = apply(cfg, s, content, name);
            free(content);
            return rc;
        }
    }
    if (v && *v)
        return apply(cfg, s, v, s->env);
    return 0;
}

static bool is_passthrough(const char *arg, size_t nlen, const char *const *passthrough)
{
    for (; passthrough && *passthrough; passthrough++)
        if (strlen(*passthrough) == nlen && strncmp(*passthrough, arg, nlen) == 0)
            return true;
    return false;
}

int config_load(struct cap_config *cfg, int argc, char **argv, int *rest, int *nrest)
{
    return config_load_ex(cfg, argc, argv, rest, nrest, NULL);
}

int config_load_ex(struct cap_config *cfg, int argc, char **argv, int *rest, int *nrest,
                   const char *const *passthrough)
{
    const struct cfg_setting *s;
    *nrest = 0;

    for (s = cap_settings; s->env; s++) {
        if (s->def && set_value(cfg, s, s->def))
            return cap_error_wrap("default of %s", s->env);
    }
    for (s = cap_settings; s->env; s++) {
        if (load_env(cfg, s))
            return CAP_EINVALID;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq;
        size_t nlen;
        const char *val;

        if (strncmp(arg, "--", 2) != 0 || strcmp(arg, "--help") == 0) {
            rest[(*nrest)++] = i;
            continue;
        }
        eq = strchr(arg, '=');
        nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (is_passthrough(arg, nlen, passthrough)) {
            rest[(*nrest)++] = i;
            if (!eq && i + 1 < argc)
                rest[(*nrest)++] = ++i;
            continue;
        }
        for (s = cap_settings; s->env; s++)
            if (strlen(s->flag) == nlen && strncmp(s->flag, arg, nlen) == 0)
                break;
        if (!s->env)
            return cap_error_set(CAP_EINVALID, "unknown option \"%.*s\" (see capstan --help)",
                                 (int)nlen, arg);
        if (eq) {
            val = eq + 1;
        } else if (s->type == CFG_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
            val = "true";
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            return cap_error_set(CAP_EINVALID, "option %s needs a value", s->flag);
        }
        if (apply(cfg, s, val, s->flag))
            return CAP_EINVALID;
    }
    for (s = cap_settings; s->env; s++) {
        if (s->secret && s->type == CFG_STRING) {
            char *v = *(char **)(void *)((char *)cfg + s->offset);
            if (v)
                log_add_secret(v);
        }
    }
    if (cfg->admin_token && strlen(cfg->admin_token) < 16)
        return cap_error_set(CAP_EINVALID,
                             "invalid CAPSTAN_ADMIN_TOKEN: shorter than 16 characters");
    if (!cfg->tls_cert != !cfg->tls_key)
        return cap_error_set(CAP_EINVALID, "set both CAPSTAN_TLS_CERT and CAPSTAN_TLS_KEY, or "
                                           "neither");
    return 0;
}

void config_free(struct cap_config *cfg)
{
    for (const struct cfg_setting *s = cap_settings; s->env; s++) {
        if (s->type == CFG_STRING) {
            char **slot = (char **)(void *)((char *)cfg + s->offset);
            free(*slot);
            *slot = NULL;
        }
    }
}

static const char *type_name(const struct cfg_setting *s)
{
    switch (s->type) {
    case CFG_INT:
        return "integer";
    case CFG_BOOL:
        return "boolean";
    case CFG_SIZE:
        return "size";
    case CFG_DURATION:
        return "duration";
    case CFG_ENUM:
        return "one of";
    default:
        return "string";
    }
}

static void print_type(FILE *out, const struct cfg_setting *s)
{
    fputs(type_name(s), out);
    if (s->type != CFG_ENUM)
        return;
    for (const char *p = s->choices; *p; p++) {
        if (p == s->choices)
            fputc(' ', out);
        if (*p == '|')
            fputs(", ", out);
        else
            fputc(*p, out);
    }
}

void config_print_help(FILE *out)
{
    for (const struct cfg_setting *s = cap_settings; s->env; s++) {
        fprintf(out, "  %-20s %-26s %s", s->flag, s->env, s->help);
        if (s->def)
            fprintf(out, " (default %s)", s->def);
        if (s->secret)
            fprintf(out, " [secret; or %s_FILE]", s->env);
        fputc('\n', out);
    }
}

void config_print_markdown(FILE *out)
{
    fputs("| variable | flag | type | default | meaning |\n", out);
    fputs("| --- | --- | --- | --- | --- |\n", out);
    for (const struct cfg_setting *s = cap_settings; s->env; s++) {
        fprintf(out, "| `%s`%s | `%s` | ", s->env, s->secret ? " (secret; or `_FILE`)" : "",
                s->flag);
        print_type(out, s);
        fprintf(out, " | %s%s%s | %s |\n", s->def ? "`" : "", s->def ? s->def : "",
                s->def ? "`" : "", s->help);
    }
}
