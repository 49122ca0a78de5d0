/* capstan: fetch and push for the GitOps engine.
 *
 * Fetch: connect, list the remote's refs, download only when the branch tip is not in the cache,
 * and record the tip in refs/remotes/origin/<branch> ourselves.
 * Push: always a compare-and-swap from the tip the commit was built on. Over the network the
 * push_negotiation callback refuses to send when the remote's branch is not at that tip, and the
 * server's receive-pack checks the old value again under its ref lock; the push_update_reference
 * status says whether it did. For a local bare repository libgit2's local transport would
 * force-update the ref, so capstan copies the objects itself and updates the ref with
 * git_reference_create_matching (a CAS under the ref's lock file).
 *
 * The remote callbacks (credentials offered once per kind, HTTPS certificates checked by libgit2
 * and then against the CA file, deadlines, the compare-and-swap push) are gitnet.c's, shared with
 * the platform repository provider; this file adds the SSH host key check: ~/.ssh/known_hosts
 * (libgit2) or the configured file. No message carries a credential: every libgit2 message
 * passes through gitops_redact. */
#include "gitops/internal.h"

#include "log/log.h"
#include "util/error.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KNOWN_HOSTS_MAX (1u << 20)

struct net_ctx {
    struct gitnet_remote net; /* the callbacks' payload; net.payload points back here */
    struct gitnet_credentials cred;
    struct gitops_repo *r;
};

static void replace_all(char *s, size_t size, const char *what, const char *with)
{
    size_t wlen, rlen;
    char *p;

    if (!what || !*what)
        return;
    wlen = strlen(what);
    rlen = strlen(with);
    p = s;
    while ((p = strstr(p, what)) != NULL) {
        size_t tail = strlen(p + wlen);
        if (rlen > wlen && (size_t)(p - s) + rlen + tail + 1 > size) {
            /* no room: blank the secret in place instead */
            memset(p, '*', wlen);
            p += wlen;
            continue;
        }
        memmove(p + rlen, p + wlen, tail + 1);
        memcpy(p, with, rlen);
        p += rlen;
    }
}

void gitops_redact(const struct gitops_repo *r, char *s, size_t size)
{
    if (r->url && r->display_url && strcmp(r->url, r->display_url) != 0)
        replace_all(s, size, r->url, r->display_url);
    replace_all(s, size, r->password, "[redacted]");
    replace_all(s, size, r->token, "[redacted]");
    replace_all(s, size, r->ssh_passphrase, "[redacted]");
}

static const char *git_message(const struct gitops_repo *r, char *buf, size_t size)
{
    snprintf(buf, size, "%s", gitnet_error_message());
    gitops_redact(r, buf, size);
    return buf;
}

/* Maps a failed network operation to a CAP_E* code with a message for users. */
static int net_fail(struct net_ctx *ctx, int grc, const char *doing, bool *out_local)
{
    struct gitops_repo *r = ctx->r;
    char msg[CAP_ERROR_MESSAGE_MAX / 2];

    git_message(r, msg, sizeof(msg));
    switch (gitnet_failure_of(&ctx->net, grc)) {
    case GITNET_FAIL_TIMEOUT:
        return cap_error_set(CAP_EUNAVAILABLE,
                             "git remote %s did not answer within %lld ms while %s", r->display_url,
                             r->timeout_ms, doing);
    case GITNET_FAIL_NO_CREDENTIALS:
        return cap_error_set(CAP_ERROR,
                             "git remote %s requires authentication and no credentials are "
                             "configured",
                             r->display_url);
    case GITNET_FAIL_AUTH:
        return cap_error_set(CAP_ERROR,
                             "authentication to git remote %s failed: check the configured "
                             "credentials",
                             r->display_url);
    case GITNET_FAIL_CERT:
        return cap_error_set(CAP_ERROR, "git remote %s is not trusted: %s", r->display_url,
                             ctx->net.cert_failed ? ctx->net.cert_why : msg);
    case GITNET_FAIL_OTHER:
        break;
    }
    /* libssh2 refusing the offered key (a host key failure comes before any key is offered) */
    if (ctx->net.offered && git_error_last() && git_error_last()->klass == GIT_ERROR_SSH &&
        strstr(msg, "authenticate"))
        return cap_error_set(CAP_ERROR, "authentication to git remote %s failed: %s",
                             r->display_url, msg);
    if (out_local && gitops_error_is_local(git_error_last())) {
        *out_local = true;
        return cap_error_set(CAP_ERROR, "the local git cache failed while %s: %s", doing, msg);
    }
    return cap_error_set(CAP_EUNAVAILABLE, "git remote %s is unavailable while %s: %s",
                         r->display_url, doing, msg);
}

