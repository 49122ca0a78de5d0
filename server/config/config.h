/* capstan: configuration.
 *
 * One table (config.c) drives defaults, environment variables, command-line flags, --help,
 * validation and the README's configuration section. Flags override the environment. Settings
 * marked secret may also be read from a file named by `<VARIABLE>_FILE`; their values are
 * registered with the logger for redaction and never printed. */
#ifndef CAPSTAN_CONFIG_CONFIG_H
#define CAPSTAN_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct cap_config {
    char *database_url;
    char *listen;
    int http_threads;
    int workers;
    int db_pool;
    char *fleet_repo;
    char *fleet_branch;
    char *mgmt_cluster;
    char *admin_token;
    char *kubeconfig;
    char *kube_context;
    bool kube_in_cluster;
    bool kube_insecure;
    long long kube_timeout_ms;
    char *flux_namespace;
    long long ready_timeout_ms;
    long long ready_poll_ms;
    int log_level;
    int log_format;
    size_t max_body;
    bool auto_migrate;
    long long shutdown_timeout_ms;
    long long db_timeout_ms;
    char *data_dir;
    char *templates_dir;
    char *default_k8s_version;
    /* the fleet repository's credentials and commits */
    char *git_username;
    char *git_password;
    char *git_token;
    char *git_ssh_key;
    char *git_ssh_passphrase;
    char *git_ca_file;
    char *git_known_hosts;
    char *git_author_name;
    char *git_author_email;
    long long git_timeout_ms;
    int git_push_attempts;
    /* jobs */
    long long job_lease_ms;
    long long job_poll_ms;
    long long job_backoff_ms;
    long long job_backoff_max_ms;
    int job_max_attempts;
    int job_executor; /* 0 real, 1 noop */
    long long expiry_interval_ms;
    /* rendering */
    char *gcp_project;
    char *gcp_network;
    char *aws_ssh_key_name;
    char *vcluster_chart_version;
    char *vcluster_chart_name;
    char *vcluster_chart_repo;
    char *pod_cidr;
    char *service_cidr;
    char *platform_secret;
    char *network_policy_allow;
    char *kubeconfig_reader;
    /* tenant platform repositories */
    int platform_provider;
    char *platform_name_pattern;
    char *github_api_url;
    char *github_token;
    char *github_owner;
    char *github_template_repo;
    char *github_fork_repo;
    bool github_public;
    char *platform_blueprint_url;
    char *platform_url_pattern;
    char *platform_git_username;
    char *platform_git_password;
    char *platform_ca_file;
    long long platform_timeout_ms;
    char *platform_branch;
    char *fleet_source;
    /* security: TLS, limits, rate limits, audit */
    char *tls_cert;
    char *tls_key;
    char *tls_key_password;
    size_t max_headers;
    long long request_timeout_ms;
    int max_client_connections;
    int rate_limit;
    int rate_burst;
    int anon_rate_limit;
    long long audit_retention_ms;
};

enum cfg_type { CFG_STRING, CFG_INT, CFG_BOOL, CFG_SIZE, CFG_DURATION, CFG_ENUM };

struct cfg_setting {
    const char *env;  /* CAPSTAN_... */
    const char *flag; /* --... */
    enum cfg_type type;
    const char *def;     /* default as text; NULL for none */
    long long min, max;  /* bounds for ints, sizes and durations (ms) */
    const char *choices; /* CFG_ENUM: names separated by '|', stored as their index */
    bool secret;
    size_t offset;
    int (*check)(const char *value); /* extra validation of a string, or NULL */
    const char *help;
};

/* The table, ended by an entry whose env is NULL. */
extern const struct cfg_setting cap_settings[];

/* Fills cfg from defaults, the environment and argv (flags of the table only; other arguments
 * are left for the caller and their positions put into rest[], *nrest). On error returns
 * CAP_EINVALID with a one-line message in the last error that names the variable or flag.
 * cfg must be zeroed before; free it with config_free even on error. */
int config_load(struct cap_config *cfg, int argc, char **argv, int *rest, int *nrest);
/* Like config_load; flags named in passthrough (NULL-ended) are left for the caller too,
 * with their value: "--flag value" puts both positions into rest[]. */
int config_load_ex(struct cap_config *cfg, int argc, char **argv, int *rest, int *nrest,
                   const char *const *passthrough);
void config_free(struct cap_config *cfg);

/* Prints the settings as an aligned list (for --help) or as a Markdown table (for the README). */
void config_print_help(FILE *out);
void config_print_markdown(FILE *out);

#endif
