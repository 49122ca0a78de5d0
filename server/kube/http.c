/* capstan: the Kubernetes client's transport: the client object, its pool of curl handles,
 * the bearer token (re-read from its file when it rotates), one request with retries, a
 * streamed GET for watches, and the reading of Status error bodies.
 *
 * Invariants:
 *   - curl_global_init runs once per process (pthread_once);
 *   - an easy handle is used by one thread at a time: a call takes one from the pool (or
 *     makes one) and gives it back after curl_easy_reset, which keeps its open connections;
 *     the DNS cache and TLS sessions are shared between handles through a CURLSH with a
 *     mutex per kind of shared data (connections are not shared: per handle is safe);
 *   - the token lives only in the client (under its mutex), in the Authorization header of
 *     a request being made, and nowhere else; buffers that held it are wiped;
 *   - every call has a deadline (CURLOPT_TIMEOUT_MS from the remaining time) and every body
 *     read is bounded by max_response. */
#include "kube/internal.h"

#include "log/log.h"
#include "metrics/catalog.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define POOL_MAX            8
#define ERROR_BODY_MAX      (64u * 1024u)
#define DEFAULT_TIMEOUT_MS  30000L
#define DEFAULT_CONNECT_MS  10000L
#define DEFAULT_MAX_RESP    (16u * 1024u * 1024u)
#define DEFAULT_RETRY_MAX   10000L
#define DEFAULT_RETRIES     5
#define DEFAULT_REREAD_MS   60000L
#define DEFAULT_RETRY_AFTER 1L

struct kube_client {
    char *server;
    char *ns;
    unsigned char *ca, *cert, *key;
    size_t ca_len, cert_len, key_len;
    bool insecure;
    bool allow_http;
    char *token_file;
    char *field_manager;
    char *user_agent;
    long timeout_ms, connect_timeout_ms, retry_after_max_ms, token_reread_ms;
    size_t max_response;
    int max_retries;

