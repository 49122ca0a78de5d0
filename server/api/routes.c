/* capstan: the route table. Route names are stable labels for metrics and audit.
 * Who may call a route is in its flags: ROUTE_PUBLIC (anyone) or the AUTHZ_* access of
 * api/auth.h; a route that says neither is for admins only. The authorization test
 * (tests/integration/test_authz.py) holds the expected answer of every route for every role. */
#include "api/api.h"
#include "api/auth.h"

#define T "/api/v1/tenants"
#define E "/api/v1/tenants/{tenant}/environments"

static const struct route routes[] = {
    {"GET", "/healthz", api_healthz, ROUTE_PUBLIC, "healthz"},
    {"GET", "/readyz", api_readyz, ROUTE_PUBLIC, "readyz"},
    {"GET", "/openapi.json", api_openapi, ROUTE_PUBLIC, "openapi"},
    {"GET", "/metrics", api_metrics, ROUTE_PUBLIC, "metrics"},

    {"POST", T, api_tenants_create, ROUTE_BODY | AUTHZ_ADMIN, "tenants.create"},
    {"GET", T, api_tenants_list, AUTHZ_LIST, "tenants.list"},
    {"GET", T "/{tenant}", api_tenants_get, AUTHZ_TENANT_VIEWER, "tenants.get"},
    {"PATCH", T "/{tenant}", api_tenants_patch, ROUTE_PATCH | AUTHZ_ADMIN, "tenants.update"},
    {"DELETE", T "/{tenant}", api_tenants_delete, AUTHZ_ADMIN, "tenants.delete"},

    {"POST", E, api_envs_create, ROUTE_BODY | AUTHZ_TENANT_ADMIN, "environments.create"},
    {"GET", E, api_envs_list, AUTHZ_TENANT_VIEWER, "environments.list"},
    {"GET", E "/{env}", api_envs_get, AUTHZ_TENANT_VIEWER, "environments.get"},
    {"PATCH", E "/{env}", api_envs_patch, ROUTE_PATCH | AUTHZ_TENANT_ADMIN, "environments.update"},
    {"DELETE", E "/{env}", api_envs_delete, AUTHZ_TENANT_ADMIN, "environments.delete"},
    {"POST", E "/{env}/extend", api_envs_extend, ROUTE_BODY | AUTHZ_TENANT_ADMIN,
     "environments.extend"},
    {"GET", E "/{env}/kubeconfig", api_envs_kubeconfig, AUTHZ_TENANT_ADMIN,
     "environments.kubeconfig"},

    {"GET", "/api/v1/jobs", api_jobs_list, AUTHZ_LIST, "jobs.list"},
    {"GET", "/api/v1/jobs/{id}", api_jobs_get, AUTHZ_JOB_VIEWER, "jobs.get"},
    {"GET", "/api/v1/jobs/{id}/events", api_jobs_events, ROUTE_STREAM | AUTHZ_JOB_VIEWER,
     "jobs.events"},
    {"POST", "/api/v1/jobs/{id}/cancel", api_jobs_cancel,
     ROUTE_BODY | ROUTE_OPT_BODY | AUTHZ_JOB_ADMIN, "jobs.cancel"},
    {"POST", "/api/v1/jobs/{id}/retry", api_jobs_retry,
     ROUTE_BODY | ROUTE_OPT_BODY | AUTHZ_JOB_ADMIN, "jobs.retry"},

    {"POST", "/api/v1/tokens", api_tokens_create, ROUTE_BODY | AUTHZ_ADMIN, "tokens.create"},
    {"GET", "/api/v1/tokens", api_tokens_list, AUTHZ_ADMIN, "tokens.list"},
    {"DELETE", "/api/v1/tokens/{id}", api_tokens_revoke, AUTHZ_ADMIN, "tokens.revoke"},
    {"GET", "/api/v1/audit", api_audit_list, AUTHZ_ADMIN, "audit.list"},
};

const struct route *api_routes(size_t *n)
{
    *n = sizeof(routes) / sizeof(routes[0]);
    return routes;
}
