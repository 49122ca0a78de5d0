/* capstan: a small command line around the GitOps engine (server/gitops) for black-box tests.
 *
 *   gitops_driver --url U --cache DIR [--branch main] [options] MODE
 * Modes:
 *   (none)  one change: --job UUID --summary S --actor A [--put path=VALUE]... [--delete path]...
 *           VALUE is literal text, or @file for a file's content
 *   --many N --threads T [--prefix P] [--resubmit]
 *           N changes (change i puts P/<i>.yaml) submitted from T threads that start together;
 *           with --resubmit a change that fails retryably is submitted again with the same job id
 *   --find JOB      prints the commit carrying JOB
 *   --open-only     opens the cache and exits
 * Options: --author-name, --author-email, --max-attempts N, --timeout-ms N, --ca-file F,
 *   --known-hosts F, --seed path=VALUE (repeatable), --kustomize DIR (a finalize hook that
 *   regenerates DIR/kustomization.yaml from DIR's folders), --fail-finalize PATH (the hook fails
 *   when the tree holds the file PATH).
 * Credentials come from the environment only (never argv): GITOPS_USERNAME, GITOPS_PASSWORD,
 * GITOPS_TOKEN, GITOPS_SSH_KEY, GITOPS_SSH_PUBKEY, GITOPS_SSH_PASSPHRASE.
 * Output: one JSON line per change {"job","rc","code","error","field","commit","changed",
 * "attempts","batch","resubmits","ms"}, then {"stats":{...}}. Exit 0 if every change succeeded,
 * 1 if one failed, 2 on usage errors, 3 if opening failed ({"open_error","code"}). */
#include "gitops/gitops.h"
#include "log/log.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/str.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPS 64

struct job {
    struct gitops_change change;
    struct gitops_op ops[1];
    char id[37];
    char summary[128];
    char path[128];
    char content[128];
    int rc;
    char error[CAP_ERROR_MESSAGE_MAX];
    char field[CAP_ERROR_FIELD_MAX];
    struct gitops_result result;
    int resubmits;
    long long ms;
};

static struct gitops_repo *repo;
static struct job *jobs;
static size_t njobs, next_job;
static int nthreads_ready, nthreads;
static bool resubmit;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static const char *kustomize_dir;
static const char *fail_path;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static char *value_of(const char *v, size_t *len)
{
    char *buf;
    if (v[0] == '@') {
        FILE *f = fopen(v + 1, "rb");
        long n;
        if (!f)
            return NULL;
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        fclose(f);
        if (buf) {
            buf[n] = '\0';
            *len = (size_t)n;
        }
        return buf;
    }
    *len = strlen(v);
    return strdup(v);
}

/* Finalize hook: DIR/kustomization.yaml lists DIR's folders ("resources:\n- a\n- b\n"). */
static int finalize(void *ctx, struct gitops_tree *t, const struct gitops_change *change)
{
    char **names = NULL, path[512];
    size_t n = 0, i;
    char *text = NULL;
    size_t len = 0, cap = 64;
    int rc;
    (void)ctx;
    (void)change;

    if (fail_path) {
        char *got = NULL;
        size_t glen = 0;
        rc = gitops_tree_read(t, fail_path, &got, &glen);
        free(got);
        if (rc == 0)
            return cap_error_set(CAP_EINVALID, "test hook refuses a tree with %s", fail_path);
    }
    if (!kustomize_dir)
        return 0;
    snprintf(path, sizeof(path), "%s/kustomization.yaml", kustomize_dir);
    if ((rc = gitops_tree_list(t, kustomize_dir, &names, &n, true)) != 0)
        return rc;
    if (n == 0) {
        gitops_names_free(names, n);
        return gitops_tree_delete(t, path);
    }
    for (i = 0; i < n; i++)
        cap += strlen(names[i]) + 3;
    text = malloc(cap);
    if (!text) {
        gitops_names_free(names, n);
        return cap_error_set(CAP_ERROR, "out of memory");
    }
    len = (size_t)snprintf(text, cap, "resources:\n");
    for (i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "- %s\n", names[i]);
    gitops_names_free(names, n);
    rc = gitops_tree_put(t, path, text, len);
    free(text);
    return rc;
}

static void submit_job(struct job *j)
{
    long long t0 = cap_mono_ms();
    for (;;) {
        j->rc = gitops_submit(repo, &j->change, &j->result);
        if (j->rc == 0) {
            j->error[0] = '\0';
            j->field[0] = '\0';
            break;
        }
        cap_strlcpy(j->error, cap_error_message(), sizeof(j->error));
        cap_strlcpy(j->field, cap_error_field() ? cap_error_field() : "", sizeof(j->field));
        if (!resubmit || (j->rc != CAP_ERETRY && j->rc != CAP_EUNAVAILABLE) || j->resubmits >= 20)
            break;
        j->resubmits++;
    }
    j->ms = cap_mono_ms() - t0;
}

