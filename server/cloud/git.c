/* capstan: the git provider of tenant platform repositories, on libgit2.
 *
 * One call: fetch the blueprint's branch into a scratch bare repository
 * (cache_dir/platform-<tenant>.git, made afresh and removed afterwards), then bring it to the
 * tenant repository:
 *   - a local path: the bare repository is created if missing; the blueprint's objects are
 *     copied in with a pack and the branch is created only if it does not exist (a
 *     compare-and-swap under the ref's lock file);
 *   - an https URL: the repository must exist. Its branches are listed and the branch fetched;
 *     then it is pushed with a push_negotiation callback that refuses to send unless the remote
 *     branch is still absent (the server checks the old value again under its ref lock).
 * A branch that already holds the blueprint's tip in its history is reused (a retried job);
 * one with unrelated history, or other branches without ours, is CAP_ECONFLICT. Nothing is
 * ever force-pushed or deleted on the remote.
 *
 * Invariants:
 *   - calls for the same tenant are serialized by flock on cache_dir/platform-<tenant>.lock
 *     (threads and processes alike); only cache_dir/platform-<tenant>.git is ever removed;
 *   - credentials go only to the tenant repository's origin (scheme, host and port), and to the
 *     blueprint only when it has the same origin (or when tenant repositories are local paths);
 *     they never appear in messages (libgit2's messages are cleaned, the password replaced);
 *   - TLS verification stays on: libgit2 checks against the system store, and when that fails
 *     and a CA file is configured, the leaf is verified against it with OpenSSL;
 *   - network I/O is bounded: this thread's deadline is set before each network operation.
 * libgit2's set-up, the remote callbacks (credentials, certificates, deadlines, the
 * compare-and-swap push) and the remote options are the GitOps engine's (gitops/gitnet.h). */
#include "cloud/internal.h"

#include "gitops/gitnet.h"
#include "log/log.h"
#include "util/error.h"
#include "util/str.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLUEPRINT_REF "refs/capstan/blueprint"
#define TARGET_REF    "refs/capstan/target"
#define PUSH_ROUNDS   3
#define LOCK_POLL_MS  50
#define PATH_BUF      (PLATFORM_URL_MAX + 128)
#define REF_BUF       (PLATFORM_BRANCH_MAX + 16)

struct gp {
    const struct platform_options *opt;
    const char *tenant;
    const char *branch;
    char branch_ref[REF_BUF];      /* refs/heads/<branch> */
    const char *target;            /* the expanded url_pattern */
    const char *target_path;       /* inside target when it is a local path */
    char origin[PLATFORM_URL_MAX]; /* "https://host:port" of the target, or "" */
    bool bp_same_origin;
    char work[PATH_BUF]; /* the scratch repository */
    int lock_fd;
    git_repository *repo;
    long long timeout_ms;
    int64_t deadline;
};

/* One fetch or push: gitnet's callback state, and what the messages name. */
struct net_ctx {
    struct gitnet_remote net;
    struct gitnet_credentials cred;
    struct gp *p;
    const char *display; /* the URL, for messages (it holds no credentials) */
    const char *what;    /* "blueprint" or "tenant repository" */
};

/* ---- small helpers ---------------------------------------------------------------------- */

static long long left_ms(const struct gp *p)
{
    int64_t r = p->deadline - cap_mono_ms();
    return r > 0 ? (long long)r : 0;
}

static const char *git_msg(const struct gp *p, char *buf, size_t size)
{
    platform_clean_message(buf, size, gitnet_error_message(),
                           p->opt->password && *p->opt->password ? p->opt->password : NULL);
    return buf;
}

static int local_fail(const struct gp *p, const char *doing)
{
    char msg[CAP_ERROR_MESSAGE_MAX / 2];
    return cap_error_set(CAP_ERROR, "git: local failure while %s: %s", doing,
                         git_msg(p, msg, sizeof(msg)));
}

/* "https://host:port" (host lower-cased, port 443 by default) of an https URL. */
static void origin_of(char *out, size_t size, const char *url)
{
    const char *host = url + 8, *end = strchr(host, '/');
    size_t n = end ? (size_t)(end - host) : strlen(host);
    bool has_port = false;

    out[0] = '\0';
    if (platform_location_kind(url, NULL) != PLATFORM_LOC_HTTPS || n + 16 >= size)
        return;
    if (host[0] == '[')
        has_port = memchr(host, ']', n) && ((const char *)memchr(host, ']', n))[1] == ':';
    else
        has_port = memchr(host, ':', n) != NULL;
    snprintf(out, size, "https://%.*s%s", (int)n, host, has_port ? "" : ":443");
    cap_str_lower(out);
}

