/* capstan: the GitOps engine: the repository handle, group commit and the push retry loop.
 *
 * One thread at a time owns the cache repository (`busy`): the leader of a round, or a find.
 * Submitters queue their change and wait; a submitter that finds nobody busy becomes the leader,
 * takes every queued change (up to GITOPS_BATCH_MAX) and runs a round for them:
 *   fetch -> index recent Capstan-Job trailers -> build the tree from the tip (ops, then the
 *   finalize hook, change by change) -> one commit -> compare-and-swap push;
 * a rejected push (another writer moved the branch) repeats the round on the new tip after an
 * exponential backoff with jitter, at most max_push_attempts times. Then every submitter of the
 * batch learns its result. See README.md in this folder.
 *
 * Invariants: the remote branch only moves forward (no force-push); a change whose job id is in
 * the trailer index is never applied again; the cache is disposable (removed and cloned again
 * when it is broken, and periodically to shed the loose objects and packs it gathers). */
#include "gitops/internal.h"

#include "log/log.h"
#include "metrics/catalog.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/str.h"

#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_PUSH_ATTEMPTS 8
#define MAX_PUSH_ATTEMPTS     64
#define DEFAULT_TIMEOUT_MS    60000LL
#define JOB_INDEX_CAP         16384
#define RECLONE_ROUNDS        2000 /* rounds after which the cache is cloned afresh */
#define BACKOFF_BASE_MS       10
#define BACKOFF_CAP_MS        1000

struct gitops_pending {
    const struct gitops_change *change;
    struct gitops_pending *next;
    bool done;
    int rc;
    char msg[CAP_ERROR_MESSAGE_MAX];
    char field[CAP_ERROR_FIELD_MAX];
    struct gitops_result result;
};

bool gitops_error_is_local(const git_error *e)
{
    if (!e)
        return false;
    switch (e->klass) {
    case GIT_ERROR_ODB:
    case GIT_ERROR_OBJECT:
    case GIT_ERROR_REPOSITORY:
    case GIT_ERROR_INDEX:
    case GIT_ERROR_TREE:
    case GIT_ERROR_ZLIB:
    case GIT_ERROR_FILESYSTEM:
    case GIT_ERROR_REFERENCE:
        return true;
    default:
        return false;
    }
}

/* --- options --- */

static int dup_opt(char **out, const char *s)
{
    *out = NULL;
    if (!s)
        return 0;
    *out = strdup(s);
    return *out ? 0 : cap_error_set(CAP_ERROR, "out of memory");
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 1);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    memcpy(p + la, b, lb);
    p[la + lb] = '\0';
    return p;
}

/* Works out what kind of remote the URL names: local path, ssh (and its port) or http(s), and a
 * copy without user information for messages. */
static int classify_url(struct gitops_repo *r)
{
    const char *u = r->url, *scheme_end = strstr(u, "://");
    const char *colon, *slash;

    if (!*u || !cap_str_is_clean_utf8(u))
        return cap_error_set_field(CAP_EINVALID, "url", "git url is empty or not text");
    if (strncmp(u, "file://", 7) == 0)
        return dup_opt(&r->local_path, u + 7) || dup_opt(&r->display_url, u);
    if (scheme_end) {
        const char *host = scheme_end + 3, *end = host + strcspn(host, "/?#");
        const char *at = NULL, *p;
        size_t n = (size_t)(scheme_end - u);
        if (!((n == 5 && strncmp(u, "https", 5) == 0) || (n == 4 && strncmp(u, "http", 4) == 0) ||
              (n == 3 && strncmp(u, "ssh", 3) == 0) || (n == 3 && strncmp(u, "git", 3) == 0)))
            return cap_error_set_field(CAP_EINVALID, "url",
                                       "git url scheme must be https, http, ssh, git or file");
        for (p = host; p < end; p++)
            if (*p == '@')
                at = p;
        if (at) {
            size_t pre = (size_t)(host - u);
            r->display_url = malloc(strlen(u) + 1);
            if (!r->display_url)
                return cap_error_set(CAP_ERROR, "out of memory");
            memcpy(r->display_url, u, pre);
            memcpy(r->display_url + pre, at + 1, strlen(at + 1) + 1);
            host = at + 1;
        } else if (dup_opt(&r->display_url, u)) {
            return CAP_ERROR;
        }
        if (n == 3 && strncmp(u, "ssh", 3) == 0) {
            const char *hp = host, *port = NULL;
            if (*hp == '[') {
                const char *rb = memchr(hp, ']', (size_t)(end - hp));
                if (rb && rb + 1 < end && rb[1] == ':')
                    port = rb + 2;
            } else {
                const char *c = memchr(hp, ':', (size_t)(end - hp));
                if (c)
                    port = c + 1;
            }
            r->ssh_port = port && port < end ? strndup(port, (size_t)(end - port)) : strdup("22");
            if (!r->ssh_port)
                return cap_error_set(CAP_ERROR, "out of memory");
        }
        return 0;
    }
    colon = strchr(u, ':');
    slash = strchr(u, '/');
    if (colon && colon != u && (!slash || colon < slash)) {
        /* scp-like ssh: [user@]host:path */
        r->ssh_port = strdup("22");
        if (!r->ssh_port)
            return cap_error_set(CAP_ERROR, "out of memory");
        return dup_opt(&r->display_url, u);
    }
    return dup_opt(&r->local_path, u) || dup_opt(&r->display_url, u);
}