static int local_fail(struct gitops_repo *r, const char *doing, bool *out_local)
{
    char msg[CAP_ERROR_MESSAGE_MAX / 2];
    if (out_local)
        *out_local = true;
    return cap_error_set(CAP_ERROR, "the local git cache failed while %s: %s", doing,
                         git_message(r, msg, sizeof(msg)));
}

/* --- SSH host keys --- */

static size_t b64_decode(unsigned char *out, size_t outsize, const char *in, size_t len)
{
    int n;
    size_t pad = 0;
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > outsize)
        return 0;
    n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0)
        return 0;
    if (in[len - 1] == '=')
        pad++;
    if (len > 1 && in[len - 2] == '=')
        pad++;
    return (size_t)n - pad;
}

/* OpenSSH host patterns: '*' and '?' are wildcards, everything else ('[' too) is literal;
 * case-insensitive. */
static bool pattern_match(const char *pat, size_t plen, const char *s)
{
    while (plen > 0) {
        if (*pat == '*') {
            pat++;
            plen--;
            for (;;) {
                if (pattern_match(pat, plen, s))
                    return true;
                if (!*s)
                    return false;
                s++;
            }
        }
        if (!*s || (*pat != '?' && tolower((unsigned char)*pat) != tolower((unsigned char)*s)))
            return false;
        pat++;
        plen--;
        s++;
    }
    return *s == '\0';
}

/* True if one comma-separated host field of a known_hosts line names hostport. */
static bool known_host_matches(const char *field, const char *hostport)
{
    const char *p = field;
    bool matched = false;

    if (strncmp(field, "|1|", 3) == 0) {
        unsigned char salt[64], hash[64], mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        const char *bar = strchr(field + 3, '|');
        size_t saltn, hashn;
        if (!bar)
            return false;
        saltn = b64_decode(salt, sizeof(salt), field + 3, (size_t)(bar - field - 3));
        hashn = b64_decode(hash, sizeof(hash), bar + 1, strlen(bar + 1));
        if (!saltn || hashn != 20)
            return false;
        if (!HMAC(EVP_sha1(), salt, (int)saltn, (const unsigned char *)hostport, strlen(hostport),
                  mac, &maclen))
            return false;
        return maclen == 20 && memcmp(mac, hash, 20) == 0;
    }
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        bool neg = n > 0 && p[0] == '!';
        if (pattern_match(p + neg, n - neg, hostport)) {
            if (neg)
                return false;
            matched = true;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return matched;
}

/* 1 if the host key is listed for hostport in the known_hosts file, 0 if not (why set). */
static int check_known_hosts(struct gitnet_remote *rem, const struct gitops_repo *r,
                             const git_cert_hostkey *key, const char *host)
{
    char hostport[300], *line = NULL;
    size_t cap = 0, total = 0;
    unsigned char blob[16384];
    ssize_t len;
    int found = 0;
    FILE *f;

    if (!(key->type & GIT_CERT_SSH_RAW)) {
        snprintf(rem->cert_why, sizeof(rem->cert_why), "its host key cannot be read");
        return 0;
    }
    if (strcmp(r->ssh_port, "22") == 0)
        snprintf(hostport, sizeof(hostport), "%s", host);
    else
        snprintf(hostport, sizeof(hostport), "[%s]:%s", host, r->ssh_port);
    f = fopen(r->ssh_known_hosts, "r");
    if (!f) {
        snprintf(rem->cert_why, sizeof(rem->cert_why), "the known hosts file cannot be read");
        return 0;
    }
    snprintf(rem->cert_why, sizeof(rem->cert_why), "its host key is not in the known hosts file");
    while ((len = getline(&line, &cap, f)) > 0) {
        char *save = NULL, *hosts, *type, *b64;
        bool revoked = false;
        size_t n;
        total += (size_t)len;
        if (total > KNOWN_HOSTS_MAX)
            break;
        hosts = strtok_r(line, " \t\r\n", &save);
        if (!hosts || hosts[0] == '#')
            continue;
        if (hosts[0] == '@') {
            if (strcmp(hosts, "@revoked") != 0)
                continue; /* @cert-authority: not supported, never matches */
            revoked = true;
            hosts = strtok_r(NULL, " \t\r\n", &save);
            if (!hosts)
                continue;
        }
        type = strtok_r(NULL, " \t\r\n", &save);
        b64 = strtok_r(NULL, " \t\r\n", &save);
        if (!type || !b64 || !known_host_matches(hosts, hostport))
            continue;
        n = b64_decode(blob, sizeof(blob), b64, strlen(b64));
        if (n == 0 || n != key->hostkey_len || memcmp(blob, key->hostkey, n) != 0)
            continue;
        if (revoked) {
            snprintf(rem->cert_why, sizeof(rem->cert_why), "its host key is revoked");
            found = 0;
            break;
        }
        found = 1;
    }
    free(line);
    fclose(f);
    return found;
}

/* gitnet's check for certificates that are not X.509: SSH host keys. */
static int cb_hostkey(struct gitnet_remote *rem, git_cert *cert, int valid, const char *host)
{
    struct net_ctx *ctx = rem->payload;

    if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2)
        return GIT_PASSTHROUGH;
    if (!ctx->r->ssh_known_hosts) {
        if (!valid) {
            rem->cert_failed = true;
            snprintf(rem->cert_why, sizeof(rem->cert_why),
                     "its host key is not in ~/.ssh/known_hosts");
        }
        return GIT_PASSTHROUGH;
    }
    if (check_known_hosts(rem, ctx->r, (const git_cert_hostkey *)cert, host))
        return 0;
    rem->cert_failed = true;
    git_error_set_str(GIT_ERROR_SSH, rem->cert_why);
    return GIT_ECERTIFICATE;
}