static int mkdir_p(const char *path)
{
    char buf[PATH_BUF];
    struct stat st;
    if (cap_strlcpy(buf, path, sizeof(buf)) >= sizeof(buf))
        return cap_error_set(CAP_EINVALID, "the cache folder name is too long");
    for (char *s = buf + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return cap_error_set(CAP_ERROR, "cannot create folder \"%.200s\": %s", buf,
                                 strerror(errno));
        *s = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return cap_error_set(CAP_ERROR, "cannot create folder \"%.200s\": %s", buf,
                             strerror(errno));
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return cap_error_set(CAP_ERROR, "\"%.200s\" is not a folder", buf);
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Removes the scratch repository (only ever p->work). */
static int rm_work(const struct gp *p)
{
    struct stat st;
    if (lstat(p->work, &st) != 0)
        return errno == ENOENT ? 0
                               : cap_error_set(CAP_ERROR, "cannot inspect \"%.200s\": %s", p->work,
                                               strerror(errno));
    if (nftw(p->work, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return cap_error_set(CAP_ERROR, "cannot remove the scratch clone \"%.200s\": %s", p->work,
                             strerror(errno));
    return 0;
}

/* Takes cache_dir/platform-<tenant>.lock, waiting at most until the deadline. */
static int lock_take(struct gp *p)
{
    char path[PATH_BUF];
    snprintf(path, sizeof(path), "%s/platform-%s.lock", p->opt->cache_dir, p->tenant);
    p->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (p->lock_fd < 0)
        return cap_error_set(CAP_ERROR, "cannot open the lock file \"%.200s\": %s", path,
                             strerror(errno));
    while (flock(p->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR)
            return cap_error_set(CAP_ERROR, "cannot lock \"%.200s\": %s", path, strerror(errno));
        if (left_ms(p) <= LOCK_POLL_MS)
            return cap_error_set(CAP_ETIMEOUT,
                                 "the platform repository of tenant %s is being made by another "
                                 "call that did not finish within %lld ms",
                                 p->tenant, p->timeout_ms);
        cap_sleep_ms(LOCK_POLL_MS);
    }
    return 0;
}

static void lock_release(struct gp *p)
{
    if (p->lock_fd >= 0) {
        flock(p->lock_fd, LOCK_UN);
        close(p->lock_fd);
        p->lock_fd = -1;
    }
}

/* ---- network operations ----------------------------------------------------------------- */

/* The callbacks' state for one operation on url (display). The credentials go only to a remote
 * the caller allows (credentials: the tenant repository's origin, or the blueprint on that same
 * origin); a push may only create branch_ref. */
static void net_ctx_init(struct net_ctx *ctx, struct gp *p, const char *display, const char *what,
                         bool credentials)
{
    const struct platform_options *opt = p->opt;

    memset(ctx, 0, sizeof(*ctx));
    ctx->p = p;
    ctx->display = display;
    ctx->what = what;
    if (credentials && opt->username && *opt->username) {
        ctx->cred.username = opt->username;
        ctx->cred.password = opt->password ? opt->password : "";
        ctx->net.cred = &ctx->cred;
    }
    ctx->net.ca_file = opt->ca_file; /* only X.509 certificates: ssh is refused */
    ctx->net.branch_ref = p->branch_ref;
    ctx->net.expected_old = NULL;
}

/* Maps a failed network operation to a CAP_* code and a message for users. */
static int net_fail(struct net_ctx *ctx, int grc, const char *doing)
{
    const struct gp *p = ctx->p;
    char msg[CAP_ERROR_MESSAGE_MAX / 2];

    git_msg(p, msg, sizeof(msg));
    switch (gitnet_failure_of(&ctx->net, grc)) {
    case GITNET_FAIL_TIMEOUT:
        return cap_error_set(CAP_ETIMEOUT, "git remote %s did not answer within %lld ms while %s",
                             ctx->display, p->timeout_ms, doing);
    case GITNET_FAIL_NO_CREDENTIALS:
        return cap_error_set(CAP_EUNAUTHORIZED,
                             "git remote %s (%s) requires authentication and no credentials "
                             "are configured for it",
                             ctx->display, ctx->what);
    case GITNET_FAIL_AUTH:
        return cap_error_set(CAP_EUNAUTHORIZED,
                             "authentication to git remote %s failed: check the configured "
                             "username and password",
                             ctx->display);
    case GITNET_FAIL_CERT:
        return cap_error_set(CAP_ERROR, "git remote %s is not trusted: %s", ctx->display,
                             ctx->net.cert_failed ? ctx->net.cert_why : msg);
    case GITNET_FAIL_OTHER:
        break;
    }
    if (strstr(msg, "status code: 404") || strstr(msg, "could not find repository") ||
        strstr(msg, "failed to resolve path"))
        return cap_error_set(
            strcmp(ctx->what, "blueprint") == 0 ? CAP_EINVALID : CAP_ENOTFOUND,
            "git %s %s does not exist%s", ctx->what, ctx->display,
            strcmp(ctx->what, "blueprint") == 0 ? "" : ": create the empty repository first");
    return cap_error_set(CAP_EUNAVAILABLE, "git remote %s is unavailable while %s: %s",
                         ctx->display, doing, msg);
}

static void deadline_start(const struct gp *p)
{
    long long left = left_ms(p);
    gitnet_deadline_set(left < p->timeout_ms ? (left > 0 ? left : 1) : p->timeout_ms);
}

/* Lists url's branches and fetches `branch` into local_ref. *exists: the branch is there (its
 * tip in *tip, present in the scratch repository); *others: other branches are there. */
static int fetch_branch(struct gp *p, struct net_ctx *ctx, const char *url, const char *local_ref,
                        git_oid *tip, bool *exists, bool *others)
{
    git_remote_connect_options co;
    git_fetch_options fo;
    git_remote *remote = NULL;
    git_reference *ref = NULL;
    git_odb *odb = NULL;
    const git_remote_head **heads = NULL;
    size_t nheads = 0;
    char spec[2 * REF_BUF + 8];
    char *specp = spec;
    git_strarray specs = {&specp, 1};
    int rc = 0, grc;

    *exists = false;
    if (others)
        *others = false;
    snprintf(spec, sizeof(spec), "+%s:%s", p->branch_ref, local_ref);
    if ((rc = gitnet_remote_new(&remote, p->repo, url, ctx->display)) != 0)
        return rc;
    gitnet_connect_options(&co, &ctx->net);
    deadline_start(p);
    if ((grc = git_remote_connect_ext(remote, GIT_DIRECTION_FETCH, &co)) < 0) {
        rc = net_fail(ctx, grc, "connecting");
        goto cleanup;
    }
    if ((grc = git_remote_ls(&heads, &nheads, remote)) < 0) {
        rc = net_fail(ctx, grc, "listing branches");
        goto cleanup;
    }
    for (size_t i = 0; i < nheads; i++) {
        if (strcmp(heads[i]->name, p->branch_ref) == 0) {
            git_oid_cpy(tip, &heads[i]->oid);
            *exists = true;
        } else if (others && strncmp(heads[i]->name, "refs/heads/", 11) == 0) {
            *others = true;
        }
    }
    if (!*exists)
        goto cleanup;
    if (git_repository_odb(&odb, p->repo) < 0) {
        rc = local_fail(p, "opening the object database");
        goto cleanup;
    }
    if (!git_odb_exists(odb, tip)) {
        gitnet_fetch_options(&fo, &ctx->net);
        if ((grc = git_remote_download(remote, &specs, &fo)) < 0) {
            rc = net_fail(ctx, grc, "fetching");
            goto cleanup;
        }
        if (!git_odb_exists(odb, tip)) {
            rc = cap_error_set(CAP_EUNAVAILABLE, "git remote %s sent no commit for branch %s",
                               ctx->display, p->branch);
            goto cleanup;
        }
    }
    if (git_reference_create(&ref, p->repo, local_ref, tip, 1, "capstan: fetch") < 0)
        rc = local_fail(p, "recording the fetched branch");
cleanup:
    gitnet_deadline_set(0);
    git_reference_free(ref);
    git_odb_free(odb);
    git_remote_free(remote);
    return rc;
}

/* True if the history of tip (in repo) holds the blueprint's commit bp. */
static int holds_blueprint(git_repository *repo, const git_oid *tip, const git_oid *bp, bool *out)
{
    git_odb *odb = NULL;
    int grc;
    *out = false;
    if (git_oid_equal(tip, bp)) {
        *out = true;
        return 0;
    }
    if (git_repository_odb(&odb, repo) < 0)
        return -1;
    if (git_odb_exists(odb, bp)) {
        grc = git_graph_descendant_of(repo, tip, bp);
        if (grc < 0) {
            git_odb_free(odb);
            return -1;
        }
        *out = grc == 1;
    }
    git_odb_free(odb);
    return 0;
}

static int conflict_unrelated(const struct gp *p)
{
    return cap_error_set(CAP_ECONFLICT,
                         "git repository %s already has a branch %s that does not hold the "
                         "blueprint's history; capstan will not overwrite it: empty it or "
                         "change the URL pattern",
                         p->target, p->branch);
}

static int conflict_not_empty(const struct gp *p)
{
    return cap_error_set(CAP_ECONFLICT,
                         "git repository %s is not empty: it has branches but no %s; capstan "
                         "only fills empty repositories",
                         p->target, p->branch);
}

/* ---- a local tenant repository ---------------------------------------------------------- */

static int target_local(struct gp *p, const git_oid *bp, bool *reused)
{
    git_repository *t = NULL;
    git_repository_init_options io;
    git_reference *ref = NULL, *head = NULL;
    git_reference_iterator *it = NULL;
    git_packbuilder *pb = NULL;
    git_revwalk *walk = NULL;
    char packdir[PATH_BUF], msg[CAP_ERROR_MESSAGE_MAX / 2];
    git_oid tip;
    int rc = 0, grc;

    *reused = false;
    git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
    io.flags =
        GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
    io.initial_head = p->branch;
    if (access(p->target_path, F_OK) != 0) {
        grc = git_repository_init_ext(&t, p->target_path, &io);
        if (grc == 0)
            log_info("git: created bare repository %s", p->target);
        else if (grc != GIT_EEXISTS) {
            rc = cap_error_set(CAP_ERROR, "cannot create the git repository %s: %s", p->target,
                               git_msg(p, msg, sizeof(msg)));
            goto cleanup;
        }
    }
    if (!t &&
        git_repository_open_ext(&t, p->target_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0) {
        rc = cap_error_set(CAP_ECONFLICT, "%s exists but is not a git repository", p->target);
        goto cleanup;
    }
    if (!git_repository_is_bare(t)) {
        rc = cap_error_set(CAP_ECONFLICT, "%s is not a bare git repository", p->target);
        goto cleanup;
    }
    for (int round = 0; round < PUSH_ROUNDS; round++) {
        git_reference_free(ref);
        ref = NULL;
        grc = git_reference_name_to_id(&tip, t, p->branch_ref);
        if (grc == 0) {
            bool holds;
            if (holds_blueprint(t, &tip, bp, &holds) < 0) {
                rc = local_fail(p, "reading the tenant repository's history");
                goto cleanup;
            }
            if (!holds) {
                rc = conflict_unrelated(p);
                goto cleanup;
            }
            *reused = true;
            goto cleanup;
        }
        if (grc != GIT_ENOTFOUND) {
            rc = local_fail(p, "reading the tenant repository's branch");
            goto cleanup;
        }
        if (git_reference_iterator_glob_new(&it, t, "refs/heads/*") < 0) {
            rc = local_fail(p, "listing the tenant repository's branches");
            goto cleanup;
        }
        grc = git_reference_next(&head, it);
        git_reference_iterator_free(it);
        it = NULL;
        git_reference_free(head);
        head = NULL;
        if (grc == 0) {
            rc = conflict_not_empty(p);
            goto cleanup;
        }
        /* copy the blueprint's history in one pack, then create the branch if still absent */
        if (!pb) {
            if (git_packbuilder_new(&pb, p->repo) < 0 || git_revwalk_new(&walk, p->repo) < 0 ||
                git_revwalk_push(walk, bp) < 0 || git_packbuilder_insert_walk(pb, walk) < 0) {
                rc = local_fail(p, "packing the blueprint");
                goto cleanup;
            }
            snprintf(packdir, sizeof(packdir), "%sobjects/pack", git_repository_path(t));
            if (git_packbuilder_write(pb, packdir, 0, NULL, NULL) < 0) {
                rc = cap_error_set(CAP_ERROR, "cannot write to the git repository %s: %s",
                                   p->target, git_msg(p, msg, sizeof(msg)));
                goto cleanup;
            }
        }
        grc = git_reference_create(&ref, t, p->branch_ref, bp, 0, "capstan: platform blueprint");
        if (grc == GIT_EEXISTS || grc == GIT_ELOCKED)
            continue; /* another writer made it meanwhile: look again */
        if (grc < 0) {
            rc = cap_error_set(CAP_ERROR, "cannot create branch %s in %s: %s", p->branch, p->target,
                               git_msg(p, msg, sizeof(msg)));
            goto cleanup;
        }
        /* clones should check out our branch: point an unborn HEAD at it */
        if (git_repository_head_unborn(t) == 1 && git_repository_set_head(t, p->branch_ref) < 0)
            log_warn("git: cannot point HEAD of %s at %s", p->target, p->branch);
        goto cleanup;
    }
    rc = cap_error_set(CAP_EUNAVAILABLE, "branch %s of %s keeps changing; try again", p->branch,
                       p->target);
cleanup:
    git_revwalk_free(walk);
    git_packbuilder_free(pb);
    git_reference_free(ref);
    git_repository_free(t);
    return rc;
}

/* ---- a remote tenant repository --------------------------------------------------------- */

static int target_remote(struct gp *p, const git_oid *bp, bool *reused)
{
    char msg[CAP_ERROR_MESSAGE_MAX / 2];
    char spec[2 * REF_BUF + 8];
    char *specp = spec;
    git_strarray specs = {&specp, 1};
    int rc = 0;

    *reused = false;
    snprintf(spec, sizeof(spec), "%s:%s", BLUEPRINT_REF, p->branch_ref);
    for (int round = 0; round < PUSH_ROUNDS; round++) {
        struct net_ctx ctx;
        git_push_options po;
        git_remote *remote = NULL;
        git_oid tip;
        bool exists, others;
        int grc;

        net_ctx_init(&ctx, p, p->target, "tenant repository", true);
        if ((rc = fetch_branch(p, &ctx, p->target, TARGET_REF, &tip, &exists, &others)) != 0)
            return rc;
        if (exists) {
            bool holds;
            if (holds_blueprint(p->repo, &tip, bp, &holds) < 0)
                return local_fail(p, "reading the tenant repository's history");
            if (!holds)
                return conflict_unrelated(p);
            *reused = true;
            return 0;
        }
        if (others)
            return conflict_not_empty(p);

        net_ctx_init(&ctx, p, p->target, "tenant repository", true);
        gitnet_push_options(&po, &ctx.net);
        if ((rc = gitnet_remote_new(&remote, p->repo, p->target, p->target)) != 0)
            return rc;
        deadline_start(p);
        grc = git_remote_push(remote, &specs, &po);
        git_remote_free(remote);
        if (ctx.net.stale || (grc == 0 && ctx.net.reported && !ctx.net.ref_ok) ||
            grc == GIT_ENONFASTFORWARD) {
            char why[sizeof(ctx.net.ref_status)];
            platform_clean_message(why, sizeof(why), ctx.net.ref_status, NULL);
            gitnet_deadline_set(0);
            log_info("git: branch %s of %s appeared meanwhile (%s); looking again", p->branch,
                     p->target, ctx.net.stale ? "created by another writer" : why);
            continue;
        }
        if (grc < 0)
            rc = net_fail(&ctx, grc, "pushing");
        else if (!ctx.net.reported)
            rc = cap_error_set(CAP_EUNAVAILABLE,
                               "git remote %s reported no status for branch %s; a retry will "
                               "tell whether it landed: %s",
                               p->target, p->branch, git_msg(p, msg, sizeof(msg)));
        gitnet_deadline_set(0);
        return rc;
    }
    return cap_error_set(CAP_EUNAVAILABLE, "branch %s of %s keeps changing; try again", p->branch,
                         p->target);
}

/* ---- the provider ----------------------------------------------------------------------- */

int platform_git_ensure(const struct platform_options *opt, const char *tenant, const char *target,
                        char *url, size_t url_size)
{
    struct gp p = {0};
    struct net_ctx bctx;
    char bp_origin[PLATFORM_URL_MAX];
    enum platform_location tkind;
    git_oid bp;
    bool exists = false, reused = false, up = false;
    int rc = 0;

    p.opt = opt;
    p.tenant = tenant;
    p.target = target;
    p.lock_fd = -1;
    p.branch = opt->blueprint_branch && *opt->blueprint_branch ? opt->blueprint_branch
                                                               : PLATFORM_DEFAULT_BRANCH;
    p.timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : PLATFORM_DEFAULT_TIMEOUT_MS;
    p.deadline = cap_mono_ms() + p.timeout_ms;
    snprintf(p.branch_ref, sizeof(p.branch_ref), "refs/heads/%s", p.branch);
    tkind = platform_location_kind(target, &p.target_path);
    if (tkind == PLATFORM_LOC_BAD)
        return cap_error_set_field(CAP_EINVALID, "url_pattern",
                                   "\"%.200s\" is not an https URL or an absolute path", target);
    if (platform_location_kind(opt->blueprint_url, NULL) == PLATFORM_LOC_HTTPS) {
        /* the credentials belong to the Git server of the tenant repository, or to the
         * blueprint's server when tenant repositories are local */
        origin_of(p.origin, sizeof(p.origin), target);
        origin_of(bp_origin, sizeof(bp_origin), opt->blueprint_url);
        p.bp_same_origin =
            tkind == PLATFORM_LOC_LOCAL || (p.origin[0] && strcmp(p.origin, bp_origin) == 0);
    }
    if (cap_strlcpy(url, target, url_size) >= url_size) {
        url[0] = '\0';
        return cap_error_set(CAP_ETOOBIG, "the repository URL does not fit %zu bytes", url_size);
    }
    url[0] = '\0';
    if (opt->password && *opt->password)
        log_add_secret(opt->password);

    if ((rc = gitnet_init()) != 0)
        return rc;
    up = true;
    if ((rc = mkdir_p(opt->cache_dir)) != 0 || (rc = lock_take(&p)) != 0)
        goto cleanup;
    snprintf(p.work, sizeof(p.work), "%s/platform-%s.git", opt->cache_dir, tenant);
    if ((rc = rm_work(&p)) != 0)
        goto cleanup;
    if (git_repository_init(&p.repo, p.work, 1) < 0) {
        rc = local_fail(&p, "creating the scratch clone");
        goto cleanup;
    }

    net_ctx_init(&bctx, &p, opt->blueprint_url, "blueprint", p.bp_same_origin);
    if ((rc = fetch_branch(&p, &bctx, opt->blueprint_url, BLUEPRINT_REF, &bp, &exists, NULL)) != 0)
        goto cleanup;
    if (!exists) {
        rc = cap_error_set(CAP_EINVALID, "the blueprint repository %s has no branch %s",
                           opt->blueprint_url, p.branch);
        goto cleanup;
    }
    rc = tkind == PLATFORM_LOC_LOCAL ? target_local(&p, &bp, &reused)
                                     : target_remote(&p, &bp, &reused);
    if (rc == 0) {
        char hex[GIT_OID_HEXSZ + 1];
        git_oid_tostr(hex, sizeof(hex), &bp);
        log_info("git: platform repository of tenant %s %s: %s (blueprint %s at %s)", tenant,
                 reused ? "found" : "created", target, p.branch, hex);
        cap_strlcpy(url, target, url_size);
    }
cleanup:
    git_repository_free(p.repo);
    if (p.work[0]) {
        /* keep the call's own error when the clean-up fails */
        char msg[CAP_ERROR_MESSAGE_MAX], field[CAP_ERROR_FIELD_MAX];
        int code = cap_error_code();
        cap_strlcpy(msg, cap_error_message(), sizeof(msg));
        cap_strlcpy(field, cap_error_field() ? cap_error_field() : "", sizeof(field));
        if (rm_work(&p) != 0)
            log_warn("git: %s", cap_error_message());
        if (rc)
            cap_error_set_field(code, field[0] ? field : NULL, "%s", msg);
    }
    lock_release(&p);
    if (up)
        gitnet_shutdown();
    return rc;
}
