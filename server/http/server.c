/* capstan: the HTTP server on libmicrohttpd (see http.h).
 *
 * Invariants: one struct http_request per MHD request, made on the first call of the access
 * handler and freed in the completion callback; every request is answered exactly once; the
 * in-flight counter counts requests between those two points. */
#include "http/http.h"

#include "http/status.h"
#include "log/log.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

struct http_stream {
    struct http_server *srv;
    struct MHD_Connection *conn;
    pthread_mutex_t lock;
    atomic_int refs; /* the response holds one; http_stream_hold adds more */
    bool dead;       /* the connection is gone: waking is a no-op */
    bool suspended;
    bool wake_pending;
    bool closed;
    http_stream_read_fn read;
    void (*done)(void *ctx);
    void *ctx;
    struct http_stream *prev, *next;
};

struct http_server {
    struct MHD_Daemon *daemon;
    struct http_server_options opt;
    atomic_int inflight;
    unsigned port;
    pthread_mutex_t streams_lock;
    struct http_stream *streams;
    atomic_bool stopping;
};

static void stream_end_all(struct http_server *srv);

/* ---- request helpers ---- */

const char *http_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_query(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_param(const struct http_request *req, const char *name)
{
    return router_param(&req->match, name);
}

struct query_iter {
    int (*fn)(void *ctx, const char *key, const char *value);
    void *ctx;
    int rc;
};

static enum MHD_Result query_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    struct query_iter *it = cls;
    (void)kind;
    it->rc = it->fn(it->ctx, key, value ? value : "");
    return it->rc ? MHD_NO : MHD_YES;
}

int http_query_each(const struct http_request *req,
                    int (*fn)(void *ctx, const char *key, const char *value), void *ctx)
{
    struct query_iter it = {fn, ctx, 0};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_cb, &it);
    return it.rc;
}

static int check_allowed(void *ctx, const char *key, const char *value)
{
    const char *const *allowed = ctx;
    (void)value;
    for (; *allowed; allowed++)
        if (strcmp(*allowed, key) == 0)
            return 0;
    return cap_error_set_field(CAP_EMALFORMED, key, "unknown query parameter \"%.64s\"", key);
}

int http_query_only(const struct http_request *req, const char *const *allowed)
{
    return http_query_each(req, check_allowed, (void *)allowed);
}

void http_set_header(struct http_request *req, const char *name, const char *value)
{
    for (int i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->header_names[i], name) == 0) {
            free(req->header_values[i]);
            req->header_values[i] = strdup(value);
            return;
        }
    }
    if (req->nheaders == HTTP_MAX_HEADERS)
        return;
    req->header_names[req->nheaders] = strdup(name);
    req->header_values[req->nheaders] = strdup(value);
    req->nheaders++;
}

int http_field_error(struct http_request *req, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!req->field_errors)
        req->field_errors = json_array();
    json_array_append_new(req->field_errors, json_pack("{s:o,s:o}", "field", cap_json_str(field),
                                                       "message", cap_json_str(msg)));
    cap_error_set_field(CAP_EINVALID, field, "%s", msg);
    return CAP_EINVALID;
}

/* ---- answering ---- */

static void add_common_headers(struct http_request *req, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Request-Id", req->request_id);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    for (int i = 0; i < req->nheaders; i++)
        MHD_add_response_header(resp, req->header_names[i], req->header_values[i]);
}