/* True if the host at the start of s ("host[:port]/...") is a loopback name or address. */
static bool is_loopback_url(const char *s)
{
    size_t n = strcspn(s, ":/");
    if (s[0] == '[')
        return strncmp(s, "[::1]", 5) == 0;
    return (n == 9 && strncmp(s, "localhost", 9) == 0) || strncmp(s, "127.", 4) == 0;
}

static int copy_seed(struct gitops_repo *r, const struct gitops_op *seed, size_t n)
{
    struct gitops_change probe = {.job_id = "00000000-0000-0000-0000-000000000000",
                                  .summary = "seed",
                                  .requested_by = "capstan",
                                  .ops = seed,
                                  .nops = n};
    size_t i;
    int rc;

    if (n == 0)
        return 0;
    if ((rc = gitops_change_check(&probe)) != 0)
        return cap_error_set_field(rc, "seed", "seed: %s", cap_error_message());
    r->seed = calloc(n, sizeof(*r->seed));
    if (!r->seed)
        return cap_error_set(CAP_ERROR, "out of memory");
    r->nseed = n;
    for (i = 0; i < n; i++) {
        char *content = NULL;
        r->seed[i].kind = seed[i].kind;
        r->seed[i].len = seed[i].len;
        r->seed[i].path = strdup(seed[i].path);
        if (seed[i].kind == GITOPS_PUT) {
            content = malloc(seed[i].len + 1);
            if (content) {
                if (seed[i].len)
                    memcpy(content, seed[i].content, seed[i].len);
                content[seed[i].len] = '\0';
            }
        }
        r->seed[i].content = content;
        if (!r->seed[i].path || (seed[i].kind == GITOPS_PUT && !content))
            return cap_error_set(CAP_ERROR, "out of memory");
    }
    return 0;
}

