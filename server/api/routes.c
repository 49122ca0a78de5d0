/* capstan: the route table. Route names are stable labels for metrics and audit. */
#include "api/api.h"

#define T "/api/v1/tenants"
#define E "/api/v1/tenants/{tenant}/environments"

static const struct route routes[] = {
    {"GET", "/healthz", api_healthz, ROUTE_PUBLIC, "healthz"},
    {"GET", "/readyz", api_readyz, ROUTE_PUBLIC, "readyz"},
    {"GET", "/openapi.json", api_openapi, ROUTE_PUBLIC, "openapi"},
    {"GET", "/metrics", api_metrics, ROUTE_PUBLIC, "metrics"},

    {"POST", T, api_tenants_create, ROUTE_BODY, "tenants.create"},
    {"GET", T, api_tenants_list, 0, "tenants.list"},
    {"GET", T "/{tenant}", api_tenants_get, 0, "tenants.get"},
    {"PATCH", T "/{tenant}", api_tenants_patch, ROUTE_PATCH, "tenants.update"},
    {"DELETE", T "/{tenant}", api_tenants_delete, 0, "tenants.delete"},

    {"POST", E, api_envs_create, ROUTE_BODY, "environments.create"},
    {"GET", E, api_envs_list, 0, "environments.list"},
    {"GET", E "/{env}", api_envs_get, 0, "environments.get"},
    {"PATCH", E "/{env}", api_envs_patch, ROUTE_PATCH, "environments.update"},
    {"DELETE", E "/{env}", api_envs_delete, 0, "environments.delete"},
    {"POST", E "/{env}/extend", api_envs_extend, ROUTE_BODY, "environments.extend"},
    {"GET", E "/{env}/kubeconfig", api_envs_kubeconfig, 0, "environments.kubeconfig"},

    {"GET", "/api/v1/jobs", api_jobs_list, 0, "jobs.list"},
    {"GET", "/api/v1/jobs/{id}", api_jobs_get, 0, "jobs.get"},
    {"GET", "/api/v1/jobs/{id}/events", api_jobs_events, ROUTE_STREAM, "jobs.events"},
    {"POST", "/api/v1/jobs/{id}/cancel", api_jobs_cancel, ROUTE_BODY | ROUTE_OPT_BODY,
     "jobs.cancel"},
    {"POST", "/api/v1/jobs/{id}/retry", api_jobs_retry, ROUTE_BODY | ROUTE_OPT_BODY, "jobs.retry"},
};

const struct route *api_routes(size_t *n)
{
    *n = sizeof(routes) / sizeof(routes[0]);
    return routes;
}