static int queue(struct http_request *req, int status, struct MHD_Response *resp)
{
    enum MHD_Result r;
    if (!resp)
        return cap_error_set(CAP_ERROR, "cannot make a response");
    add_common_headers(req, resp);
    r = MHD_queue_response(req->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    req->answered = true;
    req->status = status;
    return r == MHD_YES ? 0 : cap_error_set(CAP_ERROR, "cannot queue the response");
}

int http_reply_text(struct http_request *req, int status, const char *content_type,
                    const char *text, size_t len)
{
    struct MHD_Response *resp;
    if (req->answered)
        return 0;
    resp = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (resp && content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    return queue(req, status, resp);
}

static int reply_json_type(struct http_request *req, int status, json_t *body, const char *type)
{
    char *text;
    struct MHD_Response *resp;
    if (req->answered) {
        json_decref(body);
        return 0;
    }
    text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (!text)
        return cap_error_set(CAP_ERROR, "cannot encode the response");
    resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return cap_error_set(CAP_ERROR, "cannot make a response");
    }
    MHD_add_response_header(resp, "Content-Type", type);
    return queue(req, status, resp);
}

int http_reply_json(struct http_request *req, int status, json_t *body)
{
    return reply_json_type(req, status, body, "application/json; charset=utf-8");
}

int http_reply_empty(struct http_request *req, int status)
{
    return http_reply_text(req, status, NULL, "", 0);
}

int http_reply_error(struct http_request *req, int code)
{
    const struct http_problem *p = http_problem_of(code);
    char type[96];
    const char *detail = cap_error_message();
    json_t *body;

    if (req->answered)
        return 0;
    if (p->status >= 500 && p->status != 503) {
        log_error("internal error answering %s %s: %s", req->method, req->path,
                  detail[0] ? detail : "(no message)");
        detail = "the server failed to handle the request; report the request id to the operators";
    } else if (!detail[0]) {
        detail = p->title;
    }
    snprintf(type, sizeof(type), "%s%s", HTTP_PROBLEM_TYPE_PREFIX, p->slug);
    body = json_pack("{s:s,s:s,s:i,s:o,s:o,s:s}", "type", type, "title", p->title, "status",
                     p->status, "detail", cap_json_str(detail), "instance", cap_json_str(req->path),
                     "requestId", req->request_id);
    if (code == CAP_EINVALID || code == CAP_EMALFORMED) {
        json_t *errs = req->field_errors ? json_incref(req->field_errors) : json_array();
        if (json_array_size(errs) == 0 && cap_error_field())
            json_array_append_new(errs,
                                  json_pack("{s:o,s:o}", "field", cap_json_str(cap_error_field()),
                                            "message", cap_json_str(detail)));
        json_object_set_new(body, "errors", errs);
    }
    switch (p->status) {
    case 401:
        http_set_header(req, "WWW-Authenticate", "Bearer realm=\"capstan\"");
        break;
    case 405:
        http_set_header(req, "Allow", req->match.allow);
        break;
    case 429:
    case 503: {
        bool has = false;
        for (int i = 0; i < req->nheaders; i++)
            has = has || strcasecmp(req->header_names[i], "Retry-After") == 0;
        if (!has)
            http_set_header(req, "Retry-After", p->status == 429 ? "1" : "5");
        break;
    }
    default:
        break;
    }
    return reply_json_type(req, p->status, body, "application/problem+json");
}

/* ---- reading a request ---- */

static bool valid_request_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

/* True if the Content-Type header names `want` (ignoring parameters and case). */
static bool content_type_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, want, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ')
        ct++;
    return *ct == '\0' || *ct == ';';
}

static bool has_body(const struct http_request *req)
{
    const char *cl = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = http_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return (cl && strcmp(cl, "0") != 0) || te;
}

static void remote_address(struct http_request *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    req->remote[0] = '\0';
    if (!ci || !ci->client_addr)
        return;
    if (ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_addr,
                  req->remote, sizeof(req->remote));
    else if (ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6,
                  &((const struct sockaddr_in6 *)(const void *)ci->client_addr)->sin6_addr,
                  req->remote, sizeof(req->remote));
}

