/* capstan: libgit2 networking shared by the GitOps engine and the platform repository provider.
 * See gitnet.h. The deadline functions and the stream they bound live in stream.c.
 *
 * Invariants: verification of TLS certificates is never switched off (a CA file only adds trust,
 * checked with OpenSSL: chain to a CA in the file, where an intermediate may serve as the anchor,
 * host name or IP, server purpose); a credential is offered only from rem->cred, at most once per
 * kind and operation, and no message made here quotes one. */
#include "gitops/gitnet.h"
#include "gitops/internal.h"

#include "util/error.h"

#include <arpa/inet.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* --- libgit2 initialisation, once per process --- */

/* libgit2 stays up once initialised: libgit2 1.5 frees the user agent string at shutdown but
 * keeps the pointer, so setting it after a second git_libgit2_init frees it again (a double free
 * when the fleet repository could not be opened at start and a job opened it later). What it
 * keeps is reachable from its globals, so leak checkers do not count it. */
static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static bool initialised;

int gitnet_init(void)
{
    static const int levels[] = {GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG,
                                 GIT_CONFIG_LEVEL_GLOBAL, GIT_CONFIG_LEVEL_PROGRAMDATA};
    int rc = 0;

    pthread_mutex_lock(&init_mu);
    if (!initialised) {
        if (git_libgit2_init() < 0) {
            rc = cap_error_set(CAP_ERROR, "libgit2 cannot be initialised");
            goto cleanup;
        }
        /* our stream (deadlines); no system or user git configuration can redirect a remote */
        if (gitops_stream_register() < 0) {
            git_libgit2_shutdown();
            rc = cap_error_set(CAP_ERROR, "libgit2 network stream cannot be registered");
            goto cleanup;
        }
        for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
            git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, levels[i], "");
        git_libgit2_opts(GIT_OPT_SET_USER_AGENT, "capstan/" CAPSTAN_VERSION);
        /* Every tree entry and reference capstan writes names an object it has just written or
         * read from a tree: the check that it exists would read each entry's object again from
         * disk, every tenant's folder whenever the tenants/ tree is written (measured: most of
         * the cost of a change at 1,000 tenants). */
        git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 0);
        initialised = true;
    }
cleanup:
    pthread_mutex_unlock(&init_mu);
    return rc;
}

void gitnet_shutdown(void)
{
    /* nothing: see above */
}

const char *gitnet_error_message(void)
{
    const git_error *e = git_error_last();
    return e && e->message ? e->message : "unknown error";
}

/* --- credentials --- */