static void print_job(const struct job *j)
{
    json_t *o = json_object();
    char *s;
    json_object_set_new(o, "job", json_string(j->change.job_id));
    json_object_set_new(o, "rc", json_integer(j->rc));
    json_object_set_new(o, "code", json_string(cap_error_name(j->rc)));
    json_object_set_new(o, "error", json_string(j->rc ? j->error : ""));
    json_object_set_new(o, "field", json_string(j->rc ? j->field : ""));
    json_object_set_new(o, "commit", json_string(j->rc ? "" : j->result.commit));
    json_object_set_new(o, "changed", json_boolean(j->rc == 0 && j->result.changed));
    json_object_set_new(o, "attempts", json_integer(j->result.attempts));
    json_object_set_new(o, "batch", json_integer(j->result.batch));
    json_object_set_new(o, "resubmits", json_integer(j->resubmits));
    json_object_set_new(o, "ms", json_integer(j->ms));
    s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    pthread_mutex_lock(&out_mu);
    printf("%s\n", s);
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
    free(s);
    json_decref(o);
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    nthreads_ready++;
    pthread_cond_broadcast(&cv);
    while (nthreads_ready < nthreads)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    for (;;) {
        struct job *j;
        pthread_mutex_lock(&mu);
        j = next_job < njobs ? &jobs[next_job++] : NULL;
        pthread_mutex_unlock(&mu);
        if (!j)
            break;
        submit_job(j);
    }
    return NULL;
}

static void print_stats(void)
{
    struct gitops_stats st;
    gitops_stats_get(repo, &st);
    printf("{\"stats\":{\"rounds\":%llu,\"commits\":%llu,\"changes\":%llu,\"push_attempts\":%llu,"
           "\"push_rejections\":%llu,\"recloned\":%llu}}\n",
           (unsigned long long)st.rounds, (unsigned long long)st.commits,
           (unsigned long long)st.changes, (unsigned long long)st.push_attempts,
           (unsigned long long)st.push_rejections, (unsigned long long)st.recloned);
}

static void free_ops(struct gitops_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == GITOPS_PUT) {
            free((char *)ops[i].path);
            free((char *)ops[i].content);
        }
    }
}

static int usage(const char *msg)
{
    fprintf(stderr, "gitops_driver: %s\n", msg);
    return 2;
}