/* Decides, from headers only, whether the request can go on; sets req->early_error if not. */
static void first_look(struct http_server *srv, struct http_request *req, const char *url)
{
    int r;
    unsigned flags;
    const char *cl;

    if (cap_strlcpy(req->path, url, sizeof(req->path)) >= sizeof(req->path)) {
        req->early_error = cap_error_set(CAP_ENOTFOUND, "no resource at this path");
        return;
    }
    r = router_match(srv->opt.routes, srv->opt.nroutes, req->method, req->path, &req->match);
    if (r == ROUTER_NO_PATH) {
        req->early_error = cap_error_set(CAP_ENOTFOUND, "no resource at this path");
        return;
    }
    if (r == ROUTER_NO_METHOD) {
        req->early_error = cap_error_set(CAP_EMETHOD, "%s is not allowed here; allowed: %s",
                                         req->method, req->match.allow);
        return;
    }
    flags = req->match.route->flags;
    /* who asks comes before what they send: a refused request is 401/403/404 whatever its body */
    if (!(flags & ROUTE_PUBLIC) && srv->opt.authenticate) {
        int rc = srv->opt.authenticate(req);
        if (rc) {
            req->early_error = rc;
            return;
        }
    }
    cl = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        long long n;
        if (cap_parse_long(&n, cl, 0, 1LL << 62)) {
            req->early_error = cap_error_set(CAP_EMALFORMED, "invalid Content-Length");
            return;
        }
        if ((size_t)n > srv->opt.max_body) {
            req->early_error = cap_error_set(
                CAP_ETOOBIG, "the request body is larger than %zu bytes", srv->opt.max_body);
            return;
        }
    }
    if ((flags & (ROUTE_BODY | ROUTE_PATCH)) && has_body(req)) {
        const char *ct = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
        const char *want =
            (flags & ROUTE_PATCH) ? "application/merge-patch+json" : "application/json";
        if (!content_type_is(ct, want)) {
            req->early_error =
                cap_error_set(CAP_EMEDIATYPE, "the request body must be %s, not \"%.60s\"", want,
                              ct ? ct : "(none)");
            return;
        }
    }
}

static int parse_body(struct http_request *req)
{
    json_error_t err;
    unsigned flags = req->match.route->flags;

    if (!(flags & (ROUTE_BODY | ROUTE_PATCH)))
        return 0;
    if (req->body.len == 0) {
        if (flags & ROUTE_OPT_BODY)
            return 0;
        return cap_error_set(CAP_EMALFORMED, "the request needs a JSON body");
    }
    req->json = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &err);
    if (!req->json)
        return cap_error_set(CAP_EMALFORMED, "malformed JSON at line %d, column %d: %s", err.line,
                             err.column, err.text);
    if (!json_is_object(req->json))
        return cap_error_set(CAP_EMALFORMED, "the request body must be a JSON object");
    return 0;
}

static void dispatch(struct http_server *srv, struct http_request *req)
{
    int rc;

    log_context_set(req->request_id, NULL, NULL);
    if (req->early_error) {
        /* the message was set by first_look on this thread, just before */
        rc = req->early_error;
        goto answer;
    }
    cap_error_clear();
    if (req->too_big) {
        rc = cap_error_set(CAP_ETOOBIG, "the request body is larger than %zu bytes",
                           srv->opt.max_body);
        goto answer;
    }
    rc = parse_body(req);
    if (rc)
        goto answer;
    rc = req->match.route->handler(req);
answer:
    if (!req->answered) {
        if (rc >= 0)
            rc = cap_error_set(CAP_ERROR, "handler of %s gave no answer", req->match.route->name);
        if (http_reply_error(req, rc))
            log_error("cannot answer a request");
    }
    log_context_clear();
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct http_request *req = *con_cls;
    (void)version;

    if (!req) {
        const char *rid;
        req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
        *con_cls = req;
        atomic_fetch_add(&srv->inflight, 1);
        req->counted = true;
        req->server = srv;
        req->conn = conn;
        req->method = method;
        req->start_ns = cap_mono_ns();
        req->status = 0;
        cap_buf_init(&req->body, srv->opt.max_body);
        rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        if (valid_request_id(rid))
            cap_strlcpy(req->request_id, rid, sizeof(req->request_id));
        else if (cap_uuid_v4(req->request_id))
            cap_strlcpy(req->request_id, "unknown", sizeof(req->request_id));
        remote_address(req);
        log_context_set(req->request_id, NULL, NULL);
        cap_error_clear();
        first_look(srv, req, url);
        if (req->early_error) {
            /* answer before reading a body that will not be used */
            dispatch(srv, req);
        }
        log_context_clear();
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!req->answered && !req->too_big && req->match.route &&
            (req->match.route->flags & (ROUTE_BODY | ROUTE_PATCH))) {
            if (cap_buf_append(&req->body, upload_data, *upload_data_size))
                req->too_big = true;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!req->answered)
        dispatch(srv, req);
    return MHD_YES;
}

