/* capstan: command line, start-up order, signal handling and orderly shutdown.
 *
 * serve: configuration -> logging -> database pool -> migrations -> HTTP server -> wait for
 * SIGTERM/SIGINT -> stop accepting, let requests finish within the deadline -> exit 0. */
#include "api/api.h"
#include "api/auth.h"
#include "app.h"
#include "cloud/platform.h"
#include "config/config.h"
#include "http/http.h"
#include "jobs/engine.h"
#include "jobs/fleet.h"
#include "jobs/hub.h"
#include "jobs/steps.h"
#include "kube/kube.h"
#include "log/log.h"
#include "metrics/sources.h"
#include "render/render.h"
#include "store/migrate.h"
#include "store/store.h"
#include "util/crypto.h"
#include "util/embedded.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/str.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct app *capstan_app;

static void usage(FILE *out)
{
    fputs("capstan: self-service API server for Kubernetes fleets\n\n"
          "usage: capstan <command> [options]\n\n"
          "commands:\n"
          "  serve      run the API server and the job workers\n"
          "  migrate    apply pending database migrations and exit\n"
          "  config     print the configuration settings as a Markdown table\n"
          "  render     write the fleet repository files of a tenant into a folder\n"
          "  version    print the version\n\n"
          "options (each also read from its environment variable; flags win):\n",
          out);
    config_print_help(out);
}

/* Applies migrations, waiting up to wait_ms for the database to come up. */
static int migrate_with_retry(struct store_pool *pool, long long wait_ms)
{
    int64_t until = cap_mono_ms() + wait_ms;
    for (;;) {
        struct store_conn *c = NULL;
        int applied = 0;
        int rc = store_acquire(pool, &c);
        if (rc == 0) {
            rc = store_migrate(c, embedded_migrations, &applied);
            store_release(c);
            if (rc == 0) {
                log_info("database schema is current (%d migrations applied now)", applied);
                return 0;
            }
        }
        if (rc != CAP_EUNAVAILABLE || cap_mono_ms() >= until)
            return rc;
        log_warn("waiting for the database: %s", cap_error_message());
        cap_sleep_ms(1000);
    }
}

static int cmd_migrate(const struct cap_config *cfg)
{
    struct store_pool *pool = NULL;
    struct store_conn *c = NULL;
    int applied = 0, rc;

    if ((rc = store_pool_create(&pool, cfg->database_url, 1, cfg->db_timeout_ms)) != 0)
        goto cleanup;
    if ((rc = store_acquire(pool, &c)) != 0)
        goto cleanup;
    rc = store_migrate(c, embedded_migrations, &applied);
    store_release(c);
    if (rc == 0)
        printf("applied %d migrations; the schema is current\n", applied);
cleanup:
    store_pool_destroy(pool);
    if (rc)
        fprintf(stderr, "capstan: migrate failed: %s\n", cap_error_message());
    return rc ? 1 : 0;
}

static void render_options_from(struct render_options *ro, const struct cap_config *cfg)
{
    memset(ro, 0, sizeof(*ro));
    ro->mgmt_cluster = cfg->mgmt_cluster;
    ro->templates_dir = cfg->templates_dir;
    ro->gcp_project = cfg->gcp_project;
    ro->gcp_network = cfg->gcp_network;
    ro->aws_ssh_key_name = cfg->aws_ssh_key_name;
    ro->vcluster_chart_version = cfg->vcluster_chart_version;
    ro->vcluster_chart_name = cfg->vcluster_chart_name;
    ro->vcluster_chart_repo = cfg->vcluster_chart_repo;
    ro->pod_cidr = cfg->pod_cidr;
    ro->service_cidr = cfg->service_cidr;
    ro->platform_secret = cfg->platform_secret;
    ro->network_policy_allow = cfg->network_policy_allow;
    ro->kubeconfig_reader = cfg->kubeconfig_reader;
    ro->platform_branch = cfg->platform_branch;
    ro->fleet_source = cfg->fleet_source;
}

/* The management cluster's client from CAPSTAN_KUBECONFIG or the pod's service account;
 * *out stays NULL (GitOps only) when neither is configured. */
