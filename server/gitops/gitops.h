/* capstan: the GitOps engine. Commits changes to the fleet Git repository that Flux applies, and
 * pushes them, on libgit2.
 *
 * Invariants (see server/gitops/README.md for the push retry protocol and group commit):
 *  - the remote branch only ever moves forward: every push is a compare-and-swap from the tip the
 *    change was built on, never a force-push, so nothing another writer committed is lost;
 *  - one change lands at most once: a change whose Capstan-Job trailer is already in the recent
 *    history, or that leaves the tree identical, makes no commit;
 *  - the local cache is disposable: a broken cache is removed and cloned again.
 * Credentials never appear in messages or logs. */
#ifndef CAPSTAN_GITOPS_GITOPS_H
#define CAPSTAN_GITOPS_GITOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on what a change may carry (CAP_EINVALID / CAP_ETOOBIG past them). */
#define GITOPS_PATH_MAX       1024       /* bytes of one path */
#define GITOPS_SEGMENT_MAX    255        /* bytes of one path segment */
#define GITOPS_FILE_MAX       (8u << 20) /* bytes of one file */
#define GITOPS_OPS_MAX        4096       /* ops in one change */
#define GITOPS_SUMMARY_MAX    200        /* bytes of a summary */
#define GITOPS_ACTOR_MAX      256        /* bytes of requested_by */
#define GITOPS_BATCH_MAX      64         /* changes carried by one commit */
#define GITOPS_HISTORY_SEARCH 1000       /* commits searched back for a Capstan-Job trailer */

enum gitops_op_kind { GITOPS_PUT = 1, GITOPS_DELETE = 2 };

/* PUT writes a file (creating folders, replacing a folder or file in the way); DELETE removes a
 * file or a whole folder (recursively; nothing there is not an error). Paths are relative and
 * '/'-separated, with no "." or ".." segment, no leading or trailing '/', no empty segment, no
 * ".git" segment (any case), no backslash and no control character. */
struct gitops_op {
    enum gitops_op_kind kind;
    const char *path;
    const char *content; /* PUT: len bytes (may hold NUL); NULL only when len is 0 */
    size_t len;
};

struct gitops_change {
    const char *job_id;       /* a UUID; becomes the trailer Capstan-Job */
    const char *summary;      /* "<kind> <tenant>[/<env>]": the commit subject */
    const char *requested_by; /* trailer Capstan-Requested-By */
    const struct gitops_op *ops;
    size_t nops;
};

struct gitops_result {
    char commit[41]; /* the commit that carries the change ("" only if the branch has no commit) */
    bool changed;    /* false: nothing to do; commit = the commit found by the change's
                        Capstan-Job trailer, else the tip */
    unsigned attempts; /* push attempts the change needed (0 when nothing was pushed) */
    unsigned batch;    /* changes carried by the same commit (0 when unchanged) */
};

/* A view of the tree being built, for the finalize hook. Paths as for gitops_op; "" names the
 * root folder in gitops_tree_list. Not thread-safe; valid only during the hook. */
struct gitops_tree;

/* Called after the ops of each change (and after the seed) are applied, so the caller can derive
 * files from the resulting tree (capstan regenerates kustomization.yaml lists). Must be
 * deterministic. Returns 0 or a CAP_E* code (with the last error set); an error fails that
 * change only. Runs on whichever thread leads the round, with the repository locked: it must not
 * call back into gitops. change is the change just applied (its ops say what it touched), or
 * NULL after the seed. */
typedef int (*gitops_finalize_fn)(void *ctx, struct gitops_tree *t,
                                  const struct gitops_change *change);

/* The sorted (bytewise) entry names of dir: files and folders, or folders only. A missing dir has
 * 0 entries. *out_names is the caller's to free with gitops_names_free. */
int gitops_tree_list(struct gitops_tree *t, const char *dir, char ***out_names, size_t *out_n,
                     bool dirs_only);
void gitops_names_free(char **names, size_t n);
/* The content of the file at path into *out (NUL-terminated, caller frees) and *out_len.
 * CAP_ENOTFOUND if there is no file there. */
int gitops_tree_read(struct gitops_tree *t, const char *path, char **out, size_t *out_len);
int gitops_tree_put(struct gitops_tree *t, const char *path, const char *content, size_t len);
int gitops_tree_delete(struct gitops_tree *t, const char *path);