static void request_free(struct http_request *req)
{
    cap_buf_free(&req->body);
    json_decref(req->json);
    json_decref(req->field_errors);
    for (int i = 0; i < req->nheaders; i++) {
        free(req->header_names[i]);
        free(req->header_values[i]);
    }
    free(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct http_request *req = *con_cls;
    (void)conn;
    if (!req)
        return;
    *con_cls = NULL;
    double secs = (double)(cap_mono_ns() - req->start_ns) / 1e9;
    if (LOG_INFO >= log_min_level) {
        json_t *f = json_pack(
            "{s:s,s:o,s:s,s:i,s:f,s:s,s:s}", "method", req->method, "path", cap_json_str(req->path),
            "route", req->match.route ? req->match.route->name : "unmatched", "status", req->status,
            "durationMs", secs * 1000.0, "requestId", req->request_id, "remote", req->remote);
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            json_object_set_new(f, "terminated", json_true());
        log_write(LOG_INFO, f, "request");
    }
    if (srv->opt.audit && req->answered && req->match.route)
        srv->opt.audit(req);
    if (srv->opt.on_complete)
        srv->opt.on_complete(req, secs);
    if (req->counted)
        atomic_fetch_sub(&srv->inflight, 1);
    request_free(req);
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_debug("libmicrohttpd: %s", msg);
}

/* ---- streams ---- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_stream *s = cls;
    long n;
    (void)pos;

    pthread_mutex_lock(&s->lock);
    if (s->closed) {
        pthread_mutex_unlock(&s->lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    n = s->read(s->ctx, buf, max);
    if (n < 0) {
        pthread_mutex_unlock(&s->lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (n == 0) {
        if (s->wake_pending) {
            s->wake_pending = false;
        } else {
            s->suspended = true;
            MHD_suspend_connection(s->conn);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return (ssize_t)n;
}

void http_stream_hold(struct http_stream *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void http_stream_drop(struct http_stream *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void stream_free(void *cls)
{
    struct http_stream *s = cls;
    struct http_server *srv = s->srv;
    pthread_mutex_lock(&srv->streams_lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&srv->streams_lock);
    pthread_mutex_lock(&s->lock);
    s->dead = true;
    s->closed = true;
    pthread_mutex_unlock(&s->lock);
    if (s->done)
        s->done(s->ctx);
    http_stream_drop(s);
}

int http_stream_start(struct http_request *req, const char *content_type, http_stream_read_fn read,
                      void (*done)(void *ctx), void *ctx, struct http_stream **out)
{
    struct http_server *srv = req->server;
    struct http_stream *s = calloc(1, sizeof(*s));
    struct MHD_Response *resp;

    if (!s)
        return cap_error_set(CAP_ERROR, "out of memory");
    s->srv = srv;
    s->conn = req->conn;
    s->read = read;
    s->done = done;
    s->ctx = ctx;
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->lock, NULL);
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, s,
                                             stream_free);
    if (!resp) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        if (done)
            done(ctx);
        return cap_error_set(CAP_ERROR, "cannot make a stream");
    }
    /* one reference for the response, one for the caller */
    atomic_store(&s->refs, 2);
    MHD_add_response_header(resp, "Content-Type", content_type);
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    pthread_mutex_lock(&srv->streams_lock);
    s->next = srv->streams;
    if (srv->streams)
        srv->streams->prev = s;
    srv->streams = s;
    pthread_mutex_unlock(&srv->streams_lock);
    int rc = queue(req, HTTP_OK, resp);
    if (rc) {
        /* the response is gone (stream_free ran done); drop the caller's reference too */
        http_stream_drop(s);
        *out = NULL;
        return rc;
    }
    *out = s;
    return 0;
}

void http_stream_wake(struct http_stream *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->dead) {
        /* nothing to do */
    } else if (s->suspended) {
        s->suspended = false;
        MHD_resume_connection(s->conn);
    } else {
        s->wake_pending = true;
    }
    pthread_mutex_unlock(&s->lock);
}

static void stream_end_all(struct http_server *srv)
{
    pthread_mutex_lock(&srv->streams_lock);
    for (struct http_stream *s = srv->streams; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        s->closed = true;
        if (s->suspended) {
            s->suspended = false;
            MHD_resume_connection(s->conn);
        }
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&srv->streams_lock);
}