    pthread_mutex_t lock; /* guards token state and the pool */
    char *token;          /* current bearer token or NULL */
    struct stat token_st; /* of the token file when it was last read */
    int64_t token_read_ms;
    CURL *pool[POOL_MAX];
    int npool;

    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
    struct kube_client *c = ud;
    (void)h;
    (void)access;
    if (data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
    struct kube_client *c = ud;
    (void)h;
    if (data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_unlock(&c->share_locks[data]);
}

static void wipe_str(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static bool stat_changed(const struct stat *a, const struct stat *b)
{
    return a->st_ino != b->st_ino || a->st_dev != b->st_dev || a->st_size != b->st_size ||
           a->st_mtim.tv_sec != b->st_mtim.tv_sec || a->st_mtim.tv_nsec != b->st_mtim.tv_nsec ||
           a->st_ctim.tv_sec != b->st_ctim.tv_sec || a->st_ctim.tv_nsec != b->st_ctim.tv_nsec;
}

/* Re-reads the token file when it changed, when token_reread_ms passed, or when forced.
 * Called with c->lock held. A failed re-read keeps the old token (and logs why). */
static int token_refresh_locked(struct kube_client *c, bool force)
{
    struct stat st;
    unsigned char *data = NULL;
    size_t len = 0;
    int64_t now = cap_mono_ms();
    int rc;

    if (!c->token_file)
        return 0;
    if (stat(c->token_file, &st) != 0) {
        if (c->token)
            return 0;
        return cap_error_set(CAP_ENOTFOUND, "cannot read the bearer token file \"%.200s\"",
                             c->token_file);
    }
    if (c->token && !force && !stat_changed(&st, &c->token_st) &&
        now - c->token_read_ms < c->token_reread_ms)
        return 0;
    rc = kube_read_file(&data, &len, c->token_file, KUBE_TOKEN_MAX_BYTES + 2, "bearer token file");
    if (rc == 0)
        rc = kube_check_token((char *)data, "tokenFile");
    if (rc) {
        if (data) {
            explicit_bzero(data, len);
            free(data);
        }
        if (c->token) {
            log_warn("kubernetes: keeping the previous bearer token: %s", cap_error_message());
            return 0;
        }
        return rc;
    }
    if (!c->token || strcmp(c->token, (char *)data) != 0)
        log_add_secret((char *)data);
    wipe_str(c->token);
    c->token = (char *)data;
    c->token_st = st;
    c->token_read_ms = now;
    return 0;
}

/* Builds the Authorization header for one request into *out (caller wipes with wipe_str);
 * *out stays NULL when there is no token. */
static int auth_header(char **out, struct kube_client *c, bool force)
{
    int rc;
    *out = NULL;
    pthread_mutex_lock(&c->lock);
    rc = token_refresh_locked(c, force);
    if (rc == 0 && c->token) {
        size_t n = strlen(c->token) + 32;
        *out = malloc(n);
        if (*out)
            snprintf(*out, n, "Authorization: Bearer %s", c->token);
        else
            rc = cap_error_set(CAP_ERROR, "out of memory");
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static CURL *pool_get(struct kube_client *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->npool > 0)
        h = c->pool[--c->npool];
    pthread_mutex_unlock(&c->lock);
    return h ? h : curl_easy_init();
}

static void pool_put(struct kube_client *c, CURL *h)
{
    if (!h)
        return;
    curl_easy_reset(h);
    pthread_mutex_lock(&c->lock);
    if (c->npool < POOL_MAX) {
        c->pool[c->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (h)
        curl_easy_cleanup(h);
}

static unsigned char *dup_bytes(const unsigned char *p, size_t n)
{
    unsigned char *d;
    if (!p)
        return NULL;
    d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

int kube_client_new(struct kube_client **out, const struct kube_config *cfg,
                    const struct kube_options *opt)
{
    static const struct kube_options defaults = {0};
    struct kube_client *c = NULL;
    int rc = 0;

    *out = NULL;
    if (!opt)
        opt = &defaults;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return cap_error_set(CAP_ERROR, "libcurl failed to start: %s",
                             curl_easy_strerror(global_rc));
    if (!cfg || !cfg->server)
        return cap_error_set(CAP_EINVALID, "the kubernetes configuration has no server");
    c = calloc(1, sizeof(*c));
    if (!c)
        return cap_error_set(CAP_ERROR, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&c->share_locks[i], NULL);
    c->server = strdup(cfg->server);
    c->ns = strdup(cfg->ns ? cfg->ns : "default");
    c->field_manager = strdup(opt->field_manager ? opt->field_manager : KUBE_DEFAULT_FIELD_MGR);
    c->user_agent = strdup(opt->user_agent ? opt->user_agent : "capstan/" CAPSTAN_VERSION);
    c->ca = dup_bytes(cfg->ca, cfg->ca_len);
    c->cert = dup_bytes(cfg->cert, cfg->cert_len);
    c->key = dup_bytes(cfg->key, cfg->key_len);
    c->ca_len = cfg->ca_len;
    c->cert_len = cfg->cert_len;
    c->key_len = cfg->key_len;
    c->insecure = cfg->insecure;
    c->allow_http = strncmp(cfg->server, "http://", 7) == 0;
    c->token_file = cfg->token_file ? strdup(cfg->token_file) : NULL;
    c->token = (cfg->token && !cfg->token_file) ? strdup(cfg->token) : NULL;
    if (!c->server || !c->ns || !c->field_manager || !c->user_agent || (cfg->ca && !c->ca) ||
        (cfg->cert && !c->cert) || (cfg->key && !c->key) || (cfg->token_file && !c->token_file) ||
        (cfg->token && !cfg->token_file && !c->token)) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    if (!cap_is_dns_label(c->field_manager, 128)) {
        rc = cap_error_set(CAP_EINVALID, "the field manager must be a DNS-1123 label");
        goto cleanup;
    }
    if (c->token)
        log_add_secret(c->token);
    c->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->connect_timeout_ms =
        opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : DEFAULT_CONNECT_MS;
    c->max_response = opt->max_response > 0 ? opt->max_response : DEFAULT_MAX_RESP;
    c->retry_after_max_ms =
        opt->retry_after_max_ms > 0 ? opt->retry_after_max_ms : DEFAULT_RETRY_MAX;
    c->max_retries = opt->max_retries > 0   ? opt->max_retries
                     : opt->max_retries < 0 ? 0
                                            : DEFAULT_RETRIES;
    c->token_reread_ms = opt->token_reread_ms > 0 ? opt->token_reread_ms : DEFAULT_REREAD_MS;
    c->share = curl_share_init();
    if (!c->share) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    pthread_mutex_lock(&c->lock);
    rc = token_refresh_locked(c, true);
    pthread_mutex_unlock(&c->lock);
    if (rc)
        goto cleanup;
    *out = c;
    c = NULL;

cleanup:
    kube_client_free(c);
    return rc;
}

void kube_client_free(struct kube_client *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->npool; i++)
        curl_easy_cleanup(c->pool[i]);
    if (c->share)
        curl_share_cleanup(c->share);
    free(c->server);
    free(c->ns);
    free(c->ca);
    free(c->cert);
    if (c->key) {
        explicit_bzero(c->key, c->key_len);
        free(c->key);
    }
    free(c->token_file);
    free(c->field_manager);
    free(c->user_agent);
    wipe_str(c->token);
    pthread_mutex_destroy(&c->lock);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&c->share_locks[i]);
    free(c);
}

const char *kube_client_namespace(const struct kube_client *c)
{
    return c->ns;
}

const char *kube_client_field_manager(const struct kube_client *c)
{
    return c->field_manager;
}

long kube_client_timeout(const struct kube_client *c)
{
    return c->timeout_ms;
}

/* ---- Status bodies ----------------------------------------------------------------- */

static void clean_copy(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    for (; src && *src && n + 1 < size; src++)
        dst[n++] = ((unsigned char)*src < 0x20 || *src == 0x7f) ? ' ' : *src;
    /* Do not end in the middle of a UTF-8 sequence. */
    if (src && *src) {
        while (n > 0 && ((unsigned char)dst[n - 1] & 0xc0) == 0x80)
            n--;
        if (n > 0 && ((unsigned char)dst[n - 1] & 0xc0) == 0xc0)
            n--;
    }
    dst[n] = '\0';
}

static int code_for(long http, const char *reason)
{
    if (strcmp(reason, "AlreadyExists") == 0 || strcmp(reason, "Conflict") == 0)
        return CAP_ECONFLICT;
    if (strcmp(reason, "Expired") == 0 || strcmp(reason, "Gone") == 0)
        return CAP_EPRECONDITION;
    switch (http) {
    case 400:
        return CAP_EMALFORMED;
    case 401:
        return CAP_EUNAUTHORIZED;
    case 403:
        return CAP_EFORBIDDEN;
    case 404:
        return CAP_ENOTFOUND;
    case 405:
        return CAP_EMETHOD;
    case 409:
        return CAP_ECONFLICT;
    case 410:
    case 412:
        return CAP_EPRECONDITION;
    case 413:
        return CAP_ETOOBIG;
    case 415:
        return CAP_EMEDIATYPE;
    case 422:
        return CAP_EINVALID;
    case 429:
        return CAP_ERATELIMIT;
    case 504:
        return CAP_ETIMEOUT;
    default:
        return http >= 500 ? CAP_EUNAVAILABLE : CAP_ERROR;
    }
}

int kube_status_error(struct kube_status *out, long http_status, const char *body, size_t len)
{
    json_t *root = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    out->code = (int)http_status;
    if (body && len > 0 && len <= ERROR_BODY_MAX)
        root = json_loadb(body, len, 0, NULL);
    if (json_is_object(root) && json_is_string(json_object_get(root, "kind")) &&
        strcmp(json_string_value(json_object_get(root, "kind")), "Status") == 0) {
        json_t *code = json_object_get(root, "code");
        json_t *details = json_object_get(root, "details");
        json_t *ra = json_object_get(details, "retryAfterSeconds");
        clean_copy(out->reason, sizeof(out->reason), cap_json_get_str(root, "reason"));
        clean_copy(out->message, sizeof(out->message), cap_json_get_str(root, "message"));
        if (json_is_integer(code) && json_integer_value(code) >= 100 &&
            json_integer_value(code) <= 599 && (http_status == 0 || http_status == 200))
            out->code = (int)json_integer_value(code);
        if (json_is_integer(ra) && json_integer_value(ra) > 0 && json_integer_value(ra) < 86400)
            out->retry_after_s = (long)json_integer_value(ra);
    }
    json_decref(root);
    rc = code_for(out->code, out->reason);
    if (out->message[0])
        return cap_error_set(rc, "kubernetes api: %s", out->message);
    if (out->reason[0])
        return cap_error_set(rc, "kubernetes api answered %d %s", out->code, out->reason);
    return cap_error_set(rc, "kubernetes api answered %d", out->code);
}

bool kube_error_retryable(int code)
{
    return code == CAP_EUNAVAILABLE || code == CAP_ETIMEOUT || code == CAP_ERATELIMIT ||
           code == CAP_ERETRY;
}

/* ---- one transfer ------------------------------------------------------------------ */

struct xfer {
    struct kube_client *c;
    CURL *h;
    struct cap_buf body;              /* the whole body (kube_do) or an error body (stream) */
    const struct kube_stream *stream; /* NULL for kube_do */
    bool too_big;
    bool stream_ended; /* on_data asked to end */
    bool stopped;      /* *stop was set */
    bool type_checked; /* the stream's content type was looked at */
    bool bad_type;     /* ... and it was not JSON */
    char errbuf[CURL_ERROR_SIZE];
};

static bool is_json_type(const char *ctype);

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    long status = 0;

    if (x->stream) {
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300 && !x->type_checked) {
            const char *ctype = NULL;
            curl_easy_getinfo(x->h, CURLINFO_CONTENT_TYPE, &ctype);
            x->type_checked = true;
            if (!is_json_type(ctype)) {
                x->bad_type = true;
                return 0;
            }
        }
        if (status >= 200 && status < 300) {
            if (!x->stream->on_data(x->stream->ud, data, n)) {
                x->stream_ended = true;
                return 0;
            }
            return n;
        }
    }
    if (cap_buf_append(&x->body, data, n) != 0) {
        x->too_big = true;
        return 0;
    }
    return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct xfer *x = ud;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (x->stream && x->stream->stop && atomic_load(x->stream->stop)) {
        x->stopped = true;
        return 1;
    }
    return 0;
}

/* Sets the options every request has. */
static int setup(struct xfer *x, const char *method, const char *path, long remaining_ms,
                 struct curl_slist *headers)
{
    struct kube_client *c = x->c;
    CURL *h = x->h;
    struct cap_buf url = CAP_BUF_INIT(KUBE_SERVER_MAX_BYTES + 8192);
    CURLcode bad = CURLE_OK;

    if (cap_buf_puts(&url, c->server) || cap_buf_puts(&url, path)) {
        cap_buf_free(&url);
        return cap_error_set(CAP_EINVALID, "the request path is too long");
    }
    bad = curl_easy_setopt(h, CURLOPT_URL, cap_buf_str(&url));
    cap_buf_free(&url);
    if (bad)
        return cap_error_set(CAP_ERROR, "libcurl refused the URL: %s", curl_easy_strerror(bad));
    curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    bad = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, c->allow_http ? "http,https" : "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, remaining_ms > 0 ? remaining_ms : 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     remaining_ms < c->connect_timeout_ms ? (remaining_ms > 0 ? remaining_ms : 1L)
                                                          : c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") == 0 ? NULL : method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    if (c->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    }
    if (c->ca) {
        /* Only the kubeconfig's CA is trusted, not the system's store as well. */
        struct curl_blob blob = {c->ca, c->ca_len, CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        if (!bad)
            bad = curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (c->cert) {
        struct curl_blob cb = {c->cert, c->cert_len, CURL_BLOB_COPY};
        struct curl_blob kb = {c->key, c->key_len, CURL_BLOB_COPY};
        if (!bad)
            bad = curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        if (!bad)
            bad = curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    /* Fail closed when libcurl cannot take the protocols or TLS material as asked. */
    if (bad)
        return cap_error_set(CAP_ERROR, "libcurl cannot be set up for this cluster: %s",
                             curl_easy_strerror(bad));
    return 0;
}

/* Turns a failed transfer into a CAP_* code and message (never with credentials: curl's
 * messages name hosts, certificates and timeouts only). */
static int curl_failure(const struct xfer *x, CURLcode res, long timeout_ms)
{
    const char *detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(res);
    if (x->too_big)
        return cap_error_set(CAP_ETOOBIG, "kubernetes api: the response is larger than %zu bytes",
                             x->c->max_response);
    if (x->stopped)
        return cap_error_set(CAP_ERETRY, "kubernetes api: the call was stopped");
    switch (res) {
    case CURLE_OPERATION_TIMEDOUT:
        return cap_error_set(CAP_ETIMEOUT, "kubernetes api at %.200s did not answer within %ld ms",
                             x->c->server, timeout_ms);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
        return cap_error_set(CAP_EUNAVAILABLE, "kubernetes api at %.200s: TLS failed: %.200s",
                             x->c->server, detail);
    default:
        return cap_error_set(CAP_EUNAVAILABLE, "kubernetes api at %.200s is unreachable: %.200s",
                             x->c->server, detail);
    }
}

static bool is_json_type(const char *ctype)
{
    size_t n = strlen("application/json");
    return ctype && strncasecmp(ctype, "application/json", n) == 0 &&
           (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

static long remaining(int64_t deadline)
{
    int64_t r = deadline - cap_mono_ms();
    return r > 0 ? (long)r : 0;
}

/* Gives x's handle back to the pool (it keeps its connections). */
static void xfer_release(struct xfer *x)
{
    pool_put(x->c, x->h);
    x->h = NULL;
}

/* One request: takes a handle from the pool into x->h (the caller gives it back: xfer_release),
 * sends method and path with the Authorization header (the token read again first when
 * force_token), content_type and body (both may be NULL) and waits at most left ms. The headers
 * and the copy of the token are freed (and wiped) before it returns. *res: libcurl's result;
 * *status: the HTTP status, 0 when nothing came back; the call is counted in the metrics. An
 * error when out of memory or the handle cannot be set up (then nothing was sent). */
static int send_once(struct xfer *x, const char *method, const char *path, const char *content_type,
                     const char *body, size_t body_len, long left, bool force_token, CURLcode *res,
                     long *status)
{
    struct curl_slist *headers = NULL;
    char *auth = NULL;
    char ctype_header[128];
    int rc;

    *res = CURLE_OK;
    *status = 0;
    cap_buf_reset(&x->body);
    x->errbuf[0] = '\0';
    x->too_big = false;
    if ((rc = auth_header(&auth, x->c, force_token)))
        return rc;
    headers = curl_slist_append(NULL, "Accept: application/json");
    if (content_type) {
        snprintf(ctype_header, sizeof(ctype_header), "Content-Type: %s", content_type);
        headers = curl_slist_append(headers, ctype_header);
    }
    /* an empty header removes libcurl's own: no 100-continue round trip before a body */
    headers = curl_slist_append(headers, "Expect:");
    if (auth)
        headers = curl_slist_append(headers, auth);
    x->h = pool_get(x->c);
    if (!headers || !x->h)
        rc = cap_error_set(CAP_ERROR, "out of memory");
    else
        rc = setup(x, method, path, left, headers);
    if (rc == 0) {
        if (body) {
            curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        }
        *res = curl_easy_perform(x->h);
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, status); /* 0 when nothing came back */
        metrics_kube_call(method, path, content_type, *status);
    }
    curl_slist_free_all(headers);
    wipe_str(auth);
    return rc;
}

/* After a 401 with a token file, once per call: the token may have rotated since it was read, so
 * the handle goes back to the pool and *force_token asks for it to be read again. True when the
 * caller should try again. */
static bool reauth_once(struct xfer *x, long status, bool *force_token)
{
    if (status != 401 || !x->c->token_file || *force_token)
        return false;
    *force_token = true;
    xfer_release(x);
    return true;
}

int kube_do(json_t **out, struct kube_client *c, const struct kube_request *req)
{
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : c->timeout_ms;
    int64_t start = cap_mono_ms(), deadline = start + timeout;
    struct xfer x = {0};
    bool force_token = false;
    int retries = 0;
    int rc = 0;

    if (out)
        *out = NULL;
    x.c = c;
    cap_buf_init(&x.body, c->max_response);
    for (;;) {
        long status = 0, left = remaining(deadline);
        const char *ctype = NULL;
        curl_off_t retry_after = -1;
        CURLcode res;

        if (left <= 0) {
            rc = cap_error_set(CAP_ETIMEOUT,
                               "kubernetes api at %.200s did not answer within %ld "
                               "ms",
                               c->server, timeout);
            break;
        }
        if ((rc = send_once(&x, req->method, req->path, req->content_type, req->body, req->body_len,
                            left, force_token, &res, &status)))
            break;
        if (res != CURLE_OK) {
            rc = curl_failure(&x, res, timeout);
            break;
        }
        curl_easy_getinfo(x.h, CURLINFO_CONTENT_TYPE, &ctype);
        curl_easy_getinfo(x.h, CURLINFO_RETRY_AFTER, &retry_after);
        log_debug("kubernetes: %s %s -> %ld (%lld ms)", req->method, req->path, status,
                  (long long)(cap_mono_ms() - start));

        if (status >= 200 && status < 300) {
            json_t *v;
            json_error_t jerr;
            if (!is_json_type(ctype)) {
                rc = cap_error_set(CAP_EUNAVAILABLE,
                                   "kubernetes api answered %ld with content type \"%.60s\", not "
                                   "application/json",
                                   status, ctype ? ctype : "");
                break;
            }
            v = json_loadb(x.body.data ? x.body.data : "", x.body.len, JSON_REJECT_DUPLICATES,
                           &jerr);
            if (!json_is_object(v)) {
                json_decref(v);
                rc = cap_error_set(CAP_EUNAVAILABLE,
                                   "kubernetes api answered %ld with a body that is not a JSON "
                                   "object",
                                   status);
                break;
            }
            if (out)
                *out = v;
            else
                json_decref(v);
            rc = 0;
            break;
        }

        {
            struct kube_status st;
            rc = kube_status_error(&st, status, is_json_type(ctype) ? x.body.data : NULL,
                                   x.body.len);
            if (status == 429 && retries < c->max_retries) {
                long wait_ms = (retry_after > 0    ? (long)retry_after
                                : st.retry_after_s ? st.retry_after_s
                                                   : DEFAULT_RETRY_AFTER) *
                               1000L;
                if (wait_ms > c->retry_after_max_ms)
                    wait_ms = c->retry_after_max_ms;
                if (wait_ms < remaining(deadline)) {
                    log_info("kubernetes: %s %s was rate limited; retrying in %ld ms", req->method,
                             req->path, wait_ms);
                    retries++;
                    xfer_release(&x);
                    cap_sleep_ms(wait_ms);
                    continue;
                }
            }
            if (reauth_once(&x, status, &force_token))
                continue;
            break;
        }
    }
    xfer_release(&x);
    cap_buf_free(&x.body);
    return rc;
}

int kube_stream_get(struct kube_client *c, const char *path, const struct kube_stream *s,
                    long *http_status)
{
    struct xfer x = {0};
    bool force_token = false;
    int rc = 0;

    *http_status = 0;
    x.c = c;
    x.stream = s;
    cap_buf_init(&x.body, ERROR_BODY_MAX);
    for (;;) {
        long status = 0, left = remaining(s->deadline_ms);
        const char *ctype = NULL;
        CURLcode res;

        if (left <= 0) {
            rc = cap_error_set(CAP_ETIMEOUT, "the watch deadline passed");
            break;
        }
        if ((rc = send_once(&x, "GET", path, NULL, NULL, 0, left, force_token, &res, &status)))
            break;
        *http_status = status;
        if (x.stream_ended) {
            rc = 0;
            break;
        }
        if (x.bad_type) {
            rc = cap_error_set(CAP_EUNAVAILABLE,
                               "kubernetes api answered a watch with a body that is not JSON");
            break;
        }
        if (res != CURLE_OK) {
            if (res == CURLE_OPERATION_TIMEDOUT && !x.too_big && !x.stopped)
                rc = cap_error_set(CAP_ETIMEOUT, "the watch deadline passed");
            else
                rc = curl_failure(&x, res, left);
            break;
        }
        curl_easy_getinfo(x.h, CURLINFO_CONTENT_TYPE, &ctype);
        if (status >= 200 && status < 300) {
            rc = is_json_type(ctype)
                     ? 0
                     : cap_error_set(CAP_EUNAVAILABLE,
                                     "kubernetes api answered a watch with content type "
                                     "\"%.60s\"",
                                     ctype ? ctype : "");
            break;
        }
        {
            struct kube_status st;
            rc = kube_status_error(&st, status, is_json_type(ctype) ? x.body.data : NULL,
                                   x.body.len);
        }
        if (reauth_once(&x, status, &force_token))
            continue;
        break;
    }
    xfer_release(&x);
    cap_buf_free(&x.body);
    return rc;
}
