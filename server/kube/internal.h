/* capstan: what the files of server/kube share and nobody else uses. */
#ifndef CAPSTAN_KUBE_INTERNAL_H
#define CAPSTAN_KUBE_INTERNAL_H

#include "kube/kube.h"

#include <stdbool.h>
#include <stddef.h>

/* Reads the file at path (at most max bytes) into *out (malloc'd, NUL-terminated, *len
 * without the NUL). what names the file in messages ("client key"). Errors: CAP_ENOTFOUND,
 * CAP_ETOOBIG, CAP_ERROR. */
int kube_read_file(unsigned char **out, size_t *len, const char *path, size_t max,
                   const char *what);

/* Checks a bearer token read from outside: 1..KUBE_TOKEN_MAX_BYTES visible ASCII characters.
 * Trailing white space is cut first (in place). */
int kube_check_token(char *token, const char *field);

/* A request of the transport (http.c). */
struct kube_request {
    const char *method;       /* "GET", "PATCH", ... */
    const char *path;         /* starts with '/', may hold a query */
    const char *content_type; /* of body; NULL when no body */
    const char *body;
    size_t body_len;
    long timeout_ms; /* 0: the client's default */
};

/* Sends req with retries (429 with Retry-After, one token re-read on 401) and validates the
 * answer: a 2xx JSON object comes back in *out (new reference); an error status is turned
 * into a CAP_* code through kube_status_error. */
int kube_do(json_t **out, struct kube_client *c, const struct kube_request *req);

/* What watch.c needs from the transport. */
struct kube_stream {
    /* Called with each chunk of a 2xx body; return false to end the transfer. */
    bool (*on_data)(void *ud, const char *data, size_t len);
    void *ud;
    const atomic_int *stop;
    long long deadline_ms; /* cap_mono_ms() value at which the transfer ends */
};

/* GETs path and streams a 2xx JSON body to s->on_data. Returns 0 when the server ended the
 * body or on_data asked to end, CAP_ETIMEOUT at the deadline, CAP_ERETRY when *stop was set,
 * CAP_EUNAVAILABLE when the connection broke, or the Status code of an error answer (with
 * *http_status set, and 410 kept distinct as CAP_EPRECONDITION). */
int kube_stream_get(struct kube_client *c, const char *path, const struct kube_stream *s,
                    long *http_status);

/* The client's field manager and default call timeout (http.c). */
const char *kube_client_field_manager(const struct kube_client *c);
long kube_client_timeout(const struct kube_client *c);

/* Appends "&name=<escaped value>" (or "?name=" when the path has no query yet) to buf. */
int kube_query_add(char *buf, size_t size, const char *name, const char *value);

#endif