/* --- the cache folder --- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        return -1;
    return 0;
}

/* Removes cache_dir/repo.git (and only that). */
static int cache_remove(struct gitops_repo *r)
{
    char *trash = join(r->repo_dir, ".broken");
    int rc = 0;

    if (!trash)
        return cap_error_set(CAP_ERROR, "out of memory");
    git_repository_free(r->repo);
    r->repo = NULL;
    r->mempack = NULL;
    r->index_valid = false;
    r->jobs_n = 0;
    r->jobs_start = 0;
    r->jobs_have_tip = false;
    nftw(trash, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rename(r->repo_dir, trash) != 0 && errno != ENOENT)
        rc = cap_error_set(CAP_ERROR, "cannot move the broken git cache %s aside: %s", r->repo_dir,
                           strerror(errno));
    else if (nftw(trash, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        rc = cap_error_set(CAP_ERROR, "cannot remove the broken git cache %s: %s", trash,
                           strerror(errno));
    free(trash);
    return rc;
}

/* Puts an in-memory object store in front of the cache's object files: a round writes the
 * blobs and the tree of every change it carries there (a tree per change, to tell which
 * changed anything), and only its commit and what that needs reach the files (round_persist).
 * Writing each of those objects as a file was most of the cost of a change at 1,000 tenants. */
static int cache_mempack(struct gitops_repo *r)
{
    git_odb *odb = NULL;
    git_odb_backend *mp = NULL;
    int rc = 0;

    r->mempack = NULL;
    if (git_repository_odb(&odb, r->repo) < 0 || git_mempack_new(&mp) < 0) {
        rc =
            cap_error_set(CAP_ERROR, "cannot open the object database: %s", gitnet_error_message());
    } else if (git_odb_add_backend(odb, mp, 1000) < 0) {
        mp->free(mp);
        rc = cap_error_set(CAP_ERROR, "cannot add the in-memory object store: %s",
                           gitnet_error_message());
    } else {
        r->mempack = mp;
    }
    git_odb_free(odb);
    return rc;
}

/* Writes commit, and what it needs that the cache's files lack (the tip, if any, is there),
 * from the in-memory store to the files, then empties the store. */
static int round_persist(struct gitops_repo *r, const git_oid *commit, const git_oid *tip)
{
    git_odb *src = NULL, *disk = NULL;
    char *path = join(git_repository_path(r->repo), "objects");
    int rc = 0;

    if (!path)
        return cap_error_set(CAP_ERROR, "out of memory");
    if (git_repository_odb(&src, r->repo) < 0 || git_odb_open(&disk, path) < 0 ||
        gitops_copy_commits(r->repo, src, disk, commit, tip) < 0)
        rc = cap_error_set(CAP_ERROR, "cannot store the commit in the git cache: %s",
                           gitnet_error_message());
    git_odb_free(disk);
    git_odb_free(src);
    free(path);
    if (rc == 0 && r->mempack)
        git_mempack_reset(r->mempack);
    return rc;
}

/* 0 if the cache opens and what it records is readable; else CAP_ERROR (message set). */
static int cache_check(struct gitops_repo *r)
{
    git_reference *head = NULL;
    git_commit *commit = NULL;
    git_tree *tree = NULL;
    git_oid tip;
    int rc = 0, grc;

    if (git_repository_open_ext(&r->repo, r->repo_dir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
        return cap_error_set(CAP_ERROR, "cannot open: %s", gitnet_error_message());
    if (!git_repository_is_bare(r->repo)) {
        rc = cap_error_set(CAP_ERROR, "not a bare repository");
        goto cleanup;
    }
    if (git_reference_lookup(&head, r->repo, "HEAD") < 0) {
        rc = cap_error_set(CAP_ERROR, "HEAD is unreadable: %s", gitnet_error_message());
        goto cleanup;
    }
    grc = git_reference_name_to_id(&tip, r->repo, r->tracking_ref);
    if (grc == GIT_ENOTFOUND)
        goto cleanup;
    if (grc < 0 || git_commit_lookup(&commit, r->repo, &tip) < 0 ||
        git_commit_tree(&tree, commit) < 0) {
        rc = cap_error_set(CAP_ERROR, "branch %s is unreadable: %s", r->branch,
                           gitnet_error_message());
        goto cleanup;
    }
cleanup:
    git_tree_free(tree);
    git_commit_free(commit);
    git_reference_free(head);
    if (rc == 0)
        rc = cache_mempack(r);
    if (rc) {
        git_repository_free(r->repo);
        r->repo = NULL;
        r->mempack = NULL;
    }
    return rc;
}

static int cache_init(struct gitops_repo *r)
{
    git_repository_init_options io;

    git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
    io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
    io.initial_head = r->branch;
    io.mode = GIT_REPOSITORY_INIT_SHARED_UMASK;
    if (git_repository_init_ext(&r->repo, r->repo_dir, &io) < 0)
        return cap_error_set(CAP_ERROR, "cannot create the git cache %s: %s", r->repo_dir,
                             gitnet_error_message());
    if (cache_mempack(r) != 0) {
        git_repository_free(r->repo);
        r->repo = NULL;
        return CAP_ERROR;
    }
    return 0;
}

/* Opens the cache, replacing it when it is broken. */
static int cache_open(struct gitops_repo *r)
{
    struct stat st;
    int rc;

    if (stat(r->repo_dir, &st) == 0) {
        if (cache_check(r) == 0)
            return 0;
        log_warn("gitops: the git cache %s is broken (%s); cloning it again", r->repo_dir,
                 cap_error_message());
        if ((rc = cache_remove(r)) != 0)
            return rc;
        r->stats.recloned++;
    }
    return cache_init(r);
}

/* Removes and recreates the cache; the caller owns the repository (busy). */
static int cache_reset(struct gitops_repo *r, const char *why)
{
    int rc;
    log_warn("gitops: cloning the git cache %s again: %s", r->repo_dir, why);
    if ((rc = cache_remove(r)) != 0 || (rc = cache_init(r)) != 0)
        return rc;
    pthread_mutex_lock(&r->mu);
    r->stats.recloned++;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static int cache_lock(struct gitops_repo *r)
{
    char *path = join(r->cache_dir, "/lock");
    int rc = 0;

    if (!path)
        return cap_error_set(CAP_ERROR, "out of memory");
    r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (r->lock_fd < 0)
        rc = cap_error_set(CAP_ERROR, "cannot open %s: %s", path, strerror(errno));
    else if (flock(r->lock_fd, LOCK_EX | LOCK_NB) != 0)
        rc =
            cap_error_set(errno == EWOULDBLOCK ? CAP_ECONFLICT : CAP_ERROR,
                          "git cache folder %s is in use by another gitops instance", r->cache_dir);
    free(path);
    return rc;
}

static int mkdir_p(const char *dir)
{
    char buf[4096];
    size_t len = strlen(dir), i;

    if (len == 0 || len >= sizeof(buf))
        return cap_error_set_field(CAP_EINVALID, "cache_dir", "cache folder path is not valid");
    memcpy(buf, dir, len + 1);
    for (i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return cap_error_set(CAP_ERROR, "cannot create folder %s: %s", buf, strerror(errno));
        if (i < len)
            buf[i] = '/';
    }
    return 0;
}

/* --- the index of recent Capstan-Job trailers --- */

static void jobs_clear(struct gitops_repo *r)
{
    r->jobs_n = 0;
    r->jobs_start = 0;
    r->jobs_have_tip = false;
}

static void jobs_add(struct gitops_repo *r, const char *job, const git_oid *commit)
{
    struct gitops_job_seen *e;
    if (r->jobs_cap == 0)
        return;
    if (r->jobs_n == r->jobs_cap) {
        e = &r->jobs[r->jobs_start];
        r->jobs_start = (r->jobs_start + 1) % r->jobs_cap;
    } else {
        e = &r->jobs[(r->jobs_start + r->jobs_n) % r->jobs_cap];
        r->jobs_n++;
    }
    cap_strlcpy(e->job, job, sizeof(e->job));
    git_oid_cpy(&e->commit, commit);
}

static bool jobs_find(const struct gitops_repo *r, const char *job, git_oid *out)
{
    size_t i;
    for (i = r->jobs_n; i > 0; i--) {
        const struct gitops_job_seen *e = &r->jobs[(r->jobs_start + i - 1) % r->jobs_cap];
        if (strcasecmp(e->job, job) == 0) {
            git_oid_cpy(out, &e->commit);
            return true;
        }
    }
    return false;
}

static int jobs_index_commit(struct gitops_repo *r, const git_oid *id)
{
    git_message_trailer_array arr = {0};
    git_commit *c = NULL;
    size_t i;

    if (git_commit_lookup(&c, r->repo, id) < 0)
        return -1;
    if (git_message_trailers(&arr, git_commit_message(c)) == 0) {
        for (i = 0; i < arr.count; i++)
            if (strcasecmp(arr.trailers[i].key, "Capstan-Job") == 0 &&
                cap_is_uuid(arr.trailers[i].value))
                jobs_add(r, arr.trailers[i].value, id);
        git_message_trailer_array_free(&arr);
    }
    git_commit_free(c);
    return 0;
}

/* Brings the index up to tip (NULL: the branch does not exist): only the commits since the last
 * indexed tip are read, at most GITOPS_HISTORY_SEARCH of them. */
static int jobs_refresh(struct gitops_repo *r, const git_oid *tip)
{
    git_revwalk *walk = NULL;
    git_oid *ids = NULL, id;
    size_t n = 0;
    int rc = 0, grc;
    bool incremental = false;

    if (!tip) {
        jobs_clear(r);
        return 0;
    }
    if (r->jobs_have_tip && git_oid_equal(tip, &r->jobs_tip))
        return 0;
    ids = malloc(GITOPS_HISTORY_SEARCH * sizeof(*ids));
    if (!ids)
        return cap_error_set(CAP_ERROR, "out of memory");
    /* the usual case, a few commits on top of the indexed tip (ours or another writer's), is
     * read along the parents alone: a general walk also sorts and marks the old history */
    if (r->jobs_have_tip &&
        (n = gitops_linear_chain(r->repo, tip, &r->jobs_tip, ids, GITOPS_HISTORY_SEARCH)) > 0)
        goto index;
    if (r->jobs_have_tip && git_graph_descendant_of(r->repo, tip, &r->jobs_tip) == 1)
        incremental = true;
    else
        jobs_clear(r);
    if (git_revwalk_new(&walk, r->repo) < 0 ||
        git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME) < 0 ||
        git_revwalk_push(walk, tip) < 0 ||
        (incremental && git_revwalk_hide(walk, &r->jobs_tip) < 0)) {
        rc = cap_error_set(CAP_ERROR, "cannot read the history: %s", gitnet_error_message());
        goto cleanup;
    }
    while (n < GITOPS_HISTORY_SEARCH && (grc = git_revwalk_next(&id, walk)) == 0)
        git_oid_cpy(&ids[n++], &id);
index:
    /* oldest first, so the newest commit of a job id wins */
    while (n > 0) {
        if (jobs_index_commit(r, &ids[--n]) < 0) {
            rc = cap_error_set(CAP_ERROR, "cannot read a commit: %s", gitnet_error_message());
            jobs_clear(r);
            goto cleanup;
        }
    }
    git_oid_cpy(&r->jobs_tip, tip);
    r->jobs_have_tip = true;
cleanup:
    git_revwalk_free(walk);
    free(ids);
    return rc;
}

/* --- rounds --- */

struct slot {
    struct gitops_pending *p;
    bool final;     /* result decided */
    bool in_commit; /* carried by this attempt's commit */
    int dup_of;     /* an earlier slot with the same job id, or -1 */
};

struct round {
    struct gitops_repo *r;
    struct slot slots[GITOPS_BATCH_MAX];
    size_t n;
    git_oid candidates[MAX_PUSH_ATTEMPTS]; /* commits of earlier attempts (may have landed) */
    unsigned cand_batch[MAX_PUSH_ATTEMPTS];
    size_t ncand;
    unsigned attempts;
};

static void slot_fail(struct slot *s, int rc)
{
    s->final = true;
    s->p->rc = rc ? rc : CAP_ERROR;
    cap_strlcpy(s->p->msg, cap_error_message(), sizeof(s->p->msg));
    cap_strlcpy(s->p->field, cap_error_field() ? cap_error_field() : "", sizeof(s->p->field));
}

static void slot_done(struct slot *s, const git_oid *commit, bool changed, unsigned attempts,
                      unsigned batch)
{
    s->final = true;
    s->p->rc = 0;
    if (commit)
        git_oid_tostr(s->p->result.commit, sizeof(s->p->result.commit), commit);
    else
        s->p->result.commit[0] = '\0';
    s->p->result.changed = changed;
    s->p->result.attempts = attempts;
    s->p->result.batch = changed ? batch : 0;
}

/* Fails every slot not yet decided with the current last error. */
static void round_fail_open(struct round *rd, int rc)
{
    size_t i;
    for (i = 0; i < rd->n; i++)
        if (!rd->slots[i].final && rd->slots[i].dup_of < 0)
            slot_fail(&rd->slots[i], rc);
}

static int tree_write(struct gitops_tree *t, git_oid *out)
{
    if (git_index_write_tree_to(out, t->index, t->repo) < 0)
        return cap_error_set(CAP_ERROR, "cannot write the tree: %s", gitnet_error_message());
    return 0;
}

static int run_finalize(struct gitops_repo *r, struct gitops_tree *t, const struct gitops_change *c,
                        const char *what)
{
    int rc;
    if (!r->finalize)
        return 0;
    cap_error_clear();
    rc = r->finalize(r->finalize_ctx, t, c);
    if (rc == 0)
        return 0;
    if (cap_error_code() == 0)
        cap_error_set(rc < 0 ? rc : CAP_ERROR, "failed");
    return cap_error_wrap("finalize hook failed for %s", what);
}

static bool is_candidate(const struct round *rd, const git_oid *c, int *out_idx)
{
    size_t i;
    for (i = 0; i < rd->ncand; i++) {
        if (git_oid_equal(&rd->candidates[i], c)) {
            *out_idx = (int)i;
            return true;
        }
    }
    return false;
}

/* Builds the tree for every open slot on top of tip (NULL: the branch does not exist yet; the
 * seed comes first). *out_tree is the result and *out_new whether it differs from the tip's tree.
 * Slots whose job is already in the history, or whose ops or finalize fail, become final.
 * A nonzero return is a failure of the cache itself. */
static int round_build(struct round *rd, const git_oid *tip, git_oid *out_tree, bool *out_new,
                       size_t *out_carried)
{
    struct gitops_repo *r = rd->r;
    struct gitops_tree t = {.repo = r->repo};
    git_commit *commit = NULL;
    git_tree *tree = NULL;
    git_oid base, prev, found;
    size_t i, j, carried = 0;
    int rc = 0, cidx;
    bool reuse;

    *out_new = false;
    *out_carried = 0;
    if (!r->index && git_index_new(&r->index) < 0) {
        rc = cap_error_set(CAP_ERROR, "cannot make an index: %s", gitnet_error_message());
        goto cleanup;
    }
    t.index = r->index;
    reuse = r->index_valid;
    r->index_valid = false; /* until the end of the build */
    if (tip) {
        if (git_commit_lookup(&commit, r->repo, tip) < 0 || git_commit_tree(&tree, commit) < 0) {
            rc = cap_error_set(CAP_ERROR, "cannot read the branch tip: %s", gitnet_error_message());
            goto cleanup;
        }
        /* the tip is usually the last round's commit: its tree is in the index already, and
         * reading the whole tree again costs more than the change itself at 1,000 tenants */
        if (!(reuse && git_oid_equal(&r->index_tree, git_tree_id(tree))) &&
            git_index_read_tree(t.index, tree) < 0) {
            rc = cap_error_set(CAP_ERROR, "cannot read the branch tip: %s", gitnet_error_message());
            goto cleanup;
        }
        git_oid_cpy(&base, git_tree_id(tree));
        git_oid_cpy(&prev, &base);
    } else {
        if (git_index_clear(t.index) < 0 || (rc = tree_write(&t, &base)) != 0) { /* empty tree */
            rc = rc ? rc : cap_error_set(CAP_ERROR, "cannot clear the index");
            goto cleanup;
        }
        for (i = 0; i < r->nseed; i++) {
            if ((rc = gitops_tree_apply(&t, &r->seed[i])) != 0) {
                cap_error_wrap("cannot apply the seed");
                goto cleanup;
            }
        }
        if (r->nseed || r->finalize) {
            int frc = run_finalize(r, &t, NULL, "the seed");
            if (frc) {
                /* the seed is the caller's: every change fails with it, the cache is fine */
                round_fail_open(rd, frc);
                goto cleanup;
            }
        }
        if ((rc = tree_write(&t, &prev)) != 0)
            goto cleanup;
    }
    for (i = 0; i < rd->n; i++) {
        struct slot *s = &rd->slots[i];
        const struct gitops_change *c = s->p->change;
        int crc = 0;
        s->in_commit = false;
        if (s->final || s->dup_of >= 0)
            continue;
        if (jobs_find(r, c->job_id, &found)) {
            if (is_candidate(rd, &found, &cidx)) /* an earlier attempt did land */
                slot_done(s, &found, true, rd->attempts, rd->cand_batch[cidx]);
            else
                slot_done(s, &found, false, rd->attempts, 0);
            continue;
        }
        /* the journal tells whether this change altered the tree, and undoes a failed one,
         * without writing a tree per change (the tenants/ tree alone lists every tenant) */
        gitops_tree_journal_begin(&t);
        for (j = 0; crc == 0 && j < c->nops; j++)
            crc = gitops_tree_apply(&t, &c->ops[j]);
        if (crc == 0)
            crc = run_finalize(r, &t, c, c->job_id);
        if (crc) {
            slot_fail(s, crc);
            if ((rc = gitops_tree_journal_undo(&t)) != 0)
                goto cleanup;
        } else if (gitops_tree_journal_changed(&t)) {
            s->in_commit = true;
            carried++;
        }
        gitops_tree_journal_end(&t);
    }
    if (carried && (rc = tree_write(&t, &prev)) != 0)
        goto cleanup;
    git_oid_cpy(out_tree, &prev);
    *out_new = !git_oid_equal(&prev, &base);
    *out_carried = carried;
    git_oid_cpy(&r->index_tree, &prev); /* what the index holds now */
    r->index_valid = true;
cleanup:
    gitops_tree_journal_end(&t);
    git_tree_free(tree);
    git_commit_free(commit);
    return rc;
}

static int round_commit(struct round *rd, const git_oid *tip, const git_oid *tree_id, git_oid *out)
{
    struct gitops_repo *r = rd->r;
    const struct gitops_change *carried[GITOPS_BATCH_MAX];
    git_signature *sig = NULL;
    git_commit *parent = NULL;
    git_tree *tree = NULL;
    char *message = NULL;
    size_t i, n = 0;
    int rc = 0;

    for (i = 0; i < rd->n; i++)
        if (rd->slots[i].in_commit)
            carried[n++] = rd->slots[i].p->change;
    if ((rc = gitops_message_build(&message, carried, n)) != 0)
        goto cleanup;
    if (git_signature_now(&sig, r->author_name, r->author_email) < 0) {
        rc = cap_error_set(CAP_EINVALID, "author is not valid: %s", gitnet_error_message());
        goto cleanup;
    }
    if (git_tree_lookup(&tree, r->repo, tree_id) < 0 ||
        (tip && git_commit_lookup(&parent, r->repo, tip) < 0)) {
        rc = cap_error_set(CAP_ERROR, "cannot read the new tree: %s", gitnet_error_message());
        goto cleanup;
    }
    {
        const git_commit *parents[1] = {parent};
        if (git_commit_create(out, r->repo, NULL, sig, sig, NULL, message, tree, parent ? 1 : 0,
                              parents) < 0)
            rc = cap_error_set(CAP_ERROR, "cannot write the commit: %s", gitnet_error_message());
    }
cleanup:
    free(message);
    git_tree_free(tree);
    git_commit_free(parent);
    git_signature_free(sig);
    return rc;
}

static void backoff(unsigned attempt)
{
    long long delay = BACKOFF_BASE_MS;
    unsigned char rnd[4] = {0};
    uint32_t v;
    unsigned i;

    for (i = 1; i < attempt && delay < BACKOFF_CAP_MS; i++)
        delay *= 2;
    if (delay > BACKOFF_CAP_MS)
        delay = BACKOFF_CAP_MS;
    cap_random_bytes(rnd, sizeof(rnd));
    v = (uint32_t)rnd[0] | (uint32_t)rnd[1] << 8 | (uint32_t)rnd[2] << 16 | (uint32_t)rnd[3] << 24;
    /* "full jitter": anywhere in [0, delay], so a loser may come straight back */
    cap_sleep_ms((long long)(v % (uint32_t)(delay + 1)));
}

static void stat_add(struct gitops_repo *r, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&r->mu);
    *field += n;
    pthread_mutex_unlock(&r->mu);
}

static void round_run(struct round *rd)
{
    struct gitops_repo *r = rd->r;
    bool repaired = false;
    char reason[256];
    size_t i, j;
    int rc;

    stat_add(r, &r->stats.rounds, 1);
    if (r->stats.rounds % RECLONE_ROUNDS == 0)
        cache_reset(r, "periodic clone to shed old objects");
    for (;;) {
        git_oid tip, tree, commit;
        bool exists = false, fresh = false, local = false;
        size_t carried = 0;
        enum gitops_push_outcome outcome;

        if (!r->repo && (rc = cache_init(r)) != 0) {
            round_fail_open(rd, rc);
            break;
        }
        if (r->mempack) /* what an earlier attempt left there is not needed */
            git_mempack_reset(r->mempack);
        rc = gitops_net_fetch(r, &tip, &exists, &local);
        if (rc == 0 && (rc = jobs_refresh(r, exists ? &tip : NULL)) != 0)
            local = true;
        if (rc == 0 && (rc = round_build(rd, exists ? &tip : NULL, &tree, &fresh, &carried)) != 0)
            local = true;
        if (rc == 0 && !fresh) {
            /* nothing to do for anyone left: report where their content already is */
            for (i = 0; i < rd->n; i++)
                if (!rd->slots[i].final && rd->slots[i].dup_of < 0)
                    slot_done(&rd->slots[i], exists ? &tip : NULL, false, rd->attempts, 0);
            break;
        }
        if (rc == 0 && (rc = round_commit(rd, exists ? &tip : NULL, &tree, &commit)) != 0)
            local = rc != CAP_EINVALID;
        if (rc == 0 && (rc = round_persist(r, &commit, exists ? &tip : NULL)) != 0)
            local = true;
        if (rc == 0) {
            rd->attempts++;
            stat_add(r, &r->stats.push_attempts, 1);
            double t0 = metrics_now();
            rc = gitops_net_push(r, &commit, exists ? &tip : NULL, &outcome, reason, sizeof(reason),
                                 &local);
            metrics_git_push(rc                         ? "error"
                             : outcome == GITOPS_PUSHED ? "pushed"
                                                        : "rejected",
                             metrics_now() - t0);
        }
        if (rc) {
            if (local && !repaired) {
                char why[CAP_ERROR_MESSAGE_MAX];
                cap_strlcpy(why, cap_error_message(), sizeof(why));
                repaired = true;
                if (cache_reset(r, why) == 0)
                    continue;
            }
            round_fail_open(rd, rc);
            break;
        }
        if (outcome == GITOPS_PUSHED) {
            char hex[GIT_OID_HEXSZ + 1];
            git_oid_tostr(hex, sizeof(hex), &commit);
            for (i = 0; i < rd->n; i++) {
                struct slot *s = &rd->slots[i];
                if (s->in_commit)
                    slot_done(s, &commit, true, rd->attempts, (unsigned)carried);
                else if (!s->final && s->dup_of < 0)
                    slot_done(s, &commit, false, rd->attempts, 0);
            }
            pthread_mutex_lock(&r->mu);
            r->stats.commits++;
            r->stats.changes += carried;
            pthread_mutex_unlock(&r->mu);
            log_info("gitops: pushed %s to %s carrying %zu change(s) after %u attempt(s)", hex,
                     r->branch, carried, rd->attempts);
            break;
        }
        stat_add(r, &r->stats.push_rejections, 1);
        if (rd->ncand < MAX_PUSH_ATTEMPTS) {
            git_oid_cpy(&rd->candidates[rd->ncand], &commit);
            rd->cand_batch[rd->ncand++] = (unsigned)carried;
        }
        if (rd->attempts >= (unsigned)r->max_push_attempts) {
            cap_error_set(CAP_ERETRY,
                          "push to git remote %s branch %s was still rejected after %u attempts: "
                          "%s",
                          r->display_url, r->branch, rd->attempts, reason);
            round_fail_open(rd, CAP_ERETRY);
            break;
        }
        log_info("gitops: push to %s rejected (%s); fetching and retrying (attempt %u of %d)",
                 r->branch, reason, rd->attempts + 1, r->max_push_attempts);
        /* download the winner's objects now, while backing off, so the next attempt only has to
         * list refs: a loser's round is then no slower than the winner's (fairness) */
        {
            bool e2 = false, l2 = false;
            git_oid t2;
            if (gitops_net_fetch(r, &t2, &e2, &l2) != 0)
                cap_error_clear();
        }
        backoff(rd->attempts);
    }
    /* a job submitted twice in one batch gets the result of its first submission */
    for (i = 0; i < rd->n; i++) {
        struct slot *s = &rd->slots[i];
        if (s->dup_of < 0)
            continue;
        j = (size_t)s->dup_of;
        s->p->rc = rd->slots[j].p->rc;
        memcpy(s->p->msg, rd->slots[j].p->msg, sizeof(s->p->msg));
        memcpy(s->p->field, rd->slots[j].p->field, sizeof(s->p->field));
        s->p->result = rd->slots[j].p->result;
        s->p->result.changed = false;
        s->p->result.batch = 0;
    }
}

/* --- public API --- */

int gitops_open(struct gitops_repo **out, const struct gitops_options *opt)
{
    struct gitops_repo *r = NULL;
    git_oid tip;
    bool exists = false, local = false, inited = false;
    int rc = 0;

    *out = NULL;
    if (!opt || !opt->url || !opt->cache_dir || !opt->author_name || !opt->author_email)
        return cap_error_set(CAP_EINVALID, "git url, cache folder and author are required");
    if ((rc = gitnet_init()) != 0)
        return rc;
    inited = true;
    r = calloc(1, sizeof(*r));
    if (!r) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    r->lock_fd = -1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->tail = &r->head;
    if (dup_opt(&r->url, opt->url) || dup_opt(&r->branch, opt->branch ? opt->branch : "main") ||
        dup_opt(&r->cache_dir, opt->cache_dir) || dup_opt(&r->author_name, opt->author_name) ||
        dup_opt(&r->author_email, opt->author_email) || dup_opt(&r->username, opt->username) ||
        dup_opt(&r->password, opt->password) || dup_opt(&r->token, opt->token) ||
        dup_opt(&r->ssh_key_path, opt->ssh_key_path) ||
        dup_opt(&r->ssh_pubkey_path, opt->ssh_pubkey_path) ||
        dup_opt(&r->ssh_passphrase, opt->ssh_passphrase) || dup_opt(&r->ca_file, opt->ca_file) ||
        dup_opt(&r->ssh_known_hosts, opt->ssh_known_hosts)) {
        rc = CAP_ERROR;
        goto cleanup;
    }
    /* every credential is redacted from every log line */
    log_add_secret(r->password);
    log_add_secret(r->token);
    log_add_secret(r->ssh_passphrase);
    r->max_push_attempts =
        opt->max_push_attempts > 0 ? opt->max_push_attempts : DEFAULT_PUSH_ATTEMPTS;
    if (r->max_push_attempts > MAX_PUSH_ATTEMPTS)
        r->max_push_attempts = MAX_PUSH_ATTEMPTS;
    r->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : DEFAULT_TIMEOUT_MS;
    r->finalize = opt->finalize;
    r->finalize_ctx = opt->finalize_ctx;
    if ((rc = classify_url(r)) != 0)
        goto cleanup;
    {
        int valid = 0;
        r->branch_ref = join("refs/heads/", r->branch);
        r->tracking_ref = join(GITOPS_TRACKING_PREFIX, r->branch);
        r->repo_dir = join(r->cache_dir, "/repo.git");
        if (!r->branch_ref || !r->tracking_ref || !r->repo_dir) {
            rc = cap_error_set(CAP_ERROR, "out of memory");
            goto cleanup;
        }
        if (git_reference_name_is_valid(&valid, r->branch_ref) < 0 || !valid ||
            strlen(r->branch) > 200) {
            rc = cap_error_set_field(CAP_EINVALID, "branch", "branch name \"%s\" is not valid",
                                     r->branch);
            goto cleanup;
        }
    }
    if ((rc = copy_seed(r, opt->seed, opt->nseed)) != 0)
        goto cleanup;
    r->jobs_cap = JOB_INDEX_CAP;
    r->jobs = calloc(r->jobs_cap, sizeof(*r->jobs));
    if (!r->jobs) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    if ((rc = mkdir_p(r->cache_dir)) != 0 || (rc = cache_lock(r)) != 0 || (rc = cache_open(r)) != 0)
        goto cleanup;
    if (strncmp(r->display_url, "http://", 7) == 0 && (r->password || r->token) &&
        !is_loopback_url(r->display_url + 7))
        log_warn("gitops: credentials for %s are sent without TLS", r->display_url);
    rc = gitops_net_fetch(r, &tip, &exists, &local);
    if (rc && local) {
        char why[CAP_ERROR_MESSAGE_MAX];
        cap_strlcpy(why, cap_error_message(), sizeof(why));
        if ((rc = cache_reset(r, why)) == 0)
            rc = gitops_net_fetch(r, &tip, &exists, &local);
    }
    if (rc)
        goto cleanup;
    if (exists && (rc = jobs_refresh(r, &tip)) != 0)
        goto cleanup;
    log_info("gitops: opened %s branch %s (cache %s)", r->display_url, r->branch, r->cache_dir);
    *out = r;
    r = NULL;
    inited = false;
cleanup:
    if (r) {
        gitops_close(r);
        inited = false; /* gitops_close released our reference */
    }
    if (inited)
        gitnet_shutdown();
    return rc;
}

int gitops_submit(struct gitops_repo *r, const struct gitops_change *c, struct gitops_result *out)
{
    struct gitops_pending p;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = gitops_change_check(c)) != 0)
        return rc;
    memset(&p, 0, sizeof(p));
    p.change = c;
    pthread_mutex_lock(&r->mu);
    *r->tail = &p;
    r->tail = &p.next;
    while (!p.done) {
        if (!r->busy) {
            struct round *rd = calloc(1, sizeof(*rd));
            struct gitops_pending *q;
            size_t i, j;
            r->busy = true;
            if (!rd) {
                r->busy = false;
                pthread_cond_broadcast(&r->cv);
                pthread_mutex_unlock(&r->mu);
                cap_sleep_ms(10); /* out of memory: let someone else lead */
                pthread_mutex_lock(&r->mu);
                continue;
            }
            rd->r = r;
            while (r->head && rd->n < GITOPS_BATCH_MAX) {
                q = r->head;
                r->head = q->next;
                q->next = NULL;
                rd->slots[rd->n].p = q;
                rd->slots[rd->n].dup_of = -1;
                for (j = 0; j < rd->n; j++) {
                    if (rd->slots[j].dup_of < 0 &&
                        strcasecmp(rd->slots[j].p->change->job_id, q->change->job_id) == 0) {
                        rd->slots[rd->n].dup_of = (int)j;
                        break;
                    }
                }
                rd->n++;
            }
            if (!r->head)
                r->tail = &r->head;
            pthread_mutex_unlock(&r->mu);
            round_run(rd);
            pthread_mutex_lock(&r->mu);
            for (i = 0; i < rd->n; i++)
                rd->slots[i].p->done = true;
            free(rd);
            r->busy = false;
            pthread_cond_broadcast(&r->cv);
        } else {
            pthread_cond_wait(&r->cv, &r->mu);
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (p.rc) {
        if (p.field[0])
            return cap_error_set_field(p.rc, p.field, "%s", p.msg);
        return cap_error_set(p.rc, "%s", p.msg);
    }
    *out = p.result;
    return 0;
}

/* Waits until the repository is free and takes it. */
static void own(struct gitops_repo *r)
{
    pthread_mutex_lock(&r->mu);
    while (r->busy)
        pthread_cond_wait(&r->cv, &r->mu);
    r->busy = true;
    pthread_mutex_unlock(&r->mu);
}

static void release(struct gitops_repo *r)
{
    pthread_mutex_lock(&r->mu);
    r->busy = false;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

int gitops_find_job_commit(struct gitops_repo *r, const char *job_id, char out[41])
{
    git_oid tip, found;
    bool exists = false, local = false;
    int rc = 0;

    out[0] = '\0';
    if (!job_id || !cap_is_uuid(job_id))
        return cap_error_set_field(CAP_EINVALID, "job_id", "job id is not a UUID");
    own(r);
    if (!r->repo && (rc = cache_init(r)) != 0)
        goto cleanup;
    if (git_reference_name_to_id(&tip, r->repo, r->tracking_ref) == 0 &&
        jobs_refresh(r, &tip) == 0 && jobs_find(r, job_id, &found))
        goto found;
    if ((rc = gitops_net_fetch(r, &tip, &exists, &local)) != 0)
        goto cleanup;
    if (!exists) {
        rc = cap_error_set(CAP_ENOTFOUND, "branch %s has no commits", r->branch);
        goto cleanup;
    }
    if ((rc = jobs_refresh(r, &tip)) != 0)
        goto cleanup;
    if (!jobs_find(r, job_id, &found)) {
        rc = cap_error_set(CAP_ENOTFOUND, "no commit of job %s in the last %d commits of %s",
                           job_id, GITOPS_HISTORY_SEARCH, r->branch);
        goto cleanup;
    }
found:
    git_oid_tostr(out, 41, &found);
cleanup:
    release(r);
    return rc;
}

void gitops_stats_get(struct gitops_repo *r, struct gitops_stats *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->stats;
    pthread_mutex_unlock(&r->mu);
}

static void free_secret(char *s)
{
    if (!s)
        return;
    memset(s, 0, strlen(s));
    free(s);
}

void gitops_close(struct gitops_repo *r)
{
    size_t i;

    if (!r)
        return;
    git_index_free(r->index);
    git_repository_free(r->repo);
    if (r->lock_fd >= 0)
        close(r->lock_fd);
    for (i = 0; i < r->nseed; i++) {
        free((char *)r->seed[i].path);
        free((char *)r->seed[i].content);
    }
    free(r->seed);
    free(r->jobs);
    free(r->url);
    free(r->branch);
    free(r->cache_dir);
    free(r->repo_dir);
    free(r->author_name);
    free(r->author_email);
    free(r->username);
    free_secret(r->password);
    free_secret(r->token);
    free(r->ssh_key_path);
    free(r->ssh_pubkey_path);
    free_secret(r->ssh_passphrase);
    free(r->ca_file);
    free(r->ssh_known_hosts);
    free(r->display_url);
    free(r->local_path);
    free(r->branch_ref);
    free(r->tracking_ref);
    free(r->ssh_port);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
    gitnet_shutdown();
}

int gitops_contains(struct gitops_repo *r, const char *commit, const char *ancestor, bool *out)
{
    git_oid c, a, tip;
    git_commit *obj = NULL;
    bool exists = false, local = false;
    int rc = 0;

    *out = false;
    if (!commit || !ancestor || git_oid_fromstr(&c, commit) != 0 ||
        git_oid_fromstr(&a, ancestor) != 0)
        return cap_error_set(CAP_EINVALID, "not a commit id");
    if (git_oid_equal(&c, &a)) {
        *out = true;
        return 0;
    }
    own(r);
    if (!r->repo && (rc = cache_init(r)) != 0)
        goto cleanup;
    /* a commit another process pushed may not be in this cache yet */
    if (git_commit_lookup(&obj, r->repo, &c) != 0 &&
        (rc = gitops_net_fetch(r, &tip, &exists, &local)) != 0)
        goto cleanup;
    git_commit_free(obj);
    obj = NULL;
    if (git_commit_lookup(&obj, r->repo, &c) != 0) {
        rc = cap_error_set(CAP_ENOTFOUND, "commit %.12s is not in the fleet repository", commit);
        goto cleanup;
    }
    *out = git_graph_descendant_of(r->repo, &c, &a) == 1;
cleanup:
    git_commit_free(obj);
    release(r);
    return rc;
}
