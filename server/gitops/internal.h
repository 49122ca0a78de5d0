/* capstan: declarations shared by the files of the GitOps engine (not for other modules).
 *
 * gitops.c  the repository handle, the submission queue, rounds (build, commit, push, retry)
 * tree.c    the tree being built, on an in-memory git_index
 * net.c     fetch and push: SSH host key checks, error mapping
 * stream.c  the TCP stream libgit2 uses, with a per-thread deadline (gitnet.h)
 * gitnet.c  libgit2 set-up and remote callbacks, shared with cloud/git.c (gitnet.h)
 * message.c validation and the commit message format */
#ifndef CAPSTAN_GITOPS_INTERNAL_H
#define CAPSTAN_GITOPS_INTERNAL_H

#include "gitops/gitnet.h"
#include "gitops/gitops.h"

#include <git2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define GITOPS_TRACKING_PREFIX "refs/remotes/origin/"
#define GITOPS_OUTGOING_REF    "refs/capstan/outgoing"

/* One entry of the index of recent Capstan-Job trailers. */
struct gitops_job_seen {
    char job[37];
    git_oid commit;
};

struct gitops_pending;

struct gitops_repo {
    /* options (owned copies) */
    char *url, *branch, *cache_dir, *repo_dir, *author_name, *author_email;
    char *username, *password, *token, *ssh_key_path, *ssh_pubkey_path, *ssh_passphrase;
    char *ca_file, *ssh_known_hosts;
    char *display_url;  /* url without user information, for messages */
    char *local_path;   /* set when the remote is a local bare repository */
    char *branch_ref;   /* refs/heads/<branch> */
    char *tracking_ref; /* refs/remotes/origin/<branch> */
    char *ssh_port;     /* port of an ssh remote ("22"), for known_hosts */
    int max_push_attempts;
    long long timeout_ms;
    gitops_finalize_fn finalize;
    void *finalize_ctx;
    struct gitops_op *seed;
    size_t nseed;

    int lock_fd;
    git_repository *repo;     /* used only by the thread that holds `busy` */
    git_odb_backend *mempack; /* repo's in-memory object store, owned by repo (may be NULL) */
    git_index *index;         /* the tree of the last round (round_build), when index_valid */
    git_oid index_tree;
    bool index_valid;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool busy; /* a round or a find owns the repository */
    struct gitops_pending *head, **tail;
    struct gitops_stats stats;

    /* ring of recent Capstan-Job trailers, newest last; valid for `jobs_tip` */
    struct gitops_job_seen *jobs;
    size_t jobs_cap, jobs_start, jobs_n;
    git_oid jobs_tip;
    bool jobs_have_tip;
};

/* --- stream.c (the deadline functions are in gitnet.h) --- */
/* Registers the deadline-aware TCP stream with libgit2 (gitnet_init does, with libgit2 up). */
int gitops_stream_register(void);

/* --- net.c --- */
enum gitops_push_outcome { GITOPS_PUSHED = 0, GITOPS_REJECTED = 1 };
/* Fetches the branch: *out_exists false when the remote has no such branch; else *out_tip is its
 * commit, present in the cache and recorded in the tracking ref. *out_local is set when the
 * failure lies in the local cache (repair it) rather than in the network. */
int gitops_net_fetch(struct gitops_repo *r, git_oid *out_tip, bool *out_exists, bool *out_local);
/* Pushes commit to the branch if and only if the branch is still at expected_old (NULL: if it does
 * not exist). GITOPS_REJECTED in *out when another writer moved it; reason (may be NULL) gets why.
 */
int gitops_net_push(struct gitops_repo *r, const git_oid *commit, const git_oid *expected_old,
                    enum gitops_push_outcome *out, char *reason, size_t reason_len,
                    bool *out_local);
/* Stores in dst the commits from `commit` back to `expected_old` (all of them when NULL) that
 * dst lacks, oldest first, each after its tree, the contents of a tree before the tree, as
 * loose objects. Costs what the commits changed: an entry equal to the first parent's is
 * skipped (dst has the parent in full). Used to push to a local bare repository (what git
 * receive-pack does with a small push: a pack per push would leave the remote with one pack
 * more per change, and every object lookup walks all of them) and to move a round's commit
 * from memory to the cache's files. -1 with libgit2's error on failure. */
int gitops_copy_commits(git_repository *repo, git_odb *src, git_odb *dst, const git_oid *commit,
                        const git_oid *expected_old);
/* The commits from `from` back to `stop` (excluded), newest first, into ids, when each has one
 * parent and there are at most max of them: how many; 0 otherwise (a merge, a commit that
 * cannot be read, stop not among the first max ancestors, or from == stop). Cheaper than a
 * sorted revision walk with a hidden commit, which marks the whole older history first. */
size_t gitops_linear_chain(git_repository *repo, const git_oid *from, const git_oid *stop,
                           git_oid *ids, size_t max);
/* Replaces every credential in s (in place) by "[redacted]". */
void gitops_redact(const struct gitops_repo *r, char *s, size_t size);

/* --- tree.c --- */
/* A path as it was before the change being applied first touched it. */
struct gitops_tree_mark {
    char *path;
    bool had; /* an entry was there */
    uint32_t mode, file_size;
    git_oid id;
};

struct gitops_tree {
    git_repository *repo;
    git_index *index;
    /* the journal (on between gitops_tree_journal_begin and _end): every path the current
     * change touched, as it was before; tells whether the change altered the tree and undoes it
     * without writing a tree per change */
    bool journal;
    struct gitops_tree_mark *marks;
    size_t nmarks, capmarks;
};
/* Applies one checked op. */
int gitops_tree_apply(struct gitops_tree *t, const struct gitops_op *op);
/* Starts recording the paths that puts and deletes touch (forgetting earlier ones). */
void gitops_tree_journal_begin(struct gitops_tree *t);
/* Whether a path touched since gitops_tree_journal_begin differs from what it was: exactly
 * whether the tree written now would differ from the tree written then. */
bool gitops_tree_journal_changed(const struct gitops_tree *t);
/* Puts every path touched since gitops_tree_journal_begin back as it was. */
int gitops_tree_journal_undo(struct gitops_tree *t);
/* Stops recording and frees the journal. */
void gitops_tree_journal_end(struct gitops_tree *t);

/* --- gitops.c --- */
/* True if the libgit2 error class points at the local cache rather than the network. */
bool gitops_error_is_local(const git_error *e);

#endif