static int cb_credentials(git_credential **out, const char *url, const char *user_from_url,
                          unsigned int allowed, void *payload)
{
    struct gitnet_remote *rem = payload;
    const struct gitnet_credentials *c = rem->cred;
    unsigned kind = 0;
    (void)url;

    if (c && (allowed & GIT_CREDENTIAL_SSH_KEY) && c->ssh_key_path)
        kind = GIT_CREDENTIAL_SSH_KEY;
    else if (c && (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && (c->token || c->password))
        kind = GIT_CREDENTIAL_USERPASS_PLAINTEXT;
    else if (c && (allowed & GIT_CREDENTIAL_USERNAME))
        kind = GIT_CREDENTIAL_USERNAME;
    if (!kind) {
        rem->no_credentials = true;
        git_error_set_str(GIT_ERROR_NET, "authentication required");
        return GIT_EAUTH;
    }
    if (rem->offered & kind) {
        /* asked again for what we gave: the remote rejected it */
        rem->auth_failed = true;
        git_error_set_str(GIT_ERROR_NET, "authentication failed");
        return GIT_EAUTH;
    }
    rem->offered |= kind;
    switch (kind) {
    case GIT_CREDENTIAL_SSH_KEY:
        return git_credential_ssh_key_new(
            out, user_from_url ? user_from_url : (c->username ? c->username : "git"),
            c->ssh_pubkey_path, c->ssh_key_path, c->ssh_passphrase);
    case GIT_CREDENTIAL_USERPASS_PLAINTEXT:
        if (c->token)
            return git_credential_userpass_plaintext_new(
                out, c->username ? c->username : "x-access-token", c->token);
        return git_credential_userpass_plaintext_new(
            out, c->username ? c->username : (user_from_url ? user_from_url : ""), c->password);
    default:
        return git_credential_username_new(
            out, user_from_url ? user_from_url : (c->username ? c->username : "git"));
    }
}

/* --- certificates --- */

/* 1 if the leaf certificate verifies against the CA file for host; 0 with cert_why set if not. */
static int verify_with_ca(struct gitnet_remote *rem, const git_cert_x509 *cert, const char *host)
{
    const unsigned char *der = cert->data;
    X509 *leaf = NULL;
    X509_STORE *store = NULL;
    X509_STORE_CTX *sctx = NULL;
    X509_VERIFY_PARAM *param;
    unsigned char ip[16];
    int ok = 0;

    snprintf(rem->cert_why, sizeof(rem->cert_why), "its certificate cannot be checked");
    if (!(leaf = d2i_X509(NULL, &der, (long)cert->len)) || !(store = X509_STORE_new()) ||
        !(sctx = X509_STORE_CTX_new()))
        goto cleanup;
    if (X509_STORE_load_file(store, rem->ca_file) != 1) {
        snprintf(rem->cert_why, sizeof(rem->cert_why), "the CA file cannot be read");
        goto cleanup;
    }
    if (X509_STORE_CTX_init(sctx, store, leaf, NULL) != 1)
        goto cleanup;
    param = X509_STORE_CTX_get0_param(sctx);
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
    X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
    if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1)
        X509_VERIFY_PARAM_set1_ip_asc(param, host);
    else
        X509_VERIFY_PARAM_set1_host(param, host, 0);
    ok = X509_verify_cert(sctx) == 1;
    if (!ok)
        snprintf(rem->cert_why, sizeof(rem->cert_why), "certificate verification failed: %s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)));
cleanup:
    X509_STORE_CTX_free(sctx);
    X509_STORE_free(store);
    X509_free(leaf);
    return ok;
}

static int cb_certificate(git_cert *cert, int valid, const char *host, void *payload)
{
    struct gitnet_remote *rem = payload;
    bool have_ca = rem->ca_file && *rem->ca_file;

    if (cert->cert_type != GIT_CERT_X509) {
        if (rem->other_cert)
            return rem->other_cert(rem, cert, valid, host);
        snprintf(rem->cert_why, sizeof(rem->cert_why), "it did not present an X.509 certificate");
    } else if (valid || (have_ca && verify_with_ca(rem, (const git_cert_x509 *)cert, host))) {
        return 0;
    } else if (!have_ca) {
        snprintf(rem->cert_why, sizeof(rem->cert_why),
                 "its certificate is not signed by a trusted CA or does not name %.100s", host);
    }
    rem->cert_failed = true;
    git_error_set_str(GIT_ERROR_SSL, rem->cert_why);
    return GIT_ECERTIFICATE;
}

/* --- progress callbacks enforce the deadline too --- */

static int cb_transfer(const git_indexer_progress *stats, void *payload)
{
    (void)stats;
    (void)payload;
    if (gitnet_deadline_passed()) {
        git_error_set_str(GIT_ERROR_NET, "timed out");
        return -1;
    }
    return 0;
}

static int cb_push_transfer(unsigned int current, unsigned int total, size_t bytes, void *payload)
{
    (void)current;
    (void)total;
    (void)bytes;
    return cb_transfer(NULL, payload);
}

/* --- compare-and-swap push --- */

static int cb_push_negotiation(const git_push_update **updates, size_t len, void *payload)
{
    struct gitnet_remote *rem = payload;
    for (size_t i = 0; i < len; i++) {
        const git_push_update *u = updates[i];
        bool moved = rem->expected_old ? !git_oid_equal(&u->src, rem->expected_old)
                                       : !git_oid_is_zero(&u->src);
        if (strcmp(u->dst_refname, rem->branch_ref) == 0 && moved) {
            rem->stale = true;
            git_error_set_str(GIT_ERROR_NET, "the remote branch moved");
            return GIT_EUSER;
        }
    }
    return 0;
}

static int cb_push_update_reference(const char *refname, const char *status, void *payload)
{
    struct gitnet_remote *rem = payload;
    if (strcmp(refname, rem->branch_ref) != 0)
        return 0;
    rem->reported = true;
    rem->ref_ok = status == NULL;
    if (status)
        snprintf(rem->ref_status, sizeof(rem->ref_status), "%s", status);
    return 0;
}

static void callbacks_init(git_remote_callbacks *cbs, struct gitnet_remote *rem)
{
    git_remote_init_callbacks(cbs, GIT_REMOTE_CALLBACKS_VERSION);
    cbs->credentials = cb_credentials;
    cbs->certificate_check = cb_certificate;
    cbs->transfer_progress = cb_transfer;
    cbs->push_transfer_progress = cb_push_transfer;
    cbs->push_negotiation = cb_push_negotiation;
    cbs->push_update_reference = cb_push_update_reference;
    cbs->payload = rem;
}

/* --- options and remotes --- */

void gitnet_connect_options(git_remote_connect_options *out, struct gitnet_remote *rem)
{
    git_remote_connect_options_init(out, GIT_REMOTE_CONNECT_OPTIONS_VERSION);
    callbacks_init(&out->callbacks, rem);
    out->follow_redirects = GIT_REMOTE_REDIRECT_NONE;
}

void gitnet_fetch_options(git_fetch_options *out, struct gitnet_remote *rem)
{
    git_fetch_options_init(out, GIT_FETCH_OPTIONS_VERSION);
    callbacks_init(&out->callbacks, rem);
    out->prune = GIT_FETCH_NO_PRUNE;
    out->update_fetchhead = 0;
    out->download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
    out->follow_redirects = GIT_REMOTE_REDIRECT_NONE;
}

void gitnet_push_options(git_push_options *out, struct gitnet_remote *rem)
{
    git_push_options_init(out, GIT_PUSH_OPTIONS_VERSION);
    callbacks_init(&out->callbacks, rem);
    out->follow_redirects = GIT_REMOTE_REDIRECT_NONE;
    out->pb_parallelism = 1;
}

int gitnet_remote_new(git_remote **out, git_repository *repo, const char *url, const char *display)
{
    git_remote_create_options ro;
    git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
    ro.repository = repo;
    ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
    if (git_remote_create_with_opts(out, url, &ro) < 0)
        return cap_error_set(CAP_EINVALID, "git remote url %s is not valid", display);
    return 0;
}

enum gitnet_failure gitnet_failure_of(const struct gitnet_remote *rem, int grc)
{
    if (gitnet_timed_out())
        return GITNET_FAIL_TIMEOUT;
    if (rem->no_credentials)
        return GITNET_FAIL_NO_CREDENTIALS;
    if (rem->auth_failed || grc == GIT_EAUTH)
        return GITNET_FAIL_AUTH;
    if (rem->cert_failed || grc == GIT_ECERTIFICATE)
        return GITNET_FAIL_CERT;
    return GITNET_FAIL_OTHER;
}
