/* capstan: bench/gitops_bench, the engine side of bench/gitops (see bench/README.md).
 *
 *   gitops_bench --url REPO --cache DIR [--n 1000] [--threads 8] [--dump DIR] [--jobs FILE]
 *                [--author-name capstan] [--author-email capstan@localhost]
 *
 * Renders N tenant onboardings (t0001, t0002, ...) with the real render code (jobs_plan_make for
 * a tenant.create job: the files of render_tenant plus the paths the job clears), turns each into
 * one gitops change exactly as the job's git-push step does (server/jobs/steps.c plan_ops: clears,
 * removes, then puts; summary "tenant.create <t>", its own job id and actor), opens the fleet
 * repository REPO with the production finalize hook and seed (jobs_fleet_finalize,
 * jobs_fleet_seed), and submits the N changes from W threads at once, each change its own
 * gitops_submit, the way capstan's workers do. Rendering and opening are not timed; the clock
 * runs from releasing the threads to the last submit returning.
 *
 * --dump DIR writes what the command-line reference (bench/gitops_reference.sh) needs to make
 * the same commits: DIR/seed/{files/,message} and per change DIR/<00001>/{files/,delete,message,
 * tenant}, files/ holding the change's PUT files at their repository paths, delete its DELETE
 * paths, message the commit message gitops_message_build makes for that change alone.
 * --jobs FILE writes the job ids, one a line, in change order.
 *
 * Prints one JSON line (changes, threads, seconds, changes_per_s, commits, push_attempts, ...).
 * Exit 0 when every change landed in a commit of its own round, 1 when one failed, 2 on usage
 * errors, 3 when rendering, dumping or opening failed. */
#include "gitops/gitops.h"
#include "jobs/fleet.h"
#include "jobs/kinds.h"
#include "jobs/plan.h"
#include "log/log.h"
#include "render/render.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/str.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define BENCH_N_MAX       100000
#define BENCH_THREADS_MAX 256

struct bench_change {
    char tenant[24];
    char id[37];
    char summary[64];
    char actor[64];
    struct jobs_plan plan;
    struct gitops_op *ops;
    size_t nops;
    struct gitops_change change;
    struct gitops_result result;
    int rc;
    char error[CAP_ERROR_MESSAGE_MAX];
    int64_t ns;      /* how long its gitops_submit took */
    int64_t done_ns; /* when it returned (cap_mono_ns) */
};

static struct gitops_repo *repo;
static struct bench_change *changes;
static size_t nchanges, next_change;
static int nthreads, nready;
static bool go;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

/* The API's Tenant object of tenant i (1-based): one to three owners, a quota and labels that
 * vary with i, as an onboarding catalog would send them. */
static json_t *tenant_spec(size_t i, const char *name)
{
    static const char *const tiers[] = {"bronze", "silver", "gold"};
    static const char *const cpus[] = {"4", "8", "16", "32"};
    static const char *const mems[] = {"16Gi", "32Gi", "64Gi", "128Gi"};
    char display[64], owner[64], cc[16];
    json_t *owners = json_array();
    size_t nowners = 1 + i % 3;

    for (size_t k = 0; k < nowners; k++) {
        snprintf(owner, sizeof(owner), "%s-owner%zu@example.com", name, k + 1);
        json_array_append_new(owners, json_string(owner));
    }
    snprintf(display, sizeof(display), "Team %s", name);
    snprintf(cc, sizeof(cc), "%zu", 4000 + i % 97);
    return json_pack("{s:s,s:s,s:o,s:s,s:{s:s,s:s,s:i},s:{s:s,s:s,s:s},s:n}", "name", name,
                     "displayName", display, "owners", owners, "isolation", "vcluster", "quota",
                     "cpu", cpus[i % 4], "memory", mems[i % 4], "environments", (int)(1 + i % 8),
                     "labels", "cost-center", cc, "tier", tiers[i % 3], "team", name,
                     "platformRepository");
}

