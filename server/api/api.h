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

/* openapi.c */
int api_openapi(struct http_request *req);

/* metrics.c: GET /metrics, and the http_server_options.on_complete hook that counts requests
 * by route name, method and status. */
int api_metrics(struct http_request *req);
void api_metrics_on_complete(const struct http_request *req, double seconds);

/* tenants.c */
int api_tenants_create(struct http_request *req);
int api_tenants_list(struct http_request *req);
int api_tenants_get(struct http_request *req);
int api_tenants_patch(struct http_request *req);
int api_tenants_delete(struct http_request *req);

/* environments.c */
int api_envs_create(struct http_request *req);
int api_envs_list(struct http_request *req);
int api_envs_get(struct http_request *req);
int api_envs_patch(struct http_request *req);
int api_envs_delete(struct http_request *req);
int api_envs_extend(struct http_request *req);

/* kubeconfig.c */
int api_envs_kubeconfig(struct http_request *req);

/* jobs.c */
int api_jobs_list(struct http_request *req);
int api_jobs_get(struct http_request *req);
int api_jobs_events(struct http_request *req);
int api_jobs_cancel(struct http_request *req);
int api_jobs_retry(struct http_request *req);

/* tokens.c */
int api_tokens_create(struct http_request *req);
int api_tokens_list(struct http_request *req);
int api_tokens_revoke(struct http_request *req);

/* audit.c */
int api_audit_list(struct http_request *req);

/* Authentication, authorization and the audit record: api/auth.h. */

#endif