static int kube_open(struct kube_client **out, const struct cap_config *cfg)
{
    struct kube_config *kc = NULL;
    struct kube_options ko = {0};
    int rc = 0;

    *out = NULL;
    if (cfg->kubeconfig) {
        struct kube_config_options o = {0};
        o.context = cfg->kube_context;
        o.allow_insecure = cfg->kube_insecure;
        if ((rc = kube_config_load_file(&kc, cfg->kubeconfig, &o)) != 0)
            return cap_error_wrap("CAPSTAN_KUBECONFIG");
    } else if (cfg->kube_in_cluster) {
        if ((rc = kube_config_in_cluster(&kc, NULL)) != 0)
            return cap_error_wrap("CAPSTAN_KUBE_IN_CLUSTER");
    } else {
        log_warn("no Kubernetes API configured (CAPSTAN_KUBECONFIG): GitOps only; jobs do not "
                 "wait for clusters and kubeconfigs cannot be read");
        return 0;
    }
    ko.timeout_ms = (long)cfg->kube_timeout_ms;
    rc = kube_client_new(out, kc, &ko);
    if (rc == 0)
        log_info("management cluster API at %s", kc->server);
    kube_config_free(kc);
    return rc;
}

/* The configuration variable behind a field of struct platform_options. */
static const char *platform_setting_name(const char *field)
{
    static const char *const names[][2] = {
        {"api_url", "CAPSTAN_GITHUB_API_URL"},
        {"token", "CAPSTAN_GITHUB_TOKEN"},
        {"owner", "CAPSTAN_GITHUB_OWNER"},
        {"template_repo", "CAPSTAN_GITHUB_TEMPLATE_REPO"},
        {"fork_repo", "CAPSTAN_GITHUB_FORK_REPO"},
        {"name_pattern", "CAPSTAN_PLATFORM_NAME_PATTERN"},
        {"blueprint_url", "CAPSTAN_PLATFORM_BLUEPRINT_URL"},
        {"blueprint_branch", "CAPSTAN_PLATFORM_BRANCH"},
        {"url_pattern", "CAPSTAN_PLATFORM_URL_PATTERN"},
        {"username", "CAPSTAN_PLATFORM_GIT_USERNAME"},
        {"password", "CAPSTAN_PLATFORM_GIT_PASSWORD"},
        {"ca_file", "CAPSTAN_PLATFORM_CA_FILE"},
        {"cache_dir", "CAPSTAN_DATA_DIR"},
        {"timeout_ms", "CAPSTAN_PLATFORM_TIMEOUT"},
    };
    for (size_t i = 0; field && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(names[i][0], field) == 0)
            return names[i][1];
    return "CAPSTAN_PLATFORM_PROVIDER";
}