/* Renders change i and builds its ops as plan_ops does (borrowing from the plan). */
static int change_make(struct bench_change *c, size_t i, const struct render_options *ro)
{
    json_t *tenant = NULL, *v;
    size_t k, n = 0;
    int rc;

    snprintf(c->tenant, sizeof(c->tenant), "t%04zu", i);
    snprintf(c->summary, sizeof(c->summary), "%s %s", jobs_kind_name(JOB_TENANT_CREATE), c->tenant);
    snprintf(c->actor, sizeof(c->actor), "%s-owner1@example.com", c->tenant);
    if ((rc = cap_uuid_v4(c->id)) != 0)
        return rc;
    if (!(tenant = tenant_spec(i, c->tenant)))
        return cap_error_set(CAP_ERROR, "out of memory");
    rc = jobs_plan_make(&c->plan, JOB_TENANT_CREATE, tenant, NULL, ro);
    json_decref(tenant);
    if (rc)
        return rc;
    c->ops = calloc(json_array_size(c->plan.clears) + json_array_size(c->plan.removes) +
                        c->plan.files.n + 1,
                    sizeof(*c->ops));
    if (!c->ops)
        return cap_error_set(CAP_ERROR, "out of memory");
    json_array_foreach(c->plan.clears, k, v) c->ops[n++] =
        (struct gitops_op){GITOPS_DELETE, json_string_value(v), NULL, 0};
    json_array_foreach(c->plan.removes, k, v) c->ops[n++] =
        (struct gitops_op){GITOPS_DELETE, json_string_value(v), NULL, 0};
    for (k = 0; k < c->plan.files.n; k++)
        c->ops[n++] =
            (struct gitops_op){GITOPS_PUT, c->plan.files.items[k].path,
                               c->plan.files.items[k].content, c->plan.files.items[k].len};
    c->nops = n;
    c->change = (struct gitops_change){c->id, c->summary, c->actor, c->ops, c->nops};
    return 0;
}