struct gitops_options {
    const char *url;       /* https://..., http://..., ssh://..., user@host:path, file://... or a
                              plain local path (a bare repository) */
    const char *branch;    /* "main" when NULL */
    const char *cache_dir; /* folder for the local clone (created, mode 0700); the clone lives in
                              cache_dir/repo.git and only that is ever removed */
    const char *author_name, *author_email; /* author and committer of every commit */
    /* Credentials. HTTPS: a token (sent as the basic-auth password with user `username`, default
     * "x-access-token") or username + password. SSH: a private key file (+ optional passphrase
     * and public key file), user from the URL, else `username`, else "git". Never logged. */
    const char *username, *password, *token;
    const char *ssh_key_path, *ssh_pubkey_path, *ssh_passphrase;
    const char *ca_file;         /* extra CA certificates (PEM) trusted for HTTPS; verification
                                    always stays on */
    const char *ssh_known_hosts; /* OpenSSH known_hosts file for SSH host keys; NULL: the
                                    process user's ~/.ssh/known_hosts */
    int max_push_attempts;       /* default 8: push attempts per round before CAP_ERETRY */
    long long timeout_ms;        /* bound of each fetch and each push; default 60000 */
    gitops_finalize_fn finalize; /* may be NULL */
    void *finalize_ctx;
    const struct gitops_op *seed; /* files of the very first commit when the remote branch does
                                     not exist yet (an empty repository) */
    size_t nseed;
};

struct gitops_repo;

/* Opens (or clones) the cache and fetches the branch. The options' strings and seed are copied.
 * The cache folder is locked: a second gitops_repo on the same cache_dir fails with
 * CAP_ECONFLICT. A broken or corrupt cache is removed and cloned again.
 * Errors: CAP_EINVALID (bad options or seed), CAP_ECONFLICT, CAP_EUNAVAILABLE (remote unreachable
 * or timed out: retryable), CAP_ERROR (authentication or certificate failure, local I/O).
 * Thread-safe (libgit2 is initialised once per process with a reference count). */
int gitops_open(struct gitops_repo **out, const struct gitops_options *opt);

/* Commits one change and pushes it; blocks until the change is on the remote branch, or failed.
 * Thread-safe. Group commit: while one thread fetches, commits and pushes, changes submitted by
 * other threads queue; the next round carries all queued changes (up to GITOPS_BATCH_MAX) in one
 * commit and one push, and each submitter learns the commit that carries its change. A change
 * that leaves the tree identical, or whose Capstan-Job trailer is already in the history, makes
 * no commit. c and everything it points to must stay valid until the call returns.
 * Errors: CAP_EINVALID (bad job id, summary, actor or op path, with the field set),
 * CAP_ETOOBIG (a file over GITOPS_FILE_MAX), CAP_EUNAVAILABLE (remote unreachable or timed out:
 * retryable; the change may have landed, and a retry with the same job id will not repeat it),
 * CAP_ERETRY (push still rejected after max_push_attempts: retryable), CAP_ERROR (authentication,
 * certificate, finalize hook or local failure). */
int gitops_submit(struct gitops_repo *r, const struct gitops_change *c, struct gitops_result *out);

/* Finds the commit on the remote-tracking branch whose trailer is Capstan-Job: <job_id>,
 * searching back at least GITOPS_HISTORY_SEARCH commits; fetches first when the cache does not
 * know it. CAP_ENOTFOUND if none; CAP_EUNAVAILABLE when it is not in the cache and the remote
 * cannot be reached. Thread-safe (waits for a running round). */
int gitops_find_job_commit(struct gitops_repo *r, const char *job_id, char out[41]);

/* *out is true if commit is ancestor or has it in its history (Flux applied a commit that
 * carries ours). Fetches when commit is not in the cache yet. CAP_ENOTFOUND when commit is
 * unknown to the remote too; CAP_EUNAVAILABLE when the remote cannot be reached. */
int gitops_contains(struct gitops_repo *r, const char *commit, const char *ancestor, bool *out);

/* Counters since gitops_open, for metrics and tests. */
struct gitops_stats {
    uint64_t rounds;          /* rounds run (each takes a batch of queued changes) */
    uint64_t commits;         /* commits pushed */
    uint64_t changes;         /* changes carried by pushed commits */
    uint64_t push_attempts;   /* pushes tried */
    uint64_t push_rejections; /* pushes rejected because another writer moved the branch */
    uint64_t recloned;        /* times a broken cache was removed and cloned again */
};
void gitops_stats_get(struct gitops_repo *r, struct gitops_stats *out);

/* Waits for nothing: callers must not submit concurrently with close. Accepts NULL. */
void gitops_close(struct gitops_repo *r);

/* Checks one op path (see gitops_op). 0 or CAP_EINVALID with a message. */
int gitops_path_check(const char *path);

/* Checks a change: job id, summary, actor, ops. 0 or CAP_EINVALID/CAP_ETOOBIG with the field
 * ("job_id", "summary", "requested_by", "ops[3].path") set. */
int gitops_change_check(const struct gitops_change *c);

/* The commit message for n checked changes (n may be 0: the first commit of a seeded repository).
 * One change: "<summary>\n\nCapstan-Job: <id>\nCapstan-Requested-By: <actor>\n". Several:
 * "capstan: N changes\n\n" + one summary line each + "\n" + one trailer pair each.
 * *out is the caller's to free. */
int gitops_message_build(char **out, const struct gitops_change *const *changes, size_t n);

#endif