static int cmd_serve(struct cap_config *cfg)
{
    struct app app = {0};
    struct http_server *srv = NULL;
    struct http_server_options ho = {0};
    struct gitops_options go = {0};
    struct gitops_op seed[2] = {{0}};
    char seed_paths[2][128];
    char cache_dir[1100];
    struct jobs_runtime rt = {0};
    struct jobs_kube kube = {0};
    struct platform_options po = {0};
    char platform_cache[1100];
    struct jobs_engine_options eo = {0};
    sigset_t sigs;
    int sig = 0, rc;
    bool clean = true;

    app.cfg = cfg;
    app.started_ms = cap_now_ms();
    render_options_from(&app.render, cfg);
    app.defaults.kubernetes_version = cfg->default_k8s_version;
    capstan_app = &app;
    pthread_mutex_init(&rt.lock, NULL);

    /* Signals go to this thread only (sigwait below); every thread started later inherits the
     * mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((rc = cap_uuid_v4(app.instance)) != 0 || (rc = cap_mkdirs(cfg->data_dir, 0700)) != 0)
        goto fail;
    store_jobs_set_max_attempts(cfg->job_max_attempts);
    if ((rc = store_pool_create(&app.pool, cfg->database_url, cfg->db_pool, cfg->db_timeout_ms)))
        goto fail;
    if (cfg->auto_migrate && (rc = migrate_with_retry(app.pool, 60000)) != 0)
        goto fail;
    if ((rc = jobs_hub_create(&app.hub, app.pool)) != 0)
        goto fail;

    rt.pool = app.pool;
    rt.instance = app.instance;
    rt.render = &app.render;
    if ((rc = kube_open(&kube.client, cfg)) != 0)
        goto fail;
    kube.flux_namespace = cfg->flux_namespace;
    kube.flux_source = cfg->fleet_source;
    kube.flux_kustomization = "tenants"; /* the name render gives clusters/<mgmt>/tenants.yaml */
    kube.ready_timeout_ms = cfg->ready_timeout_ms;
    kube.poll_ms = cfg->ready_poll_ms;
    rt.kube = &kube;
    app.kube = &kube;
    po.provider = (enum platform_provider)cfg->platform_provider;
    po.api_url = cfg->github_api_url;
    po.token = cfg->github_token;
    po.owner = cfg->github_owner;
    po.template_repo = cfg->github_template_repo;
    po.fork_repo = cfg->github_fork_repo;
    po.public_repos = cfg->github_public;
    po.name_pattern = cfg->platform_name_pattern;
    po.blueprint_url = cfg->platform_blueprint_url;
    po.blueprint_branch = cfg->platform_branch;
    po.url_pattern = cfg->platform_url_pattern;
    po.username = cfg->platform_git_username;
    po.password = cfg->platform_git_password;
    snprintf(platform_cache, sizeof(platform_cache), "%s/platform", cfg->data_dir);
    po.cache_dir = platform_cache;
    po.ca_file = cfg->platform_ca_file;
    po.timeout_ms = cfg->platform_timeout_ms;
    if ((rc = platform_options_check(&po)) != 0) {
        cap_error_wrap("invalid %s", platform_setting_name(cap_error_field()));
        goto fail;
    }
    rt.platform = &po;
    if (cfg->fleet_repo) {
        snprintf(cache_dir, sizeof(cache_dir), "%s/fleet", cfg->data_dir);
        if ((rc = jobs_fleet_seed(seed, seed_paths, &app.render)) != 0)
            goto fail;
        go.url = cfg->fleet_repo;
        go.branch = cfg->fleet_branch;
        go.cache_dir = cache_dir;
        go.author_name = cfg->git_author_name;
        go.author_email = cfg->git_author_email;
        go.username = cfg->git_username;
        go.password = cfg->git_password;
        go.token = cfg->git_token;
        go.ssh_key_path = cfg->git_ssh_key;
        go.ssh_passphrase = cfg->git_ssh_passphrase;
        go.ca_file = cfg->git_ca_file;
        go.ssh_known_hosts = cfg->git_known_hosts;
        go.max_push_attempts = cfg->git_push_attempts;
        go.timeout_ms = cfg->git_timeout_ms;
        go.finalize = jobs_fleet_finalize;
        go.finalize_ctx = &app.render;
        go.seed = seed;
        go.nseed = 2;
        rt.fleet_options = &go;
        struct gitops_repo *fleet;
        if (jobs_runtime_fleet(&rt, &fleet) != 0)
            log_warn("%s; jobs will try again", cap_error_message());
    } else {
        log_warn("CAPSTAN_FLEET_REPO is not set: jobs cannot commit until it is");
    }

    eo.pool = app.pool;
    eo.conninfo = cfg->database_url;
    eo.instance = app.instance;
    eo.workers = cfg->workers;
    eo.lease_ms = cfg->job_lease_ms;
    eo.poll_ms = cfg->job_poll_ms;
    eo.backoff_base_ms = cfg->job_backoff_ms;
    eo.backoff_max_ms = cfg->job_backoff_max_ms;
    eo.expiry_every_ms = cfg->expiry_interval_ms;
    eo.run_step = cfg->job_executor == 1 ? jobs_noop_step : jobs_run_step;
    if (cfg->job_executor == 1)
        log_warn("CAPSTAN_JOB_EXECUTOR=noop: job steps do nothing (benchmarks only)");
    eo.step_ctx = &rt;
    eo.hub = app.hub;
    if ((rc = jobs_engine_start(&app.engine, &eo)) != 0)
        goto fail;

    ho.listen = cfg->listen;
    ho.threads = cfg->http_threads;
    ho.max_body = cfg->max_body;
    ho.routes = api_routes(&ho.nroutes);
    if ((rc = api_security_start(&ho, cfg, app.pool)) != 0)
        goto fail;
    ho.on_complete = api_metrics_on_complete;
    if ((rc = http_server_start(&srv, &ho)) != 0)
        goto fail;
    struct metrics_sources ms = {app.pool, cfg->db_pool, app.engine, srv, &rt, app.started_ms};
    if (metrics_sources_start(&ms) != 0)
        log_warn("metrics: %s", cap_error_message());
    log_write(LOG_INFO,
              json_pack("{s:s,s:i,s:s,s:s}", "listen", cfg->listen, "port",
                        (int)http_server_port(srv), "version", CAPSTAN_VERSION, "instance",
                        app.instance),
              "listening on port %u", http_server_port(srv));

    if (sigwait(&sigs, &sig) != 0)
        sig = SIGTERM;
    log_info("received %s; stopping (deadline %lld ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
             cfg->shutdown_timeout_ms);
    http_server_stop(srv, cfg->shutdown_timeout_ms);
    api_security_stop(cfg->shutdown_timeout_ms);
    metrics_sources_stop();
    clean = jobs_engine_stop(app.engine, cfg->shutdown_timeout_ms);
    if (!clean) {
        /* a job thread is still inside a step; leave its resources be and go */
        log_info("stopped");
        return 0;
    }
    jobs_hub_destroy(app.hub);
    gitops_close(rt.fleet);
    kube_client_free(kube.client);
    pthread_mutex_destroy(&rt.lock);
    free((void *)seed[0].content);
    free((void *)seed[1].content);
    store_pool_destroy(app.pool);
    log_info("stopped");
    capstan_app = NULL;
    return 0;
fail:
    log_error("cannot start: %s", cap_error_message());
    fprintf(stderr, "capstan: cannot start: %s\n", cap_error_message());
    api_security_stop(2000);
    if (app.engine)
        jobs_engine_stop(app.engine, 5000);
    jobs_hub_destroy(app.hub);
    gitops_close(rt.fleet);
    kube_client_free(kube.client);
    pthread_mutex_destroy(&rt.lock);
    free((void *)seed[0].content);
    free((void *)seed[1].content);
    store_pool_destroy(app.pool);
    capstan_app = NULL;
    return 1;
}

