/* capstan: the HTTP server on libmicrohttpd.
 *
 * libmicrohttpd runs an internal thread pool on epoll. For each request the server finds the
 * route, checks body size (413) and content type (415), reads the body up to the limit, parses
 * JSON (400), asks the authenticator, then calls the handler on the pool thread. Handlers answer
 * with http_reply_* or return a negative CAP_E* code with the thread's last error set; the
 * server turns codes into problem+json through one table (status.c). Every answer carries
 * X-Request-Id; every request ends with one JSON access-log line. */
#ifndef CAPSTAN_HTTP_HTTP_H
#define CAPSTAN_HTTP_HTTP_H

#include "http/router.h"
#include "http/status.h"
#include "util/buf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Success statuses handlers may answer with (errors go through codes, never numbers). */
enum http_status {
    HTTP_OK = 200,
    HTTP_CREATED = 201,
    HTTP_ACCEPTED = 202,
    HTTP_NO_CONTENT = 204,
};

#define HTTP_MAX_HEADERS 8

struct http_principal {
    char name[128];  /* token name, for audit and requestedBy */
    char id[40];     /* token id ("bootstrap" for the configured admin token) */
    int role;        /* enum auth_role of api/auth.h; 0 when unauthenticated */
    char tenant[64]; /* bound tenant, "" for admin */
};

struct http_request {
    void *conn;                 /* struct MHD_Connection */
    const char *method;         /* borrowed from libmicrohttpd */
    char path[ROUTER_MAX_PATH]; /* decoded path without the query */
    struct route_match match;
    char request_id[72];
    char remote[64];  /* client address */
    int64_t start_ns; /* monotonic (cap_mono_ns), for the duration in the log and metrics */
    struct cap_buf body;
    json_t *json;         /* parsed body (ROUTE_BODY/ROUTE_PATCH); borrowed by handlers */
    json_t *field_errors; /* array for 422 answers; handlers append with http_field_error */
    struct http_principal principal;
    bool denied;     /* refused by authorization: 401, 403, or a 404 hiding another tenant */
    char tenant[64]; /* the tenant the request is about, when known (for the audit log) */
    /* the answer */
    int status;
    bool answered;
    void *response; /* struct MHD_Response */
    int nheaders;
    char *header_names[HTTP_MAX_HEADERS];
    char *header_values[HTTP_MAX_HEADERS];
    /* state of the reading */
    int early_error; /* a code found before the body was read (413, 415) */
    bool too_big;
    bool counted;
    void *server;
    void *user; /* for streaming handlers */
};

struct http_server_options {
    const char *listen; /* host:port */
    int threads;
    size_t max_body;
    unsigned connection_timeout_s;
    size_t header_limit;         /* per-connection memory for headers (0: default) */
    unsigned per_ip_connections; /* 0: unlimited */
    const char *tls_cert_pem;    /* NULL: plain HTTP */
    const char *tls_key_pem;
    const char *tls_key_password; /* NULL: the key is not encrypted */
    const struct route *routes;
    size_t nroutes;
    /* Called for every request of a non-public route once its headers are in, before the
     * body is read or validated; returns 0 or a CAP_E* code (401/403/404/429). */
    int (*authenticate)(struct http_request *req);
    /* Called once per answered request, before on_complete (the audit log). */
    void (*audit)(const struct http_request *req);
    /* Called once per finished request (after the access log line), e.g. for metrics. */
    void (*on_complete)(const struct http_request *req, double seconds);
};

struct http_server;

/* Starts serving. *out is the caller's to stop with http_server_stop. */
int http_server_start(struct http_server **out, const struct http_server_options *opt);
/* The port actually bound (useful with port 0). */
unsigned http_server_port(const struct http_server *srv);
/* Stops accepting new connections, waits up to deadline_ms for requests in flight, stops. */
void http_server_stop(struct http_server *srv, long long deadline_ms);

/* Request accessors. Borrowed values valid until the request completes. */
const char *http_header(const struct http_request *req, const char *name);
const char *http_query(const struct http_request *req, const char *name);
const char *http_param(const struct http_request *req, const char *name);
/* Calls fn for each query argument; stops and returns the first non-zero result. */
int http_query_each(const struct http_request *req,
                    int (*fn)(void *ctx, const char *key, const char *value), void *ctx);
/* Checks that every query argument is one of `allowed` (NULL-terminated): CAP_EMALFORMED else. */
int http_query_only(const struct http_request *req, const char *const *allowed);

/* Adds a response header (copied). */
void http_set_header(struct http_request *req, const char *name, const char *value);

/* Answers with JSON (body: new reference, stolen). */
int http_reply_json(struct http_request *req, int status, json_t *body);
/* Answers with a text body of the given type (copied). */
int http_reply_text(struct http_request *req, int status, const char *content_type,
                    const char *text, size_t len);
/* Answers with no body. */
int http_reply_empty(struct http_request *req, int status);

/* Appends a field error for a 422 answer; returns CAP_EINVALID. */
int http_field_error(struct http_request *req, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Answers with problem+json for code, using the thread's last error message as the detail. */
int http_reply_error(struct http_request *req, int code);

/* Streaming (server-sent events): the handler calls http_stream_start, which answers with a
 * response whose data comes from `read` as it becomes available. `read` is called on a pool
 * thread; it writes up to max bytes into buf and returns their number, 0 when it has nothing
 * yet (the connection is then suspended until http_stream_wake), or -1 at the end. `done` is
 * called once when the connection closes. Nothing in a stream may block. */
struct http_stream;
/* On success *out carries a reference for the caller (drop it with http_stream_drop). On any
 * failure done(ctx) has been called. */
typedef long (*http_stream_read_fn)(void *ctx, char *buf, size_t max);
int http_stream_start(struct http_request *req, const char *content_type, http_stream_read_fn read,
                      void (*done)(void *ctx), void *ctx, struct http_stream **out);
/* Resumes a suspended stream so its read is called again; safe from any thread, also after
 * the connection closed (then it does nothing) as long as the caller holds a reference. */
void http_stream_wake(struct http_stream *s);
/* References that keep the stream object (not the connection) alive for waking. */
void http_stream_hold(struct http_stream *s);
void http_stream_drop(struct http_stream *s);

/* Number of requests in flight (for metrics and shutdown). */
int http_server_inflight(const struct http_server *srv);

#endif