/* The callbacks' state for one fetch or push; expected_old as for gitops_net_push. */
static void net_ctx_init(struct net_ctx *ctx, struct gitops_repo *r, const git_oid *expected_old)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->r = r;
    ctx->cred.username = r->username;
    ctx->cred.password = r->password;
    ctx->cred.token = r->token;
    ctx->cred.ssh_key_path = r->ssh_key_path;
    ctx->cred.ssh_pubkey_path = r->ssh_pubkey_path;
    ctx->cred.ssh_passphrase = r->ssh_passphrase;
    ctx->net.cred = &ctx->cred;
    ctx->net.ca_file = r->ca_file;
    ctx->net.other_cert = cb_hostkey;
    ctx->net.payload = ctx;
    ctx->net.branch_ref = r->branch_ref;
    ctx->net.expected_old = expected_old;
}

/* Opens the local bare repository the remote names; CAP_EUNAVAILABLE if it cannot. */
static int local_remote_open(struct gitops_repo *r, git_repository **out)
{
    char msg[CAP_ERROR_MESSAGE_MAX / 2];
    *out = NULL;
    if (git_repository_open_ext(out, r->local_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
        return cap_error_set(CAP_EUNAVAILABLE, "git remote %s cannot be opened: %s", r->display_url,
                             git_message(r, msg, sizeof(msg)));
    if (!git_repository_is_bare(*out)) {
        git_repository_free(*out);
        *out = NULL;
        return cap_error_set(CAP_ERROR, "git remote %s is not a bare repository", r->display_url);
    }
    return 0;
}

int gitops_net_fetch(struct gitops_repo *r, git_oid *out_tip, bool *out_exists, bool *out_local)
{
    struct net_ctx ctx;
    git_remote_connect_options co;
    git_fetch_options fo;
    git_remote *remote = NULL;
    git_reference *ref = NULL;
    git_odb *odb = NULL;
    const git_remote_head **heads = NULL;
    const git_remote_head *found = NULL;
    char spec[GITOPS_PATH_MAX * 2];
    char *specp = spec;
    git_strarray specs = {&specp, 1};
    size_t nheads = 0, i;
    git_oid tip;
    int rc = 0, grc;

    *out_exists = false;
    *out_local = false;
    net_ctx_init(&ctx, r, NULL);
    if (r->local_path) {
        git_repository *rr = NULL;
        if ((rc = local_remote_open(r, &rr)) != 0)
            return rc;
        git_repository_free(rr);
    }
    snprintf(spec, sizeof(spec), "%s:%s", r->branch_ref, r->tracking_ref);
    gitnet_deadline_set(r->timeout_ms);
    if ((rc = gitnet_remote_new(&remote, r->repo, r->url, r->display_url)) != 0)
        goto cleanup;
    gitnet_connect_options(&co, &ctx.net);
    if ((grc = git_remote_connect_ext(remote, GIT_DIRECTION_FETCH, &co)) < 0) {
        rc = net_fail(&ctx, grc, "connecting", NULL);
        goto cleanup;
    }
    if ((grc = git_remote_ls(&heads, &nheads, remote)) < 0) {
        rc = net_fail(&ctx, grc, "listing branches", NULL);
        goto cleanup;
    }
    for (i = 0; i < nheads; i++) {
        if (strcmp(heads[i]->name, r->branch_ref) == 0) {
            found = heads[i];
            break;
        }
    }
    if (!found) {
        /* no such branch (an empty repository): forget any stale tracking ref */
        if (git_reference_lookup(&ref, r->repo, r->tracking_ref) == 0 &&
            git_reference_delete(ref) < 0) {
            rc = local_fail(r, "forgetting the branch", out_local);
            goto cleanup;
        }
        goto cleanup;
    }
    git_oid_cpy(&tip, &found->oid);
    if (git_repository_odb(&odb, r->repo) < 0) {
        rc = local_fail(r, "opening the object database", out_local);
        goto cleanup;
    }
    if (!git_odb_exists(odb, &tip)) {
        gitnet_fetch_options(&fo, &ctx.net);
        if ((grc = git_remote_download(remote, &specs, &fo)) < 0) {
            rc = net_fail(&ctx, grc, "fetching", out_local);
            goto cleanup;
        }
        if (!git_odb_exists(odb, &tip)) {
            rc = cap_error_set(CAP_EUNAVAILABLE,
                               "git remote %s sent no commit for branch %s while fetching",
                               r->display_url, r->branch);
            goto cleanup;
        }
    }
    git_reference_free(ref);
    ref = NULL;
    if (git_reference_create(&ref, r->repo, r->tracking_ref, &tip, 1, "capstan: fetch") < 0) {
        rc = local_fail(r, "recording the fetched branch", out_local);
        goto cleanup;
    }
    git_oid_cpy(out_tip, &tip);
    *out_exists = true;
cleanup:
    gitnet_deadline_set(0);
    git_reference_free(ref);
    git_odb_free(odb);
    git_remote_free(remote);
    return rc;
}

/* Whether dst has the object, without rescanning its pack folder when it does not (the usual
 * answer here): a pack another writer added meanwhile only costs a duplicate loose object. */
static bool present(git_odb *dst, const git_oid *id)
{
    return git_odb_exists_ext(dst, id, GIT_ODB_LOOKUP_NO_REFRESH) == 1;
}

/* Copies one object from src to dst unless dst has it. */
static int copy_object(git_odb *src, git_odb *dst, const git_oid *id)
{
    git_odb_object *o = NULL;
    git_oid written;
    int rc;

    if (present(dst, id))
        return 0;
    if (git_odb_read(&o, src, id) < 0)
        return -1;
    rc = git_odb_write(&written, dst, git_odb_object_data(o), git_odb_object_size(o),
                       git_odb_object_type(o));
    git_odb_object_free(o);
    return rc;
}

/* Copies a tree and what it holds that dst lacks, contents first, so that a tree dst has is
 * complete there (git's connectivity rule). base is the tree at the same path in the first
 * parent, which dst has in full (NULL: none): an entry equal to base's is skipped without a
 * lookup, so a push costs what the change touched, not the size of the fleet. */
static int copy_tree(git_repository *repo, git_odb *src, git_odb *dst, const git_oid *id,
                     const git_tree *base)
{
    git_tree *t = NULL, *sub_base = NULL;
    size_t i, n;
    int rc = 0;

    if (base && git_oid_equal(git_tree_id(base), id))
        return 0;
    if (present(dst, id))
        return 0;
    if (git_tree_lookup(&t, repo, id) < 0)
        return -1;
    n = git_tree_entrycount(t);
    for (i = 0; i < n && rc == 0; i++) {
        const git_tree_entry *e = git_tree_entry_byindex(t, i);
        const git_tree_entry *b = base ? git_tree_entry_byname(base, git_tree_entry_name(e)) : NULL;
        if (b && git_oid_equal(git_tree_entry_id(b), git_tree_entry_id(e)))
            continue;
        if (git_tree_entry_type(e) == GIT_OBJECT_TREE) {
            if (b && git_tree_entry_type(b) == GIT_OBJECT_TREE &&
                git_tree_lookup(&sub_base, repo, git_tree_entry_id(b)) < 0)
                rc = -1;
            else
                rc = copy_tree(repo, src, dst, git_tree_entry_id(e), sub_base);
            git_tree_free(sub_base);
            sub_base = NULL;
        } else if (git_tree_entry_type(e) == GIT_OBJECT_BLOB) {
            rc = copy_object(src, dst, git_tree_entry_id(e));
        }
    }
    git_tree_free(t);
    return rc == 0 ? copy_object(src, dst, id) : rc;
}

/* Copies one commit whose first parent dst has in full (or that has none), its tree first. */
static int copy_commit(git_repository *repo, git_odb *src, git_odb *dst, const git_oid *id)
{
    git_commit *c = NULL, *parent = NULL;
    git_tree *base = NULL;
    int rc;

    if (present(dst, id))
        return 0;
    if (git_commit_lookup(&c, repo, id) < 0)
        return -1;
    if (git_commit_parentcount(c) > 0 &&
        (git_commit_parent(&parent, c, 0) < 0 || git_commit_tree(&base, parent) < 0))
        rc = -1;
    else
        rc = copy_tree(repo, src, dst, git_commit_tree_id(c), base);
    git_tree_free(base);
    git_commit_free(parent);
    git_commit_free(c);
    return rc == 0 ? copy_object(src, dst, id) : rc;
}

#define COPY_LINEAR_MAX 64

size_t gitops_linear_chain(git_repository *repo, const git_oid *from, const git_oid *stop,
                           git_oid *ids, size_t max)
{
    git_oid at;
    size_t n = 0;

    git_oid_cpy(&at, from);
    while (n < max && !git_oid_equal(&at, stop)) {
        git_commit *c = NULL;
        if (git_commit_lookup(&c, repo, &at) < 0)
            return 0;
        if (git_commit_parentcount(c) != 1) {
            git_commit_free(c);
            return 0;
        }
        git_oid_cpy(&ids[n++], &at);
        git_oid_cpy(&at, git_commit_parent_id(c, 0));
        git_commit_free(c);
    }
    return git_oid_equal(&at, stop) ? n : 0;
}

int gitops_copy_commits(git_repository *repo, git_odb *src, git_odb *dst, const git_oid *commit,
                        const git_oid *expected_old)
{
    git_revwalk *walk = NULL;
    git_oid id, ids[COPY_LINEAR_MAX];
    size_t n;
    int rc, grc = GIT_ITEROVER;

    /* the usual push, a commit or a few on top of the remote's tip, follows the parents: a
     * sorted walk with a hidden tip marks the whole older history first */
    if (expected_old &&
        (n = gitops_linear_chain(repo, commit, expected_old, ids, COPY_LINEAR_MAX)) > 0) {
        for (rc = 0; rc == 0 && n > 0;)
            rc = copy_commit(repo, src, dst, &ids[--n]);
        return rc;
    }
    if (git_revwalk_new(&walk, repo) < 0)
        return -1;
    git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
    rc = git_revwalk_push(walk, commit);
    if (rc == 0 && expected_old)
        rc = git_revwalk_hide(walk, expected_old);
    /* oldest first: a commit's first parent is in dst (hidden) or copied before it */
    while (rc == 0 && (grc = git_revwalk_next(&id, walk)) == 0)
        rc = copy_commit(repo, src, dst, &id);
    if (rc == 0 && grc != GIT_ITEROVER)
        rc = -1;
    git_revwalk_free(walk);
    return rc;
}

static int push_local(struct gitops_repo *r, const git_oid *commit, const git_oid *expected_old,
                      enum gitops_push_outcome *out, char *reason, size_t reason_len,
                      bool *out_local)
{
    git_repository *rr = NULL;
    git_odb *src = NULL, *dst = NULL;
    git_reference *ref = NULL;
    char msg[CAP_ERROR_MESSAGE_MAX / 2];
    int rc, grc;

    if ((rc = local_remote_open(r, &rr)) != 0)
        return rc;
    if (git_repository_odb(&src, r->repo) < 0) {
        rc = local_fail(r, "opening the object database", out_local);
        goto cleanup;
    }
    if (git_repository_odb(&dst, rr) < 0 ||
        gitops_copy_commits(r->repo, src, dst, commit, expected_old) < 0) {
        rc = cap_error_set(CAP_EUNAVAILABLE, "git remote %s cannot store objects: %s",
                           r->display_url, git_message(r, msg, sizeof(msg)));
        goto cleanup;
    }
    if (expected_old)
        grc = git_reference_create_matching(&ref, rr, r->branch_ref, commit, 1, expected_old,
                                            "capstan: push");
    else
        grc = git_reference_create(&ref, rr, r->branch_ref, commit, 0, "capstan: push");
    if (grc == GIT_EMODIFIED || grc == GIT_EEXISTS || grc == GIT_ELOCKED || grc == GIT_ENOTFOUND) {
        *out = GITOPS_REJECTED;
        snprintf(reason, reason_len, "%s", git_message(r, msg, sizeof(msg)));
        rc = 0;
        goto cleanup;
    }
    if (grc < 0) {
        rc = cap_error_set(CAP_EUNAVAILABLE, "git remote %s cannot update branch %s: %s",
                           r->display_url, r->branch, git_message(r, msg, sizeof(msg)));
        goto cleanup;
    }
    *out = GITOPS_PUSHED;
    rc = 0;
cleanup:
    git_reference_free(ref);
    git_odb_free(dst);
    git_odb_free(src);
    git_repository_free(rr);
    return rc;
}

int gitops_net_push(struct gitops_repo *r, const git_oid *commit, const git_oid *expected_old,
                    enum gitops_push_outcome *out, char *reason, size_t reason_len, bool *out_local)
{
    struct net_ctx ctx;
    git_push_options po;
    git_remote *remote = NULL;
    git_reference *ref = NULL;
    char spec[GITOPS_PATH_MAX * 2];
    char *specp = spec;
    git_strarray specs = {&specp, 1};
    int rc = 0, grc;

    *out = GITOPS_REJECTED;
    *out_local = false;
    reason[0] = '\0';
    net_ctx_init(&ctx, r, expected_old);
    if (r->local_path) {
        rc = push_local(r, commit, expected_old, out, reason, reason_len, out_local);
        goto done;
    }
    if (git_reference_create(&ref, r->repo, GITOPS_OUTGOING_REF, commit, 1, "capstan: push") < 0) {
        rc = local_fail(r, "preparing the push", out_local);
        goto done;
    }
    snprintf(spec, sizeof(spec), "%s:%s", GITOPS_OUTGOING_REF, r->branch_ref);
    if ((rc = gitnet_remote_new(&remote, r->repo, r->url, r->display_url)) != 0)
        goto done;
    gitnet_push_options(&po, &ctx.net);
    gitnet_deadline_set(r->timeout_ms);
    grc = git_remote_push(remote, &specs, &po);
    if (ctx.net.stale) {
        snprintf(reason, reason_len, "the remote branch moved");
    } else if (grc == GIT_ENONFASTFORWARD) {
        snprintf(reason, reason_len, "non-fast-forward");
    } else if (grc < 0) {
        rc = net_fail(&ctx, grc, "pushing", out_local);
    } else if (!ctx.net.reported) {
        /* unknown outcome: the next round's fetch and trailer index tell whether it landed */
        snprintf(reason, reason_len, "the remote reported no status for %s", r->branch_ref);
    } else if (!ctx.net.ref_ok) {
        snprintf(reason, reason_len, "%s", ctx.net.ref_status);
        gitops_redact(r, reason, reason_len);
    } else {
        *out = GITOPS_PUSHED;
    }
done:
    gitnet_deadline_set(0);
    if (rc == 0 && *out == GITOPS_PUSHED) {
        git_reference_free(ref);
        ref = NULL;
        if (git_reference_create(&ref, r->repo, r->tracking_ref, commit, 1, "capstan: push") < 0)
            log_warn("gitops: cannot record the pushed commit in %s", r->tracking_ref);
    }
    git_reference_free(ref);
    git_remote_free(remote);
    return rc;
}