int main(int argc, char **argv)
{
    struct cap_config cfg = {0};
    const char *cmd = argc > 1 ? argv[1] : NULL;
    int rest[64], nrest = 0, rc = 0;

    if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return cmd ? 0 : 2;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("capstan %s\n", CAPSTAN_VERSION);
        return 0;
    }
    if (strcmp(cmd, "config") == 0) {
        config_print_markdown(stdout);
        return 0;
    }
    if (strcmp(cmd, "serve") != 0 && strcmp(cmd, "migrate") != 0 && strcmp(cmd, "render") != 0) {
        fprintf(stderr, "capstan: unknown command \"%s\" (see capstan --help)\n", cmd);
        return 2;
    }
    if (argc - 1 > (int)(sizeof(rest) / sizeof(rest[0]))) {
        fprintf(stderr, "capstan: too many arguments\n");
        return 2;
    }
    if (strcmp(cmd, "render") == 0) {
        /* the rendering settings come from the configuration table, the rest is the CLI's */
        static const char *const render_flags[] = {"--tenant", "--environment", "--out", NULL};
        char *args[66];
        int nargs = 0;
        struct render_options ro;
        if (config_load_ex(&cfg, argc - 1, argv + 1, rest, &nrest, render_flags) != 0) {
            fprintf(stderr, "capstan render: %s\n", cap_error_message());
            config_free(&cfg);
            return 2;
        }
        args[nargs++] = argv[1];
        for (int i = 0; i < nrest; i++)
            args[nargs++] = argv[1 + rest[i]];
        args[nargs] = NULL;
        render_options_from(&ro, &cfg);
        rc = render_cli_main(nargs, args, &ro);
        config_free(&cfg);
        return rc;
    }
    if (config_load(&cfg, argc - 1, argv + 1, rest, &nrest) != 0) {
        fprintf(stderr, "capstan: %s\n", cap_error_message());
        config_free(&cfg);
        return 2;
    }
    for (int i = 0; i < nrest; i++) {
        if (strcmp(argv[1 + rest[i]], "--help") == 0) {
            usage(stdout);
            config_free(&cfg);
            return 0;
        }
        fprintf(stderr, "capstan: unexpected argument \"%s\" (see capstan --help)\n",
                argv[1 + rest[i]]);
        config_free(&cfg);
        return 2;
    }
    if (!cfg.database_url) {
        fprintf(stderr, "capstan: CAPSTAN_DATABASE_URL is not set (a PostgreSQL connection "
                        "string, for example postgresql://capstan@localhost/capstan)\n");
        config_free(&cfg);
        return 2;
    }
    log_init(cfg.log_level, cfg.log_format);
    if (strcmp(cmd, "serve") == 0)
        rc = cmd_serve(&cfg);
    else
        rc = cmd_migrate(&cfg);
    config_free(&cfg);
    log_clear_secrets();
    return rc;
}
