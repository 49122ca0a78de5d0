/* capstan: a command line around platform_repo_ensure (server/cloud) for black-box tests.
 *
 *   platform_repo_driver --provider github|git|none --tenant T [options]
 * Options (github): --api-url U, --owner O, --template OWNER/NAME | --fork OWNER/NAME, --public,
 *   --name-pattern P. (git): --blueprint-url U, --blueprint-branch B, --url-pattern P,
 *   --username U, --cache-dir D. (both): --ca-file F, --timeout-ms N, --log-level L,
 *   --threads N (N calls for the same tenant at once, from N threads), --check (only
 *   platform_options_check, no network).
 * Secrets come from the environment only (never argv): PLATFORM_TOKEN (github) and
 * PLATFORM_PASSWORD (git).
 * Output: one JSON line per call, {"url": ..., "ms": N} or
 * {"error": code, "errorName": ..., "message": ..., "field": ..., "ms": N}.
 * Exit 0 if every call succeeded, 1 if one failed, 2 on usage errors. */
#include "cloud/platform.h"
#include "log/log.h"
#include "util/error.h"
#include "util/str.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 32

struct call {
    pthread_t thread;
    int rc;
    char url[PLATFORM_URL_MAX];
    char message[CAP_ERROR_MESSAGE_MAX];
    char field[CAP_ERROR_FIELD_MAX];
    long long ms;
};

static struct platform_options opt;
static const char *tenant;
static bool check_only;
static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cv = PTHREAD_COND_INITIALIZER;
static bool go;

static void *run(void *arg)
{
    struct call *c = arg;
    int64_t t0;

    pthread_mutex_lock(&start_mu);
    while (!go)
        pthread_cond_wait(&start_cv, &start_mu);
    pthread_mutex_unlock(&start_mu);
    t0 = cap_mono_ms();
    c->rc = check_only ? platform_options_check(&opt)
                       : platform_repo_ensure(&opt, tenant, c->url, sizeof(c->url));
    c->ms = cap_mono_ms() - t0;
    if (c->rc) {
        cap_strlcpy(c->message, cap_error_message(), sizeof(c->message));
        cap_strlcpy(c->field, cap_error_field() ? cap_error_field() : "", sizeof(c->field));
    }
    return NULL;
}

static void print_result(const struct call *c)
{
    json_t *o;
    char *s;
    if (c->rc == 0)
        o = json_pack("{s:s, s:I}", "url", c->url, "ms", (json_int_t)c->ms);
    else
        o = json_pack("{s:i, s:s, s:s, s:s, s:I}", "error", c->rc, "errorName",
                      cap_error_name(c->rc), "message", c->message, "field", c->field, "ms",
                      (json_int_t)c->ms);
    s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    printf("%s\n", s ? s : "{\"error\":-1,\"message\":\"out of memory\"}");
    fflush(stdout);
    free(s);
    json_decref(o);
}

static int usage(const char *why)
{
    fprintf(stderr, "platform_repo_driver: %s (see the comment at the top of the source)\n", why);
    return 2;
}

int main(int argc, char **argv)
{
    struct call calls[MAX_THREADS];
    const char *provider = NULL;
    long long threads = 1;
    int level = LOG_INFO, failed = 0;

    memset(calls, 0, sizeof(calls));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(a, "--public") == 0) {
            opt.public_repos = true;
            takes = false;
        } else if (strcmp(a, "--check") == 0) {
            check_only = true;
            takes = false;
        } else if (!v) {
            return usage("an option lacks its value");
        } else if (strcmp(a, "--provider") == 0) {
            provider = v;
        } else if (strcmp(a, "--tenant") == 0) {
            tenant = v;
        } else if (strcmp(a, "--api-url") == 0) {
            opt.api_url = v;
        } else if (strcmp(a, "--owner") == 0) {
            opt.owner = v;
        } else if (strcmp(a, "--template") == 0) {
            opt.template_repo = v;
        } else if (strcmp(a, "--fork") == 0) {
            opt.fork_repo = v;
        } else if (strcmp(a, "--name-pattern") == 0) {
            opt.name_pattern = v;
        } else if (strcmp(a, "--blueprint-url") == 0) {
            opt.blueprint_url = v;
        } else if (strcmp(a, "--blueprint-branch") == 0) {
            opt.blueprint_branch = v;
        } else if (strcmp(a, "--url-pattern") == 0) {
            opt.url_pattern = v;
        } else if (strcmp(a, "--username") == 0) {
            opt.username = v;
        } else if (strcmp(a, "--cache-dir") == 0) {
            opt.cache_dir = v;
        } else if (strcmp(a, "--ca-file") == 0) {
            opt.ca_file = v;
        } else if (strcmp(a, "--timeout-ms") == 0) {
            if (cap_parse_long(&opt.timeout_ms, v, -1000000000, 1000000000))
                return usage("bad --timeout-ms");
        } else if (strcmp(a, "--threads") == 0) {
            if (cap_parse_long(&threads, v, 1, MAX_THREADS))
                return usage("bad --threads");
        } else if (strcmp(a, "--log-level") == 0) {
            if ((level = log_level_parse(v)) < 0)
                return usage("bad --log-level");
        } else {
            return usage("unknown option");
        }
        if (takes)
            i++;
    }
    log_init(level, LOG_FORMAT_JSON);
    if (!provider)
        return usage("--provider is required");
    {
        enum platform_provider p;
        if (platform_provider_parse(&p, provider) != 0)
            return usage(cap_error_message());
        opt.provider = p;
    }
    opt.token = getenv("PLATFORM_TOKEN");
    opt.password = getenv("PLATFORM_PASSWORD");

    for (long long i = 0; i < threads; i++)
        if (pthread_create(&calls[i].thread, NULL, run, &calls[i]) != 0)
            return usage("cannot start a thread");
    pthread_mutex_lock(&start_mu);
    go = true;
    pthread_cond_broadcast(&start_cv);
    pthread_mutex_unlock(&start_mu);
    for (long long i = 0; i < threads; i++) {
        pthread_join(calls[i].thread, NULL);
        print_result(&calls[i]);
        failed |= calls[i].rc != 0;
    }
    return failed ? 1 : 0;
}
