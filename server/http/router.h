/* capstan: the route table and path matching. Pure functions, no I/O; thread-safe.
 *
 * A pattern is a path of literal segments and `{name}` parameters ("/api/v1/tenants/{tenant}").
 * A parameter matches one non-empty segment. Literal segments win over parameters at the same
 * position, so "/jobs/{id}" and "/jobs/stats" can both exist. */
#ifndef CAPSTAN_HTTP_ROUTER_H
#define CAPSTAN_HTTP_ROUTER_H

#include <stddef.h>

#define ROUTER_MAX_PARAMS   4
#define ROUTER_MAX_SEGMENTS 12
#define ROUTER_MAX_PATH     1024

struct http_request;
typedef int (*http_handler_fn)(struct http_request *req);

/* Route flags. */
enum {
    ROUTE_PUBLIC = 1 << 0,   /* no credentials needed */
    ROUTE_BODY = 1 << 1,     /* takes a JSON body (application/json) */
    ROUTE_PATCH = 1 << 2,    /* takes a merge patch (application/merge-patch+json) */
    ROUTE_STREAM = 1 << 3,   /* answers with a stream; no access log line until it ends */
    ROUTE_OPT_BODY = 1 << 4, /* body optional (may be empty) */
    /* bits 8 to 15: who may call the route, read by the authenticator (api/auth.h) */
};

struct route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/api/v1/tenants/{tenant}" */
    http_handler_fn handler;
    unsigned flags;
    const char *name; /* stable label for metrics and audit ("tenants.get") */
};

struct route_match {
    const struct route *route; /* NULL when nothing matched */
    int nparams;
    char names[ROUTER_MAX_PARAMS][32];
    char values[ROUTER_MAX_PARAMS][256];
    char allow[64]; /* methods of the path when the method did not match */
};

enum router_result { ROUTER_FOUND = 0, ROUTER_NO_PATH = 1, ROUTER_NO_METHOD = 2 };

/* Matches method and path (no query string) against routes[0..n). HEAD matches GET routes.
 * Fills *out; returns one of router_result. */
int router_match(const struct route *routes, size_t n, const char *method, const char *path,
                 struct route_match *out);

/* Borrowed value of parameter `name` of a match, or NULL. */
const char *router_param(const struct route_match *m, const char *name);

#endif