/* mkdir -p of the folders of path (not its last segment). */
static int make_parents(const char *path)
{
    char buf[GITOPS_PATH_MAX * 2];
    if (cap_strlcpy(buf, path, sizeof(buf)) >= sizeof(buf))
        return cap_error_set(CAP_EINVALID, "path too long");
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return cap_error_set(CAP_ERROR, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    return 0;
}

static int write_file(const char *path, const char *content, size_t len)
{
    FILE *f;
    int rc;
    if ((rc = make_parents(path)) != 0)
        return rc;
    if (!(f = fopen(path, "wb")))
        return cap_error_set(CAP_ERROR, "cannot write %s: %s", path, strerror(errno));
    rc = (len && fwrite(content, 1, len, f) != len) ? -1 : 0;
    if (fclose(f) != 0 || rc)
        return cap_error_set(CAP_ERROR, "cannot write %s", path);
    return 0;
}

/* DIR/<name>/files/<path> for each PUT, DIR/<name>/delete, DIR/<name>/message. */
static int dump_one(const char *dir, const char *name, const struct gitops_change *c)
{
    char path[GITOPS_PATH_MAX * 2], *message = NULL, *dels = NULL;
    size_t dlen = 0, dcap = 1;
    const struct gitops_change *one[1] = {c};
    int rc;

    for (size_t i = 0; i < c->nops; i++)
        if (c->ops[i].kind == GITOPS_DELETE)
            dcap += strlen(c->ops[i].path) + 1;
    if (!(dels = malloc(dcap)))
        return cap_error_set(CAP_ERROR, "out of memory");
    for (size_t i = 0; i < c->nops; i++) {
        const struct gitops_op *op = &c->ops[i];
        if (op->kind == GITOPS_DELETE) {
            size_t n = strlen(op->path);
            memcpy(dels + dlen, op->path, n);
            dels[dlen + n] = '\n';
            dlen += n + 1;
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s/files/%s", dir, name, op->path);
        if ((rc = write_file(path, op->content, op->len)) != 0)
            goto cleanup;
    }
    snprintf(path, sizeof(path), "%s/%s/delete", dir, name);
    if ((rc = write_file(path, dels, dlen)) != 0)
        goto cleanup;
    /* the seed's commit carries no change: the message of an empty batch */
    if ((rc = gitops_message_build(&message, one, c->job_id ? 1 : 0)) != 0)
        goto cleanup;
    snprintf(path, sizeof(path), "%s/%s/message", dir, name);
    rc = write_file(path, message, strlen(message));
cleanup:
    free(message);
    free(dels);
    return rc;
}

static int dump_all(const char *dir, const struct gitops_op *seed, size_t nseed)
{
    struct gitops_change s = {NULL, NULL, NULL, seed, nseed};
    char name[24], path[GITOPS_PATH_MAX];
    int rc;

    if ((rc = dump_one(dir, "seed", &s)) != 0)
        return rc;
    for (size_t i = 0; i < nchanges; i++) {
        snprintf(name, sizeof(name), "%05zu", i + 1);
        if ((rc = dump_one(dir, name, &changes[i].change)) != 0)
            return rc;
        char line[32];
        int len = snprintf(line, sizeof(line), "%s\n", changes[i].tenant);
        snprintf(path, sizeof(path), "%s/%s/tenant", dir, name);
        if ((rc = write_file(path, line, (size_t)len)) != 0)
            return rc;
    }
    return 0;
}

static int write_jobs(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return cap_error_set(CAP_ERROR, "cannot write %s: %s", path, strerror(errno));
    for (size_t i = 0; i < nchanges; i++)
        fprintf(f, "%s\n", changes[i].id);
    if (fclose(f) != 0)
        return cap_error_set(CAP_ERROR, "cannot write %s", path);
    return 0;
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    nready++;
    pthread_cond_broadcast(&cv);
    while (!go)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    for (;;) {
        struct bench_change *c;
        int64_t t0;
        pthread_mutex_lock(&mu);
        c = next_change < nchanges ? &changes[next_change++] : NULL;
        pthread_mutex_unlock(&mu);
        if (!c)
            break;
        t0 = cap_mono_ns();
        c->rc = gitops_submit(repo, &c->change, &c->result);
        c->done_ns = cap_mono_ns();
        c->ns = c->done_ns - t0;
        if (c->rc)
            cap_strlcpy(c->error, cap_error_message(), sizeof(c->error));
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int usage(const char *msg)
{
    fprintf(stderr, "gitops_bench: %s\n", msg);
    fprintf(stderr, "usage: gitops_bench --url REPO --cache DIR [--n N] [--threads W] [--dump DIR]"
                    " [--jobs FILE] [--author-name NAME] [--author-email EMAIL]\n");
    return 2;
}

static int fail(const char *what)
{
    json_t *e = json_pack("{s:s,s:s}", "error", cap_error_message(), "during", what);
    char *s = json_dumps(e, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(e);
    return 3;
}

/* Changes per second over the first and the last tenth of the changes to finish (the growth of
 * the cost of a change with the number of tenants already in the repository). */
static void tenth_rates(int64_t start_ns, double *first, double *last)
{
    int64_t *done = calloc(nchanges + 1, sizeof(*done));
    size_t k = nchanges / 10;

    *first = *last = 0.0;
    if (!done || k == 0) {
        free(done);
        return;
    }
    for (size_t i = 0; i < nchanges; i++)
        done[i] = changes[i].done_ns - start_ns;
    qsort(done, nchanges, sizeof(*done), cmp_i64);
    if (done[k - 1] > 0)
        *first = (double)k / ((double)done[k - 1] / 1e9);
    if (done[nchanges - 1] > done[nchanges - 1 - k])
        *last = (double)k / ((double)(done[nchanges - 1] - done[nchanges - 1 - k]) / 1e9);
    free(done);
}

static void print_result(int64_t start_ns, double seconds, double open_s, double render_s,
                         double cpu_s)
{
    struct gitops_stats st;
    double first, last;
    int64_t *lat = calloc(nchanges + 1, sizeof(*lat));
    size_t failed = 0, unchanged = 0, batch_max = 0;
    const char *first_error = "";
    json_t *o;
    char *s;

    gitops_stats_get(repo, &st);
    for (size_t i = 0; i < nchanges; i++) {
        const struct bench_change *c = &changes[i];
        if (lat)
            lat[i] = c->ns;
        if (c->rc) {
            if (!failed)
                first_error = c->error;
            failed++;
        } else if (!c->result.changed) {
            unchanged++;
        }
        if (c->result.batch > batch_max)
            batch_max = c->result.batch;
    }
    if (lat)
        qsort(lat, nchanges, sizeof(*lat), cmp_i64);
    tenth_rates(start_ns, &first, &last);
#define PCT(p) (lat ? (double)lat[(size_t)((double)(nchanges - 1) * (p))] / 1e6 : 0.0)
    o = json_pack("{s:I,s:i,s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:s,s:f,s:f,s:f,s:f,s:f,s:f}",
                  "changes", (json_int_t)nchanges, "threads", nthreads, "seconds", seconds,
                  "changes_per_s", seconds > 0 ? (double)nchanges / seconds : 0.0, "commits",
                  (json_int_t)st.commits, "push_attempts", (json_int_t)st.push_attempts,
                  "push_rejections", (json_int_t)st.push_rejections, "rounds",
                  (json_int_t)st.rounds, "batch_max", (json_int_t)batch_max, "changes_per_commit",
                  st.commits ? (double)st.changes / (double)st.commits : 0.0, "failed",
                  (json_int_t)failed, "unchanged", (json_int_t)unchanged, "first_error",
                  first_error, "submit_ms_p50", PCT(0.5), "submit_ms_p99", PCT(0.99),
                  "submit_ms_max", lat ? (double)lat[nchanges - 1] / 1e6 : 0.0, "open_seconds",
                  open_s, "render_seconds", render_s, "cpu_seconds", cpu_s);
    json_object_set_new(o, "changes_per_s_first_tenth", json_real(first));
    json_object_set_new(o, "changes_per_s_last_tenth", json_real(last));
#undef PCT
    s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    printf("%s\n", s ? s : "{}");
    fflush(stdout);
    free(s);
    json_decref(o);
    free(lat);
}

int main(int argc, char **argv)
{
    struct render_options ro = {0};
    struct gitops_options o = {0};
    struct gitops_op seed[2] = {{0}};
    char seed_paths[2][128];
    const char *dump = NULL, *jobs_file = NULL;
    long long n = 1000, threads = 8;
    pthread_t tids[BENCH_THREADS_MAX];
    int64_t t0, t1;
    double open_s, render_s, cpu0, cpu_s;
    int status = 0;

    log_init(LOG_WARN, LOG_FORMAT_JSON);
    o.author_name = "capstan";
    o.author_email = "capstan@localhost";
    o.branch = "main";
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return usage("commits N tenant onboardings through the GitOps engine");
        if (!val)
            return usage("missing value");
        a++;
        if (strcmp(arg, "--url") == 0)
            o.url = val;
        else if (strcmp(arg, "--cache") == 0)
            o.cache_dir = val;
        else if (strcmp(arg, "--dump") == 0)
            dump = val;
        else if (strcmp(arg, "--jobs") == 0)
            jobs_file = val;
        else if (strcmp(arg, "--author-name") == 0)
            o.author_name = val;
        else if (strcmp(arg, "--author-email") == 0)
            o.author_email = val;
        else if (strcmp(arg, "--n") == 0) {
            if (cap_parse_long(&n, val, 1, BENCH_N_MAX))
                return usage("bad --n");
        } else if (strcmp(arg, "--threads") == 0) {
            if (cap_parse_long(&threads, val, 1, BENCH_THREADS_MAX))
                return usage("bad --threads");
        } else
            return usage("unknown argument");
    }
    if (!o.url || !o.cache_dir)
        return usage("--url and --cache are required");

    /* render every change first: the job's render step is not what is measured */
    t0 = cap_mono_ns();
    nchanges = (size_t)n;
    changes = calloc(nchanges, sizeof(*changes));
    if (!changes)
        return fail("allocating");
    for (size_t i = 0; i < nchanges; i++)
        if (change_make(&changes[i], i + 1, &ro) != 0) {
            status = fail("rendering");
            goto done;
        }
    render_s = (double)(cap_mono_ns() - t0) / 1e9;
    if (jobs_fleet_seed(seed, seed_paths, &ro) != 0) {
        status = fail("rendering the seed");
        goto done;
    }
    if (dump && dump_all(dump, seed, 2) != 0) {
        status = fail("dumping");
        goto done;
    }
    if (jobs_file && write_jobs(jobs_file) != 0) {
        status = fail("writing the job ids");
        goto done;
    }

    o.finalize = jobs_fleet_finalize;
    o.finalize_ctx = &ro;
    o.seed = seed;
    o.nseed = 2;
    t0 = cap_mono_ns();
    if (gitops_open(&repo, &o) != 0) {
        status = fail("opening the repository");
        goto done;
    }
    open_s = (double)(cap_mono_ns() - t0) / 1e9;

    nthreads = (int)threads;
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&tids[i], NULL, worker, NULL) != 0) {
            fprintf(stderr, "gitops_bench: cannot start thread %d\n", i);
            exit(3); /* the threads started wait forever: nothing to clean up but the process */
        }
    pthread_mutex_lock(&mu);
    while (nready < nthreads)
        pthread_cond_wait(&cv, &mu);
    cpu0 = cpu_seconds();
    t0 = cap_mono_ns();
    go = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < nthreads; i++)
        pthread_join(tids[i], NULL);
    t1 = cap_mono_ns();
    cpu_s = cpu_seconds() - cpu0;
    print_result(t0, (double)(t1 - t0) / 1e9, open_s, render_s, cpu_s);
    for (size_t i = 0; i < nchanges; i++)
        if (changes[i].rc || !changes[i].result.changed)
            status = 1;
done:
    gitops_close(repo);
    for (size_t i = 0; changes && i < nchanges; i++) {
        jobs_plan_free(&changes[i].plan);
        free(changes[i].ops);
    }
    free(changes);
    free((char *)seed[0].content);
    free((char *)seed[1].content);
    return status;
}
