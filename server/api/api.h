/* capstan: the HTTP API: the route table and the handlers, one file per resource.
 * Handlers are thin: parse, validate, call store/jobs, answer. */
#ifndef CAPSTAN_API_API_H
#define CAPSTAN_API_API_H

#include "http/http.h"

#include <stddef.h>

/* The route table of the server (static). */
const struct route *api_routes(size_t *n);

/* health.c */
int api_healthz(struct http_request *req);
int api_readyz(struct http_request *req);

/* Authenticates a request for a non-public route (auth.c). */
int api_authenticate(struct http_request *req);

#endif