int main(int argc, char **argv)
{
    struct gitops_options o = {0};
    struct gitops_op ops[MAX_OPS], seed[MAX_OPS];
    size_t nops = 0, nseed = 0, i;
    const char *job = NULL, *summary = NULL, *actor = "tester@example.com", *find = NULL;
    const char *prefix = "items";
    long long many = 0, threads = 1, v;
    bool open_only = false;
    int rc, status = 0;
    pthread_t tids[256];

    log_init(LOG_WARN, LOG_FORMAT_JSON);
    o.author_name = "capstan";
    o.author_email = "capstan@example.com";
    o.branch = "main";
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;
#define NEED()                                                                                     \
    do {                                                                                           \
        if (!val)                                                                                  \
            return usage("missing value");                                                         \
        a++;                                                                                       \
    } while (0)
        if (strcmp(arg, "--url") == 0) {
            NEED();
            o.url = val;
        } else if (strcmp(arg, "--branch") == 0) {
            NEED();
            o.branch = val;
        } else if (strcmp(arg, "--cache") == 0) {
            NEED();
            o.cache_dir = val;
        } else if (strcmp(arg, "--author-name") == 0) {
            NEED();
            o.author_name = val;
        } else if (strcmp(arg, "--author-email") == 0) {
            NEED();
            o.author_email = val;
        } else if (strcmp(arg, "--ca-file") == 0) {
            NEED();
            o.ca_file = val;
        } else if (strcmp(arg, "--known-hosts") == 0) {
            NEED();
            o.ssh_known_hosts = val;
        } else if (strcmp(arg, "--max-attempts") == 0) {
            NEED();
            if (cap_parse_long(&v, val, 1, 64))
                return usage("bad --max-attempts");
            o.max_push_attempts = (int)v;
        } else if (strcmp(arg, "--timeout-ms") == 0) {
            NEED();
            if (cap_parse_long(&v, val, 1, 3600000))
                return usage("bad --timeout-ms");
            o.timeout_ms = v;
        } else if (strcmp(arg, "--job") == 0) {
            NEED();
            job = val;
        } else if (strcmp(arg, "--summary") == 0) {
            NEED();
            summary = val;
        } else if (strcmp(arg, "--actor") == 0) {
            NEED();
            actor = val;
        } else if (strcmp(arg, "--put") == 0 || strcmp(arg, "--seed") == 0) {
            struct gitops_op *op;
            const char *eq;
            NEED();
            if (arg[2] == 'p' ? nops >= MAX_OPS : nseed >= MAX_OPS)
                return usage("too many ops");
            op = arg[2] == 'p' ? &ops[nops++] : &seed[nseed++];
            eq = strchr(val, '=');
            if (!eq)
                return usage("--put wants path=VALUE");
            op->kind = GITOPS_PUT;
            op->path = strndup(val, (size_t)(eq - val));
            op->content = value_of(eq + 1, &op->len);
            if (!op->content)
                return usage("cannot read a --put file");
        } else if (strcmp(arg, "--delete") == 0) {
            NEED();
            if (nops >= MAX_OPS)
                return usage("too many ops");
            ops[nops].kind = GITOPS_DELETE;
            ops[nops].path = val;
            ops[nops].content = NULL;
            ops[nops].len = 0;
            nops++;
        } else if (strcmp(arg, "--many") == 0) {
            NEED();
            if (cap_parse_long(&many, val, 1, 100000))
                return usage("bad --many");
        } else if (strcmp(arg, "--threads") == 0) {
            NEED();
            if (cap_parse_long(&threads, val, 1, 256))
                return usage("bad --threads");
        } else if (strcmp(arg, "--prefix") == 0) {
            NEED();
            prefix = val;
        } else if (strcmp(arg, "--resubmit") == 0) {
            resubmit = true;
        } else if (strcmp(arg, "--find") == 0) {
            NEED();
            find = val;
        } else if (strcmp(arg, "--open-only") == 0) {
            open_only = true;
        } else if (strcmp(arg, "--kustomize") == 0) {
            NEED();
            kustomize_dir = val;
        } else if (strcmp(arg, "--fail-finalize") == 0) {
            NEED();
            fail_path = val;
        } else {
            return usage("unknown argument");
        }
#undef NEED
    }
    if (!o.url || !o.cache_dir)
        return usage("--url and --cache are required");
    o.username = getenv("GITOPS_USERNAME");
    o.password = getenv("GITOPS_PASSWORD");
    o.token = getenv("GITOPS_TOKEN");
    o.ssh_key_path = getenv("GITOPS_SSH_KEY");
    o.ssh_pubkey_path = getenv("GITOPS_SSH_PUBKEY");
    o.ssh_passphrase = getenv("GITOPS_SSH_PASSPHRASE");
    o.seed = seed;
    o.nseed = nseed;
    if (kustomize_dir || fail_path)
        o.finalize = finalize;

    rc = gitops_open(&repo, &o);
    if (rc) {
        json_t *e = json_object();
        char *s;
        json_object_set_new(e, "open_error", json_string(cap_error_message()));
        json_object_set_new(e, "code", json_string(cap_error_name(rc)));
        s = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
        printf("%s\n", s);
        free(s);
        json_decref(e);
        status = 3;
        goto done;
    }
    if (open_only) {
        print_stats();
        goto done;
    }
    if (find) {
        char commit[41];
        rc = gitops_find_job_commit(repo, find, commit);
        printf("{\"rc\":%d,\"code\":\"%s\",\"commit\":\"%s\"}\n", rc, cap_error_name(rc),
               rc ? "" : commit);
        status = rc ? 1 : 0;
        goto done;
    }
    if (many) {
        njobs = (size_t)many;
        jobs = calloc(njobs, sizeof(*jobs));
        if (!jobs) {
            status = usage("out of memory");
            goto done;
        }
        for (i = 0; i < njobs; i++) {
            struct job *j = &jobs[i];
            char rnd[37];
            cap_uuid_v4(j->id);
            cap_uuid_v4(rnd);
            snprintf(j->summary, sizeof(j->summary), "item.put %s/%zu", prefix, i);
            snprintf(j->path, sizeof(j->path), "%s/%zu.yaml", prefix, i);
            snprintf(j->content, sizeof(j->content), "item: %zu\nnonce: %s\n", i, rnd);
            j->ops[0].kind = GITOPS_PUT;
            j->ops[0].path = j->path;
            j->ops[0].content = j->content;
            j->ops[0].len = strlen(j->content);
            j->change.job_id = j->id;
            j->change.summary = j->summary;
            j->change.requested_by = actor;
            j->change.ops = j->ops;
            j->change.nops = 1;
        }
        nthreads = (int)threads;
        for (i = 0; i < (size_t)threads; i++)
            pthread_create(&tids[i], NULL, worker, NULL);
        for (i = 0; i < (size_t)threads; i++)
            pthread_join(tids[i], NULL);
        for (i = 0; i < njobs; i++) {
            print_job(&jobs[i]);
            if (jobs[i].rc)
                status = 1;
        }
        free(jobs);
    } else {
        struct job j;
        memset(&j, 0, sizeof(j));
        j.change.job_id = job;
        j.change.summary = summary;
        j.change.requested_by = actor;
        j.change.ops = ops;
        j.change.nops = nops;
        submit_job(&j);
        print_job(&j);
        status = j.rc ? 1 : 0;
    }
    print_stats();
done:
    gitops_close(repo);
    free_ops(ops, nops);
    free_ops(seed, nseed);
    return status;
}
