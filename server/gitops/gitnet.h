/* capstan: libgit2 networking shared by the GitOps engine and the platform repository provider
 * (server/cloud/git.c).
 *
 * - gitnet_init/gitnet_shutdown: libgit2 initialised once per process (and kept up), with
 *   no system, XDG or global git configuration, capstan's user agent and the deadline-aware TCP
 *   stream (stream.c; libgit2 1.5 has no network timeouts of its own);
 * - per-thread deadlines for network I/O;
 * - struct gitnet_remote: the payload of one fetch or push, and the remote callbacks that use it:
 *   credentials offered once per kind (asked again means rejected) and only when the caller
 *   gave some for this remote; TLS certificates verified by libgit2 and, when that fails, against
 *   a CA file; progress callbacks that end the operation at the deadline; a compare-and-swap push
 *   (push_negotiation refuses to send unless the remote branch is where the caller expects);
 * - connect, fetch and push options with those callbacks and redirects refused.
 *
 * Invariants: TLS verification is never switched off; credentials go only where the caller put
 * them (struct gitnet_remote.cred); nothing here logs a credential or puts one in a message.
 * Thread safety: a struct gitnet_remote belongs to one operation on one thread; deadlines are
 * per thread; gitnet_init and gitnet_shutdown may be called from any thread. */
#ifndef CAPSTAN_GITOPS_GITNET_H
#define CAPSTAN_GITOPS_GITNET_H

#include <git2.h>
#include <stdbool.h>

#define GITNET_WHY_MAX 200

/* --- libgit2 set-up (gitnet.c) --- */

/* Takes a reference on libgit2. The first one initialises it: no system, XDG or global git
 * configuration, the user agent "capstan/<version>", the deadline-aware stream. 0, or CAP_ERROR
 * with the last error set. Every success is paired with one gitnet_shutdown. */
int gitnet_init(void);
/* Drops a reference taken by gitnet_init. libgit2 stays initialised until the process ends
 * (libgit2 1.5 cannot be initialised again safely after a shutdown). */
void gitnet_shutdown(void);

/* The last libgit2 error message, or "unknown error" (borrowed; valid until the next libgit2 call
 * on this thread). It may quote a URL or a server's answer: clean it before users see it. */
const char *gitnet_error_message(void);

/* --- deadlines (stream.c) --- */

/* Sets the calling thread's deadline for network I/O to now + timeout_ms (<= 0: none) and clears
 * the timed-out flag. */
void gitnet_deadline_set(long long timeout_ms);
/* True if the deadline passed since the last gitnet_deadline_set on this thread. */
bool gitnet_deadline_passed(void);
/* True if an I/O call or a progress callback gave up because of the deadline. */
bool gitnet_timed_out(void);

/* --- one fetch or push (gitnet.c) --- */

/* What may be offered to a remote (borrowed strings; never logged). HTTPS: a token (basic-auth
 * password with user `username`, default "x-access-token"), else `password` with user
 * `username`, else the URL's user, else "". SSH: the key file (+ public key, passphrase) with the
 * URL's user, else `username`, else "git"; a bare user name when that is all the server asks. */
struct gitnet_credentials {
    const char *username, *password, *token;
    const char *ssh_key_path, *ssh_pubkey_path, *ssh_passphrase;
};

struct gitnet_remote;

/* Checks a certificate that is not X.509 (an SSH host key): 0 to accept, GIT_PASSTHROUGH to let
 * libgit2 decide, GIT_ECERTIFICATE (with cert_failed and cert_why set) to refuse. */
typedef int (*gitnet_other_cert_fn)(struct gitnet_remote *rem, git_cert *cert, int valid,
                                    const char *host);

struct gitnet_remote {
    /* set by the caller (zero the struct first) */
    const struct gitnet_credentials *cred; /* NULL: nothing is offered to this remote */
    const char *ca_file;                   /* NULL or "": libgit2's verification only */
    gitnet_other_cert_fn other_cert;       /* NULL: only X.509 certificates are accepted */
    void *payload;                         /* for other_cert */
    const char *branch_ref;                /* push: the remote branch it updates */
    const git_oid *expected_old;           /* push: its tip now; NULL: it must not exist */
    /* what the callbacks saw */
    unsigned offered;    /* GIT_CREDENTIAL_* kinds already offered */
    bool no_credentials; /* the remote asked for credentials and none fit */
    bool auth_failed;    /* the remote asked again for what it was given */
    bool cert_failed;    /* a certificate or host key was refused; why in cert_why */
    char cert_why[GITNET_WHY_MAX];
    bool stale;    /* push: the remote branch is not at expected_old */
    bool reported; /* push: the server reported a status for branch_ref */
    bool ref_ok;   /* push: ... and it was "ok" (else its message, raw, in ref_status) */
    char ref_status[GITNET_WHY_MAX];
};

/* Fills the options with rem's callbacks (rem is their payload and must outlive the operation),
 * redirects refused; push: one packbuilder thread. */
void gitnet_connect_options(git_remote_connect_options *out, struct gitnet_remote *rem);
void gitnet_fetch_options(git_fetch_options *out, struct gitnet_remote *rem);
void gitnet_push_options(git_push_options *out, struct gitnet_remote *rem);

/* An in-memory remote for url in repo. insteadOf rewriting is skipped (no configuration may
 * redirect it; also, libgit2 1.5 leaks PCRE2 match data on every config entry its insteadOf
 * pattern does not match) and no default fetch refspec is added. display: url without
 * credentials, for the message. CAP_EINVALID if libgit2 refuses the URL. */
int gitnet_remote_new(git_remote **out, git_repository *repo, const char *url, const char *display);

/* Why a network operation failed, in the order that decides it. */
enum gitnet_failure {
    GITNET_FAIL_TIMEOUT = 1,    /* the deadline passed */
    GITNET_FAIL_NO_CREDENTIALS, /* the remote asked for credentials and none fit */
    GITNET_FAIL_AUTH,           /* the credentials were rejected */
    GITNET_FAIL_CERT,           /* the server is not trusted (why: rem->cert_why, if set) */
    GITNET_FAIL_OTHER
};
/* Classifies grc (< 0, from a libgit2 network call made with rem's callbacks). */
enum gitnet_failure gitnet_failure_of(const struct gitnet_remote *rem, int grc);

#endif