/* ---- the daemon ---- */

static int resolve_listen(const char *listen, struct sockaddr_storage *ss, bool *v6)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints, *res = NULL;
    size_t hl;
    int rc;

    if (!colon)
        return cap_error_set(CAP_EINVALID, "invalid listen address \"%s\"", listen);
    hl = (size_t)(colon - listen);
    if (hl >= sizeof(host))
        return cap_error_set(CAP_EINVALID, "invalid listen address \"%s\"", listen);
    memcpy(host, listen, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host[0] ? host : "0.0.0.0", colon + 1, &hints, &res);
    if (rc != 0 || !res)
        return cap_error_set(CAP_EINVALID, "cannot resolve listen address \"%s\": %s", listen,
                             gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

int http_server_start(struct http_server **out, const struct http_server_options *opt)
{
    struct http_server *srv;
    struct sockaddr_storage ss;
    bool v6 = false;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct MHD_OptionItem ops[16];
    int n = 0;

    if (resolve_listen(opt->listen, &ss, &v6))
        return CAP_EINVALID;
    if (opt->tls_cert_pem && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return cap_error_set(CAP_EINVALID, "this libmicrohttpd cannot serve HTTPS (built without "
                                           "TLS); unset CAPSTAN_TLS_CERT or serve behind a proxy");
    srv = calloc(1, sizeof(*srv));
    if (!srv)
        return cap_error_set(CAP_ERROR, "out of memory");
    srv->opt = *opt;
    pthread_mutex_init(&srv->streams_lock, NULL);
    if (v6)
        flags |= MHD_USE_IPv6;
    if (opt->tls_cert_pem && opt->tls_key_pem) {
        flags |= MHD_USE_TLS;
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)opt->tls_cert_pem};
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)opt->tls_key_pem};
        if (opt->tls_key_password)
            ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_KEY_PASSWORD, 0,
                                               (void *)opt->tls_key_password};
        /* TLS 1.2 and 1.3 only (GnuTLS priority string) */
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                           (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"
                                                   "%SERVER_PRECEDENCE"};
    }
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, opt->threads, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL};
    ops[n++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                opt->connection_timeout_s ? opt->connection_timeout_s : 60, NULL};
    if (opt->header_limit)
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                           (intptr_t)opt->header_limit, NULL};
    if (opt->per_ip_connections)
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                           opt->per_ip_connections, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_ARRAY, ops,
                                   MHD_OPTION_END);
    if (!srv->daemon) {
        pthread_mutex_destroy(&srv->streams_lock);
        free(srv);
        if (opt->tls_cert_pem)
            return cap_error_set(CAP_EUNAVAILABLE,
                                 "cannot listen on %s (in use, not an address of this host, or "
                                 "the TLS certificate and key are unusable or do not match)",
                                 opt->listen);
        return cap_error_set(CAP_EUNAVAILABLE,
                             "cannot listen on %s (in use, or not an address of this host)",
                             opt->listen);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : 0;
    *out = srv;
    return 0;
}

unsigned http_server_port(const struct http_server *srv)
{
    return srv->port;
}

int http_server_inflight(const struct http_server *srv)
{
    return atomic_load(&((struct http_server *)srv)->inflight);
}

void http_server_stop(struct http_server *srv, long long deadline_ms)
{
    MHD_socket fd;
    int64_t until;

    if (!srv)
        return;
    atomic_store(&srv->stopping, true);
    fd = MHD_quiesce_daemon(srv->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    stream_end_all(srv);
    until = cap_mono_ms() + deadline_ms;
    while (atomic_load(&srv->inflight) > 0 && cap_mono_ms() < until) {
        cap_sleep_ms(20);
        stream_end_all(srv);
    }
    if (atomic_load(&srv->inflight) > 0)
        log_warn("stopping with %d requests still in flight", atomic_load(&srv->inflight));
    stream_end_all(srv);
    MHD_stop_daemon(srv->daemon);
    pthread_mutex_destroy(&srv->streams_lock);
    free(srv);
}
